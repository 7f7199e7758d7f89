"""genhub orchestrator service."""
