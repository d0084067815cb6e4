"""The state database's connection string, read the way libpq reads it, and shown masked.

The operator gives it as a URL (``postgresql://user:password@host:port/db?…``) or as libpq's
``key=value`` form (``host=db user=opsmap password='…' dbname=state``). It is parsed by
libpq itself (:func:`psycopg.conninfo.conninfo_to_dict`, i.e. ``PQconninfoParse``), never
by a URL parser of ours: ``urlsplit`` reads a ``#`` or ``?`` in a password as the start of
a fragment or a query where libpq reads a password, so masking what *it* found left the
rest of the password in the log. What is shown (:func:`masked`) is rebuilt from libpq's
parameters with every secret one replaced; a string libpq refuses is shown as its scheme
alone, since libpq's own complaint quotes the part it refused (``invalid percent-encoded
token: "p%zz…"``), which may be the password. :func:`secrets` gives the secret values so
that a driver's message is scrubbed of them (:func:`scrubbed`) before it is shown.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from psycopg import Error as PsycopgError
from psycopg.conninfo import conninfo_to_dict, make_conninfo

SCHEMES = ("postgresql", "postgres")
MASK = "***"
SECRET_PARAMS = frozenset({"password", "sslpassword", "passfile"})
"""Parameters whose value is a secret, or says where one is kept."""
_KEY_VALUE = re.compile(r"\s*[A-Za-z_]+\s*=")
_URL_ORDER = ("user", "password", "host", "port", "dbname")
"""Parameters that a URL holds in its authority and path rather than its query."""


class ConnInfoError(ValueError):
    """libpq does not accept the connection string (its text is never part of the message)."""


def is_state_url(value: str) -> bool:
    """Whether ``value`` names a PostgreSQL database (rather than a state directory): a
    ``postgresql://`` or ``postgres://`` URL, or libpq's ``key=value`` form."""
    scheme, sep, _ = value.partition("://")
    if sep:
        return scheme.lower() in SCHEMES
    return _KEY_VALUE.match(value) is not None


def parameters(conninfo: str) -> dict[str, str]:
    """The parameters libpq reads in ``conninfo``; ConnInfoError (naming no part of it)
    if libpq refuses it."""
    if "\0" in conninfo:
        raise ConnInfoError("the state database's connection string holds a NUL character")
    try:
        params = conninfo_to_dict(conninfo)
    except (PsycopgError, UnicodeError, ValueError, TypeError):
        raise ConnInfoError(
            "libpq does not accept the state database's connection string "
            "(it is not shown: it may hold a password)"
        ) from None
    found = {str(k): str(v) for k, v in params.items() if v is not None}
    if "@" in found.get("host", "") and "://" in conninfo:
        # libpq ends the user info at the first @: a password's unencoded @ made the
        # rest of the password part of the host, which every message about it names
        raise ConnInfoError(
            "the state database URL's host holds an @ (write an @ in the user or the "
            "password as %40); it is not shown: it may hold a password"
        )
    return found


def masked(conninfo: str) -> str:
    """``conninfo`` as it may be shown: rebuilt from libpq's parameters with every secret
    (:data:`SECRET_PARAMS`) replaced by ``***``, in the form it was given (a URL, or
    ``key=value``); the scheme alone when libpq refuses it."""
    scheme, sep, _ = conninfo.partition("://")
    try:
        params = parameters(conninfo)
    except ConnInfoError:
        return f"{scheme}://{MASK}" if sep and scheme.lower() in SCHEMES else MASK
    shown = {k: (MASK if k in SECRET_PARAMS else v) for k, v in params.items()}
    if sep and scheme.lower() in SCHEMES:
        return _as_url(scheme, shown)
    return make_conninfo("", **shown)


def _as_url(scheme: str, params: dict[str, str]) -> str:
    user = params.get("user")
    hosts = params.get("host", "")
    ports = params.get("port", "")
    query = {k: v for k, v in params.items() if k not in _URL_ORDER}
    authority = ""
    if user is not None:
        password = ":" + MASK if "password" in params else ""
        authority = quote(user, safe="") + password + "@"
    elif "password" in params:
        query["password"] = MASK
    if hosts and not any(h.startswith("/") or h.startswith("@") for h in hosts.split(",")):
        authority += _hostports(hosts, ports)
    else:
        if hosts:
            query = {"host": hosts, **query}
        if ports:
            query["port"] = ports
    path = "/" + quote(params["dbname"], safe="") if "dbname" in params else ""
    tail = "&".join(f"{quote(k, safe='')}={quote(v, safe='/*,')}" for k, v in query.items())
    return f"{scheme}://{authority}{path}" + (f"?{tail}" if tail else "")


def _hostports(hosts: str, ports: str) -> str:
    names = hosts.split(",")
    numbers = ports.split(",") if ports else []
    if len(numbers) == 1:
        numbers = numbers * len(names)
    shown = []
    for i, name in enumerate(names):
        text = f"[{name}]" if ":" in name else quote(name, safe="")
        if i < len(numbers) and numbers[i]:
            text += f":{quote(numbers[i], safe='')}"
        shown.append(text)
    return ",".join(shown)


def secrets(conninfo: str) -> tuple[str, ...]:
    """What in ``conninfo`` must never be shown: libpq's secret values, and the text a URL
    holds them in (a percent-encoded password as written); longest first."""
    found: set[str] = set()
    try:
        params = parameters(conninfo)
    except ConnInfoError:
        params = {}
    found.update(v for k, v in params.items() if k in SECRET_PARAMS and v)
    _, sep, rest = conninfo.partition("://")
    if sep:
        authority = rest.split("/", 1)[0]
        userinfo, at, _ = authority.rpartition("@")
        if at and ":" in userinfo:
            found.add(userinfo.partition(":")[2])
        for piece in re.split(r"[?&]", rest):
            key, eq, value = piece.partition("=")
            if eq and key.lower() in SECRET_PARAMS:
                found.add(value)
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def scrubbed(text: str, hidden: tuple[str, ...]) -> str:
    """``text`` with every one of ``hidden`` (:func:`secrets`) replaced by ``***``."""
    for secret in hidden:
        text = text.replace(secret, MASK)
    return text
