"""genhub notifier service."""
