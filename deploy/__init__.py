"""How the system runs locally: launchers for Kafka and PostgreSQL, the service supervisor, the CLI."""
