"""The orchestrator's edges: database tables and repositories, object storage, providers."""
