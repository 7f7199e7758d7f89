"""SSRF protection for every outbound URL genhub calls on a tenant's behalf.

`rules` is pure (which URLs and addresses are refused); `guard` resolves a host and pins the
checked addresses so a second DNS answer cannot swap in a private one.
"""

from genhub_platform.netguard.guard import PinnedTarget, ResolutionFailed, Resolver, UrlGuard
from genhub_platform.netguard.rules import (
    UrlRefused,
    checked_addresses,
    parse_target,
    refusal_reason,
)

__all__ = [
    "PinnedTarget",
    "ResolutionFailed",
    "Resolver",
    "UrlGuard",
    "UrlRefused",
    "checked_addresses",
    "parse_target",
    "refusal_reason",
]
