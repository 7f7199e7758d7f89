"""Use cases: take a unit of work (or the session factory) plus input, call domain + adapters."""
