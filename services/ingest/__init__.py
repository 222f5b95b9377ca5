"""The HTTP gateway: auth, schema checks, publishing to Kafka, reads from PostgreSQL."""
