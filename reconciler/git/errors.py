"""The exceptions of :mod:`reconciler.git.mirror`, and masking secrets in what they say.

::

    GitSourceError          anything git could not do; ``str()`` is one line for a user
    ├── RemoteUnreachable   the remote did not answer: dead, refused, timed out; retry later
    └── UnknownCommit       a SHA this mirror does not hold (never fetched, or not a commit)

Library exceptions (``subprocess``'s ``TimeoutExpired``, ``OSError``) never pass through: they
are translated where git is run, with the original kept as ``__cause__``.
"""

from __future__ import annotations

import re

_USERINFO_URL = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


class GitSourceError(Exception):
    """Git could not do what was asked; ``remote`` is the masked remote it concerned."""

    def __init__(self, remote: str, reason: str) -> None:
        super().__init__(f"{remote}: {reason}")
        self.remote = remote
        self.reason = reason


class RemoteUnreachable(GitSourceError):
    """The remote could not be reached or read (temporary: try again at the next poll)."""


class UnknownCommit(GitSourceError):
    """A commit this source does not hold: not fetched yet, garbage, or not a commit."""


def mask_secrets(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``.

    HTTP(S) user info is masked whole (a token is often passed as the user name); for other
    schemes only a password is, since ``ssh://git@host`` names no secret.
    """

    def mask(match: re.Match[str]) -> str:
        scheme, userinfo = match["scheme"], match["userinfo"]
        if scheme.lower().startswith("http"):
            return f"{scheme}***@"
        user, colon, _password = userinfo.partition(":")
        return f"{scheme}{user}:***@" if colon else match[0]

    return _USERINFO_URL.sub(mask, text)
