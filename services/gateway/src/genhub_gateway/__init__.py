"""genhub gateway service."""
