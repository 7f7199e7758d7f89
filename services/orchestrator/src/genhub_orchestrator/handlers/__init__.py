"""Adapters from the outside world (Kafka, HTTP) to the use cases."""
