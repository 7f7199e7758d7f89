"""Use cases: take a unit of work and input, apply domain rules through the adapters."""
