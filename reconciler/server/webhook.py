"""Authenticating ``POST /hooks/git``: an HMAC-SHA256 of the body, GitHub's convention.

The sender signs the raw body with the shared secret and sends
``X-Hub-Signature-256: sha256=<hex digest>``. The body must be capped at
:data:`MAX_WEBHOOK_BODY` before it is read, and the hook's payload is never trusted: a good
signature only says "fetch now".
"""

from __future__ import annotations

import hashlib
import hmac
import string

MAX_WEBHOOK_BODY = 1024 * 1024
"""Bodies larger than this (1 MiB) are refused unread; GitHub push payloads are far smaller."""
SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="
_HEX_LENGTH = 2 * hashlib.sha256().digest_size


def sign(secret: bytes, body: bytes) -> str:
    """The header value a sender with ``secret`` puts on ``body``."""
    return _PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is a valid ``sha256=<hex>`` signature of ``body`` with ``secret``.

    A missing or malformed header, or an empty secret (which anyone could sign with), is
    not valid. The digests are compared in constant time.
    """
    if not secret or header is None or not header.startswith(_PREFIX):
        return False
    given = header.removeprefix(_PREFIX).strip().lower()
    if len(given) != _HEX_LENGTH or not all(c in string.hexdigits for c in given):
        return False
    return hmac.compare_digest(sign(secret, body).encode("ascii"), (_PREFIX + given).encode())
