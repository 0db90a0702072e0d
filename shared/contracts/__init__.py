"""The bus's published language: topics, the CloudEvents envelope, every event type and payload
model, and the vocabulary they share. Producers and consumers both import from here, never from
each other; this package imports nothing but pydantic and the standard library."""
