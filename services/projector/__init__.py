"""Consumes the log and writes the PostgreSQL read models."""
