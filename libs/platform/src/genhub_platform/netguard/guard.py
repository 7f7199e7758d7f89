"""Resolve a host and apply the SSRF rules (rules.py) to every address."""

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from genhub_platform.netguard.rules import (
    IPAddress,
    checked_addresses,
    parse_target,
    refusal_reason,
)
from genhub_platform.netguard.rules import UrlRefused as UrlRefused

Resolver = Callable[[str, int], Awaitable[list[str]]]


class ResolutionFailed(Exception):
    """DNS did not answer now; may succeed later."""


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class PinnedTarget:
    url: str
    host: str
    addresses: tuple[IPAddress, ...]  # checked; the caller connects to these, in order


class UrlGuard:
    def __init__(
        self, *, allow_private: bool, require_https: bool, resolver: Resolver = system_resolver
    ) -> None:
        self._allow_private = allow_private
        self._require_https = require_https
        self._resolve = resolver

    async def check(self, url: str) -> PinnedTarget:
        """Raises UrlRefused (never callable) or ResolutionFailed (try later)."""
        target = parse_target(url, require_https=self._require_https)
        if target.literal_ip is not None:
            reason = refusal_reason(target.literal_ip, allow_private=self._allow_private)
            if reason is not None:
                raise UrlRefused("address_refused", f"host is a {reason} address")
            return PinnedTarget(url, target.host, (target.literal_ip,))
        try:
            addresses = await self._resolve(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            raise ResolutionFailed(f"cannot resolve host: {exc}") from exc
        checked = checked_addresses(addresses, allow_private=self._allow_private)
        return PinnedTarget(url, target.host, checked)
