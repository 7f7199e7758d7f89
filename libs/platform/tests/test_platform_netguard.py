"""SSRF rules: URL shape, address classes, and the resolver-backed guard."""

import ipaddress

import pytest
from genhub_platform.netguard.guard import ResolutionFailed, UrlGuard
from genhub_platform.netguard.rules import (
    UrlRefused,
    checked_addresses,
    parse_target,
    refusal_reason,
)


@pytest.mark.parametrize(
    "address, reason",
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12::1", "private"),
        ("100.64.0.1", "reserved"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("169.254.1.1", "link_local"),
        ("fe80::1", "link_local"),
        ("0.0.0.0", "unspecified"),  # noqa: S104
        ("224.0.0.1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_classes(address: str, reason: str | None) -> None:
    assert refusal_reason(ipaddress.ip_address(address), allow_private=False) == reason


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.5", "::1", "192.168.0.9"])
def test_allow_private_opens_loopback_and_private(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address), allow_private=True) is None


@pytest.mark.parametrize("address", ["169.254.169.254", "169.254.3.3", "0.0.0.0", "fd00:ec2::254"])  # noqa: S104
def test_metadata_and_link_local_stay_refused_even_when_private_is_allowed(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address), allow_private=True) is not None


@pytest.mark.parametrize(
    "url, code",
    [
        ("ftp://example.com/x", "invalid_scheme"),
        ("file:///etc/passwd", "invalid_scheme"),
        ("http:///nohost", "invalid_url"),
        ("http://example.com:99999/", "invalid_url"),
        ("https://" + "a" * 2100 + ".com/", "url_too_long"),
    ],
)
def test_malformed_urls_are_refused(url: str, code: str) -> None:
    with pytest.raises(UrlRefused) as info:
        parse_target(url, require_https=False)
    assert info.value.code == code


def test_https_is_required_in_production() -> None:
    with pytest.raises(UrlRefused) as info:
        parse_target("http://example.com/hook", require_https=True)
    assert info.value.code == "https_required"
    target = parse_target("https://Example.COM./hook", require_https=True)
    assert (target.host, target.port, target.literal_ip) == ("example.com", 443, None)


def test_literal_ips_are_parsed_including_ipv6() -> None:
    target = parse_target("http://[::1]:8080/x", require_https=False)
    assert target.literal_ip == ipaddress.ip_address("::1") and target.port == 8080


def test_one_bad_record_refuses_the_whole_name() -> None:
    with pytest.raises(UrlRefused):
        checked_addresses(["93.184.216.34", "10.0.0.1"], allow_private=False)
    assert checked_addresses(["93.184.216.34", "93.184.216.34"], allow_private=False) == (
        ipaddress.ip_address("93.184.216.34"),
    )


def _resolver(answer: list[str]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        return answer

    return resolve


async def test_guard_checks_addresses_after_resolution() -> None:
    guard = UrlGuard(allow_private=False, require_https=False, resolver=_resolver(["127.0.0.1"]))
    with pytest.raises(UrlRefused) as info:
        await guard.check("http://innocent.example.com/hook")
    assert "loopback" in info.value.message

    ok = UrlGuard(allow_private=False, require_https=False, resolver=_resolver(["93.184.216.34"]))
    pinned = await ok.check("http://innocent.example.com/hook")
    assert pinned.addresses == (ipaddress.ip_address("93.184.216.34"),)
    assert pinned.host == "innocent.example.com"


async def test_guard_refuses_literal_private_ips_without_resolving() -> None:
    async def never(host: str, port: int) -> list[str]:
        raise AssertionError("must not resolve a literal")

    guard = UrlGuard(allow_private=False, require_https=False, resolver=never)
    with pytest.raises(UrlRefused):
        await guard.check("http://169.254.169.254/latest/meta-data")
    allowed = UrlGuard(allow_private=True, require_https=False, resolver=never)
    assert (await allowed.check("http://127.0.0.1:9/x")).addresses == (
        ipaddress.ip_address("127.0.0.1"),
    )


async def test_dns_failure_is_retryable_not_refused() -> None:
    async def broken(host: str, port: int) -> list[str]:
        raise OSError("temporary failure in name resolution")

    guard = UrlGuard(allow_private=False, require_https=False, resolver=broken)
    with pytest.raises(ResolutionFailed):
        await guard.check("http://example.com/x")
