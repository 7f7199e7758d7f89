"""Where the local infrastructure is. Tests that need it fail (never skip) when it is down:
`make test` starts it first, so a skip would only hide a broken stack."""

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
        pytest.fail(f"{what} is not reachable at {host}:{port}; run `make infra-up`")
