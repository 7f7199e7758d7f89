"""genhub platform plumbing."""
