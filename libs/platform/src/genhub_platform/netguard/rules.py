"""SSRF rules for URLs: which URLs and which resolved addresses we refuse to call.

Pure: the resolver lives in guard.py and feeds `checked_addresses` what it
found; the caller then connects only to those addresses (pinned), so a second DNS answer cannot
swap in a private address between the check and the connection.
"""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048

# Cloud instance-metadata endpoints: never a legitimate target, refused even if private is ok.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IPv6 IMDS
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UrlRefused(Exception):
    """The URL may never be called (retrying cannot help)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class UrlTarget:
    url: str
    scheme: str
    host: str  # lower-case, without brackets
    port: int
    literal_ip: IPAddress | None


def parse_target(url: str, *, require_https: bool) -> UrlTarget:
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused("url_too_long", "URL is too long")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused("invalid_url", f"URL is not valid: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRefused("invalid_scheme", "URL must use http or https")
    if require_https and scheme != "https":
        raise UrlRefused("https_required", "URL must use https")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UrlRefused("invalid_url", "URL has no host")
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    return UrlTarget(
        url=url,
        scheme=scheme,
        host=host,
        port=port or (443 if scheme == "https" else 80),
        literal_ip=literal,
    )


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """IPv4 hidden inside an IPv6 address (mapped, 6to4, NAT64), which routes to that IPv4."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal_reason(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why this address is refused, or None when it may be called."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return refusal_reason(embedded, allow_private=allow_private)
    if ip in METADATA_ADDRESSES:
        return "metadata"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_link_local:
        return "link_local"
    if allow_private:
        return None
    if ip.is_loopback:
        return "loopback"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"  # CGNAT, benchmarking, documentation ranges, ...
    return None


def checked_addresses(addresses: Iterable[str], *, allow_private: bool) -> tuple[IPAddress, ...]:
    """The addresses to connect to, in resolver order. Any refused address refuses the whole
    name (an attacker's DNS could answer with one public and one private record)."""
    parsed: list[IPAddress] = []
    for raw in addresses:
        ip = ipaddress.ip_address(raw.split("%", 1)[0])  # drop an IPv6 zone id
        reason = refusal_reason(ip, allow_private=allow_private)
        if reason is not None:
            raise UrlRefused("address_refused", f"host resolves to a {reason} address")
        if ip not in parsed:
            parsed.append(ip)
    if not parsed:
        raise UrlRefused("unresolvable", "host has no addresses")
    return tuple(parsed)
