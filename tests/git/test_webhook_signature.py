"""verify_signature: GitHub's X-Hub-Signature-256 convention, with known vectors."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from reconciler.server.webhook import MAX_WEBHOOK_BODY, sign, verify_signature

SECRET = b"opsmap-test-secret"
BODY = b'{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567"}'
EXPECTED = "sha256=" + hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()


def test_githubs_documented_example() -> None:
    # https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

    assert verify_signature(b"It's a Secret to Everybody", b"Hello, World!", header)
    assert not verify_signature(b"It's a Secret to Everybody", b"Hello, World?", header)


def test_a_signature_made_with_the_secret_verifies() -> None:
    assert sign(SECRET, BODY) == EXPECTED
    assert verify_signature(SECRET, BODY, EXPECTED)
    assert verify_signature(SECRET, BODY, EXPECTED.upper().replace("SHA256=", "sha256="))


@pytest.mark.parametrize(
    ("secret", "body", "header"),
    [
        pytest.param(b"another secret", BODY, EXPECTED, id="wrong-secret"),
        pytest.param(SECRET, BODY + b" ", EXPECTED, id="tampered-body"),
        pytest.param(SECRET, BODY, None, id="missing"),
        pytest.param(SECRET, BODY, "", id="empty"),
        pytest.param(SECRET, BODY, EXPECTED.removeprefix("sha256="), id="no-prefix"),
        pytest.param(SECRET, BODY, "sha1=" + EXPECTED[7:47], id="sha1"),
        pytest.param(SECRET, BODY, EXPECTED[:-2], id="truncated"),
        pytest.param(SECRET, BODY, EXPECTED + "00", id="too-long"),
        pytest.param(SECRET, BODY, EXPECTED[:-1] + "g", id="not-hex"),
        pytest.param(SECRET, BODY, EXPECTED[:-1] + "é", id="not-ascii"),
        pytest.param(
            b"", BODY, "sha256=" + hmac.new(b"", BODY, "sha256").hexdigest(), id="no-secret"
        ),
    ],
)
def test_anything_else_is_refused(secret: bytes, body: bytes, header: str | None) -> None:
    assert verify_signature(secret, body, header) is False


def test_bodies_are_capped_at_one_mebibyte() -> None:
    assert MAX_WEBHOOK_BODY == 1024 * 1024
