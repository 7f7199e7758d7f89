"""genhub storage service."""
