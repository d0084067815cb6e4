"""verify_signature and verify_hook: GitHub's, Gitea's, Forgejo's and GitLab's conventions."""

from __future__ import annotations

import email.message
import hashlib
import hmac

import pytest

from reconciler.server.webhook import MAX_WEBHOOK_BODY, sign, verify_hook, verify_signature

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


# -- verify_hook: every forge's header, over any headers mapping ---------------------------

HEX = hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("headers", "forge"),
    [
        pytest.param({"X-Hub-Signature-256": EXPECTED}, "github", id="github"),
        pytest.param({"X-Gitea-Signature": HEX}, "gitea", id="gitea"),
        pytest.param({"x-forgejo-signature": HEX.upper()}, "forgejo", id="forgejo-any-case"),
        pytest.param(
            {"X-Forgejo-Signature": HEX, "X-Gitea-Signature": HEX, "X-Hub-Signature-256": EXPECTED},
            "forgejo",
            id="forgejo-sends-all-three",
        ),
        pytest.param({"X-Gitlab-Token": SECRET.decode()}, "gitlab", id="gitlab"),
        pytest.param({"X-Gitlab-Token": f" {SECRET.decode()} "}, "gitlab", id="gitlab-padded"),
    ],
)
def test_each_forges_header_verifies(headers: dict[str, str], forge: str) -> None:
    verdict = verify_hook({"Content-Type": "application/json", **headers}, BODY, SECRET)

    assert verdict.accepted, verdict.reason
    assert verdict.forge == forge


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        pytest.param({}, "no X-Hub-Signature-256", id="none"),
        pytest.param(
            {"X-Gitea-Signature": EXPECTED}, "wrong X-Gitea-Signature", id="gitea-prefixed"
        ),
        pytest.param({"X-Gitea-Signature": HEX[:-1] + "0"}, "wrong X-Gitea", id="gitea-wrong"),
        pytest.param({"X-Gitlab-Token": "another"}, "wrong X-Gitlab-Token", id="gitlab-wrong"),
        pytest.param({"X-Gitlab-Token": ""}, "wrong X-Gitlab-Token", id="gitlab-empty"),
        pytest.param({"X-Gitlab-Token": HEX}, "wrong X-Gitlab-Token", id="gitlab-given-a-digest"),
        pytest.param(
            {"X-Gitea-Signature": HEX, "X-Hub-Signature-256": "sha256=" + "0" * 64},
            "wrong X-Hub-Signature-256",
            id="one-right-one-wrong",
        ),
        pytest.param(
            {"X-Gitlab-Token": SECRET.decode(), "X-Forgejo-Signature": "0" * 64},
            "wrong X-Forgejo-Signature",
            id="token-right-signature-wrong",
        ),
    ],
)
def test_a_hook_with_any_wrong_or_no_credential_is_refused(
    headers: dict[str, str], reason: str
) -> None:
    verdict = verify_hook(headers, BODY, SECRET)

    assert not verdict.accepted
    assert verdict.forge is None
    assert reason in verdict.reason


def test_an_empty_secret_verifies_nothing() -> None:
    empty_hex = hmac.new(b"", BODY, hashlib.sha256).hexdigest()
    for headers in ({"X-Gitlab-Token": ""}, {"X-Gitea-Signature": empty_hex}):
        assert not verify_hook(headers, BODY, b"").accepted


def test_http_servers_message_and_a_header_given_twice() -> None:
    message = email.message.Message()
    message["Content-Length"] = str(len(BODY))
    message["X-GITEA-SIGNATURE"] = HEX
    assert verify_hook(message, BODY, SECRET).forge == "gitea"

    message["x-gitea-signature"] = "0" * 64
    verdict = verify_hook(message, BODY, SECRET)
    assert not verdict.accepted
    assert verdict.reason == "X-Gitea-Signature given twice"
