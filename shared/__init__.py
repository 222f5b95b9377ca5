"""The project's own shared code: settings, event schemas, envelopes, catalogue, topics."""
