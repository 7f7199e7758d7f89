"""Billing rules: pricing, reservation decisions, settlement arithmetic, hold states, ledger
identities and reconciliation checks. Plain code, no I/O."""
