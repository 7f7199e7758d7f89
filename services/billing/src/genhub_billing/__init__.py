"""genhub billing service."""
