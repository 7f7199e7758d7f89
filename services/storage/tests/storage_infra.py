"""Where the local infrastructure is, and how to skip cleanly when it is not running."""

import os
import socket

import pytest

TEST_DATABASE_URL = os.environ.get(
    "STORAGE_TEST_DATABASE_URL",
    "postgresql+asyncpg://genhub:genhub@127.0.0.1:5432/genhub_storage_test",
)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(host: str, port: int, what: str) -> None:
    if not port_open(host, port):
        pytest.skip(f"{what} is not reachable at {host}:{port}")
