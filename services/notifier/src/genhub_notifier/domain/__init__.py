"""Webhook rules with no I/O: signing, bodies, retries, delivery states, address checks."""
