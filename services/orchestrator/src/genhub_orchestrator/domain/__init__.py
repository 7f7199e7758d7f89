"""The orchestrator's rules as plain code: no I/O, unit-tested."""
