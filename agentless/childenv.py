"""The environment of every process OpsMap starts: an allow-list, never OpsMap's secrets.

A local check or action, and git, get only the variables named here, taken from
OpsMap's own environment when set there:

- :data:`BASE` for everything: ``PATH``, ``HOME``, ``USER``, ``LOGNAME``, ``LANG``,
  ``LC_ALL``, ``TZ``, ``TMPDIR``;
- :data:`GIT_EXTRA` for git besides: ``SSH_AUTH_SOCK`` (to fetch over SSH with the
  operator's agent), the proxy variables and the CA bundle variables.

Never a variable whose name starts with ``OPSMAP_`` (``OPSMAP_WEBHOOK_SECRET``…), and never
one the operator marks secret: the comma-separated names in ``OPSMAP_SECRET_ENV`` (``opsmap
run --secret-env NAME`` adds to it).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

__all__ = ["BASE", "GIT_EXTRA", "SECRET_ENV", "child_environment", "secret_names"]

BASE = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR")
GIT_EXTRA = (
    "SSH_AUTH_SOCK",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
)
SECRET_ENV = "OPSMAP_SECRET_ENV"  # noqa: S105 (a variable name)
"""Names (comma-separated) of variables that no child process gets, whatever the lists say."""
_NEVER_PREFIX = "OPSMAP_"
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def secret_names(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The names the operator marked secret in ``OPSMAP_SECRET_ENV``."""
    source = os.environ if environ is None else environ
    return frozenset(n.strip() for n in source.get(SECRET_ENV, "").split(",") if n.strip())


def child_environment(
    extra: Iterable[str] = (),
    *,
    fixed: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for a child: allowed names from ``environ`` (``os.environ``), then ``fixed``.

    ``PATH`` falls back to a plain system path when OpsMap has none.
    """
    source = os.environ if environ is None else environ
    secret = secret_names(source)
    env = {
        name: source[name]
        for name in (*BASE, *extra)
        if name in source and not name.startswith(_NEVER_PREFIX) and name not in secret
    }
    env.setdefault("PATH", _DEFAULT_PATH)
    env.update(fixed or {})
    return env
