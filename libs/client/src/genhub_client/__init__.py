"""genhub API client."""
