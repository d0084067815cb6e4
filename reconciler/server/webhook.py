"""Authenticating ``POST /hooks/git``: each forge's convention, one pure function.

:func:`verify_hook` reads the request's headers, its raw body and the shared secret, and
says whether the hook is authentic and by which convention:

- GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``;
- Gitea and Forgejo: ``X-Gitea-Signature`` / ``X-Forgejo-Signature: <hex HMAC-SHA256 of
  the body>`` (no prefix; Forgejo sends both, and Gitea's newer releases GitHub's too);
- GitLab: ``X-Gitlab-Token: <the secret itself>``, compared in constant time. GitLab signs
  nothing, so the token authenticates the sender, not the body: that is enough here, as
  a hook's payload is never trusted; a good hook only says "fetch now".

Every credential header present must verify (a forge that sends several sends them all
right), and at least one must be present. A header given twice with different values is
refused. The body must be capped at :data:`MAX_WEBHOOK_BODY` before it is read. This
module does no I/O: the HTTP server (whatever its library) calls it with what it read.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

MAX_WEBHOOK_BODY = 1024 * 1024
"""Bodies larger than this (1 MiB) are refused unread; forges' push payloads are far smaller."""
SIGNATURE_HEADER = "X-Hub-Signature-256"
GITEA_HEADER = "X-Gitea-Signature"
FORGEJO_HEADER = "X-Forgejo-Signature"
GITLAB_HEADER = "X-Gitlab-Token"
CREDENTIAL_HEADERS = (SIGNATURE_HEADER, FORGEJO_HEADER, GITEA_HEADER, GITLAB_HEADER)
"""The headers :func:`verify_hook` reads, in the order it names them."""
_FORGES = {
    FORGEJO_HEADER: "forgejo",
    GITEA_HEADER: "gitea",
    GITLAB_HEADER: "gitlab",
    SIGNATURE_HEADER: "github",
}
_PREFIX = "sha256="
_HEX_LENGTH = 2 * hashlib.sha256().digest_size
_MAX_TOKEN = 1024
_MISSING = "no " + ", ".join(CREDENTIAL_HEADERS[:-1]) + f" or {CREDENTIAL_HEADERS[-1]} header"


class Headers(Protocol):
    """What :func:`verify_hook` needs of a request's headers: their (name, value) pairs.

    ``http.server``'s message, aiohttp's ``CIMultiDictProxy`` and a plain dict all fit.
    """

    def items(self) -> Iterable[tuple[str, str]]: ...


@dataclass(frozen=True)
class HookVerdict:
    """Whether a hook is authentic; ``forge`` names the convention that proved it."""

    accepted: bool
    forge: str | None
    reason: str


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value a sender with ``secret`` puts on ``body``."""
    return _PREFIX + hex_digest(secret, body)


def hex_digest(secret: bytes, body: bytes) -> str:
    """The bare hex HMAC-SHA256 of ``body``: Gitea's and Forgejo's signature header."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is a valid ``sha256=<hex>`` signature of ``body`` with ``secret``.

    A missing or malformed header, or an empty secret (which anyone could sign with), is
    not valid. The digests are compared in constant time.
    """
    if header is None or not header.startswith(_PREFIX):
        return False
    return _hex_matches(secret, body, header.removeprefix(_PREFIX))


def _hex_matches(secret: bytes, body: bytes, given: str) -> bool:
    given = given.strip().lower()
    if not secret or len(given) != _HEX_LENGTH or not all(c in string.hexdigits for c in given):
        return False
    return hmac.compare_digest(hex_digest(secret, body).encode("ascii"), given.encode("ascii"))


def _token_matches(secret: bytes, given: str) -> bool:
    if not secret or len(given) > _MAX_TOKEN:
        return False
    return hmac.compare_digest(secret, given.strip().encode("utf-8", "surrogateescape"))


def verify_hook(headers: Headers, body: bytes, secret: bytes) -> HookVerdict:
    """Whether the hook with ``headers`` and ``body`` comes from a sender knowing ``secret``."""
    found: dict[str, str] = {}
    wanted = {name.lower(): name for name in CREDENTIAL_HEADERS}
    for name, value in headers.items():
        canonical = wanted.get(name.lower())
        if canonical is None:
            continue
        if found.setdefault(canonical, value) != value:
            return HookVerdict(False, None, f"{canonical} given twice")
    if not found:
        return HookVerdict(False, None, _MISSING)
    for name in CREDENTIAL_HEADERS:
        if name not in found:
            continue
        value = found[name]
        if name == SIGNATURE_HEADER:
            good = verify_signature(secret, body, value)
        elif name == GITLAB_HEADER:
            good = _token_matches(secret, value)
        else:
            good = _hex_matches(secret, body, value)
        if not good:
            return HookVerdict(False, None, f"wrong {name}")
    # Forgejo sends Gitea's and GitHub's headers too: the most specific one names the forge
    first = next(name for name in _FORGES if name in found)
    return HookVerdict(True, _FORGES[first], "verified " + ", ".join(sorted(found)))
