"""Edges: tables and queries, the storage client, the webhook HTTP sender, encryption."""
