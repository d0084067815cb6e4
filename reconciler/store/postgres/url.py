"""A state database's URL (``postgresql://user:password@host:port/db?…``): which values are
one, and how one is shown with its password masked (logs, errors, the status)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SCHEMES = ("postgresql", "postgres")
MASK = "***"
_SECRET_PARAMS = frozenset({"password", "passfile", "sslpassword"})


def is_state_url(value: str) -> bool:
    """Whether ``value`` names a PostgreSQL database (rather than a state directory)."""
    scheme, sep, _ = value.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


def masked(url: str) -> str:
    """``url`` with its password (in the authority or a query parameter) replaced by ***.

    Whatever does not parse as a URL is shown as the scheme alone: better too little than
    a secret."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, sep, _password = userinfo.partition(":")
            netloc = f"{user}:{MASK}@{hostport}" if sep else f"{user}@{hostport}"
        query = urlencode(
            [
                (key, MASK if key.lower() in _SECRET_PARAMS else value)
                for key, value in parse_qsl(parts.query, keep_blank_values=True)
            ],
            safe="/*",
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return url.partition("://")[0] + "://" + MASK
