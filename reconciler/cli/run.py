"""``opsmap run``: the long-running reconciler."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agentless.childenv import SECRET_ENV, secret_names
from agentless.output import DEFAULT_MAX_OUTPUT, MAX_MAX_OUTPUT, MIN_MAX_OUTPUT
from reconciler.cli import EXIT_OK, EXIT_USAGE, usage_error, verbosity
from reconciler.cli.logs import FORMATS, setup_logging
from reconciler.inert import for_log

if TYPE_CHECKING:
    from reconciler.server.connections import Limits
    from reconciler.server.identity import IpNetwork

log = logging.getLogger("opsmap")

DEFAULT_LISTEN = "127.0.0.1:9736"
DEFAULT_STATE_DIR = ".opsmap-state"
STATE_URL_ENV = "OPSMAP_STATE_URL"
REPLICA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,47}")
HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo",
        required=True,
        metavar="URL|PATH",
        help="the map repo: a file://, ssh:// or https:// remote, or a local path",
    )
    parser.add_argument(
        "--branch",
        default=None,
        help="the branch to follow (default: the remote's default branch, the one its HEAD "
        "names, as git clone takes it; main, then master, where HEAD names none)",
    )
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"where to serve the page, /api/v1/*, /hooks/git, /healthz, /readyz and (without "
        f"--metrics-listen) /metrics ({DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve /metrics here instead (with /healthz and /readyz), on a port that can be "
        "firewalled apart from the page's",
    )
    add_limit_arguments(parser)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(DEFAULT_STATE_DIR),
        metavar="DIR",
        help=f"where state (SQLite) and the repo mirror live (default ./{DEFAULT_STATE_DIR})",
    )
    state = parser.add_mutually_exclusive_group()
    state.add_argument(
        "--state",
        metavar="URL",
        help="keep the state in PostgreSQL (postgresql://…) instead of SQLite in --state-dir "
        "(which then holds the repo mirror only); a URL with a password is better given by "
        f"--state-url-file or ${STATE_URL_ENV}, out of the process list",
    )
    state.add_argument(
        "--state-url-file",
        type=Path,
        metavar="FILE",
        help=f"a file holding the PostgreSQL URL of --state (or ${STATE_URL_ENV})",
    )
    parser.add_argument(
        "--replica",
        metavar="NAME",
        help="run as one replica of several on the PostgreSQL state (--state…): one leader "
        "runs requests and delivers audit, the live replicas share the hosts' checks",
    )
    parser.add_argument(
        "--lease",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --replica: the leader's lease, renewed every third of it; a dead "
        "leader's requests wait this long for another (default 15)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how often to ask the remote for its head, with jitter (default: the applied "
        "revision's poll_interval_secs in opsmap.yaml, 30 without one)",
    )
    parser.add_argument(
        "--stop-grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, how long a running action may still take to finish and have its "
        "outcome recorded; past that it is recorded unknown (default 30)",
    )
    parser.add_argument(
        "--webhook-secret-file",
        type=Path,
        metavar="FILE",
        help="shared secret of POST /hooks/git (or $OPSMAP_WEBHOOK_SECRET); without one, "
        "webhooks are refused",
    )
    add_key_dir_argument(parser)
    add_max_output_argument(parser)
    parser.add_argument(
        "--trusted-user-header",
        metavar="HEADER",
        help="behind an authenticating proxy: the header naming the person (e.g. "
        "X-Forwarded-Email); each sees only the maps and components their policies let them "
        "view. Only from --trusted-proxy addresses; give both or neither",
    )
    parser.add_argument(
        "--trusted-proxy",
        metavar="ADDR[,ADDR]",
        help="the proxies' addresses (or networks) whose --trusted-user-header is believed",
    )
    parser.add_argument(
        "--secret-env",
        action="append",
        default=[],
        metavar="NAME",
        help="an environment variable no process OpsMap starts may get (repeatable; adds "
        f"to ${SECRET_ENV}); OPSMAP_* never reach them anyway",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=FORMATS,
        help="log lines on stderr: text, or one JSON object a line with the map, component, "
        "check, host, revision and request as fields (default text); times in UTC",
    )


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """The HTTP listener's bounds (:class:`reconciler.server.connections.Limits`)."""
    parser.add_argument(
        "--max-connections",
        type=int,
        default=256,
        metavar="N",
        help="connections open at once, event streams included; 16 more are kept for "
        "/healthz and /readyz (default 256)",
    )
    parser.add_argument(
        "--max-streams-per-client",
        type=int,
        default=8,
        metavar="N",
        help="event streams one client may hold open: an address, or a person behind the "
        "trusted proxy (default 8)",
    )
    parser.add_argument(
        "--max-requests-per-client",
        type=int,
        default=16,
        metavar="N",
        help="requests one client may have in progress at once, probes apart (default 16)",
    )
    parser.add_argument(
        "--send-timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="a client that reads (acknowledges) nothing it is sent for this long is "
        "dropped, an idle event stream's too (default 15)",
    )


def limits_argument(args: argparse.Namespace) -> Limits | int:
    """The listener's :class:`Limits` from the flags, or the usage error's exit status."""
    counts = {
        "--max-connections": args.max_connections,
        "--max-streams-per-client": args.max_streams_per_client,
        "--max-requests-per-client": args.max_requests_per_client,
    }
    for flag, value in counts.items():
        if not 1 <= value <= 100_000:
            return usage_error(f"{flag} must be between 1 and 100000")
    if not 0.1 <= args.send_timeout <= 3600:
        return usage_error("--send-timeout must be between 0.1 and 3600 seconds")
    from reconciler.server.connections import Limits  # aiohttp: only for `opsmap run`

    return Limits(
        max_connections=args.max_connections,
        streams_per_client=args.max_streams_per_client,
        requests_per_client=args.max_requests_per_client,
        send_timeout_s=args.send_timeout,
    )


def add_key_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ssh-key-dir",
        type=Path,
        metavar="DIR",
        help="the folder whose keys an inventory's identity_file may name (a relative name "
        "in it); without it, only default keys (~/.ssh/id_*) and the ssh-agent",
    )


_SIZE = re.compile(r"([0-9]{1,9})([KkMm]?)")


def add_max_output_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-output",
        default=str(DEFAULT_MAX_OUTPUT // 1024) + "K",
        metavar="BYTES",
        help="bytes kept of each stream (stdout, stderr) of a check or action, e.g. 256K or "
        "1M; the rest is counted and dropped as it arrives, and a check over it is UNKNOWN "
        f"(default {DEFAULT_MAX_OUTPUT // 1024}K)",
    )


def max_output_argument(value: str) -> int | None:
    """``--max-output`` in bytes, or None once its usage error is printed."""
    match = _SIZE.fullmatch(value.strip())
    scale = {"": 1, "k": 1024, "m": 1024 * 1024}
    size = int(match[1]) * scale[match[2].lower()] if match else 0
    if not MIN_MAX_OUTPUT <= size <= MAX_MAX_OUTPUT:
        usage_error(
            f"--max-output {value}: expected {MIN_MAX_OUTPUT // 1024}K to "
            f"{MAX_MAX_OUTPUT // (1024 * 1024)}M (a number of bytes, or with K or M)"
        )
        return None
    return size


def key_dir_argument(value: Path | None) -> Path | int | None:
    """``--ssh-key-dir`` resolved, or the usage error's exit status when it is no folder."""
    if value is None:
        return None
    if not value.is_dir():
        return usage_error(f"--ssh-key-dir {value}: not a directory")
    return value.resolve()


def state_url(args: argparse.Namespace) -> str | int | None:
    """The PostgreSQL URL of the state (``--state``, ``--state-url-file``, then
    ``$OPSMAP_STATE_URL``), None for SQLite, or the usage error's exit status. A bad
    value is never echoed: it may hold a password."""
    if args.state is not None:
        value, source = args.state, "--state"
    elif args.state_url_file is not None:
        source = f"--state-url-file {args.state_url_file}"
        try:
            value = args.state_url_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            problem = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            return usage_error(f"cannot read {args.state_url_file}: {problem}")
    else:
        value, source = os.environ.get(STATE_URL_ENV, "").strip(), f"${STATE_URL_ENV}"
        if not value:
            return None
    from reconciler.store.postgres.url import ConnInfoError, is_state_url, parameters

    if not is_state_url(value) or any(c in value for c in "\n\r\0"):
        return usage_error(
            f"{source}: expected a postgresql:// URL or libpq's key=value connection string "
            "(for SQLite state, use --state-dir)"
        )
    try:
        parameters(value)
    except ConnInfoError as exc:
        return usage_error(f"{source}: {exc}")
    return str(value)


def trusted_arguments(
    header: str | None, proxies: str | None
) -> tuple[str | None, tuple[IpNetwork, ...]] | int:
    """``--trusted-user-header`` and ``--trusted-proxy`` checked (both or neither), or the
    usage error's exit status."""
    if header is None and proxies is None:
        return None, ()
    if header is None or proxies is None:
        given, missing = (
            ("--trusted-user-header", "--trusted-proxy")
            if proxies is None
            else ("--trusted-proxy", "--trusted-user-header")
        )
        return usage_error(f"{given} needs {missing}: give both or neither")
    if not HEADER_NAME.fullmatch(header):
        return usage_error(f"--trusted-user-header {header}: not an HTTP header name")
    from reconciler.server.identity import parse_proxies  # aiohttp: only for `opsmap run`

    try:
        return header, parse_proxies(proxies)
    except ValueError as exc:
        return usage_error(str(exc))


def parse_listen(value: str, flag: str = "--listen") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError(f"{flag} {value!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def run(args: argparse.Namespace) -> int:
    level = logging.getLevelName(args.log_level) - 10 * verbosity(args)
    setup_logging(min(max(level, logging.DEBUG), logging.ERROR), log_format=args.log_format)
    # the state store reports a database that fails once per reason; the pool's own
    # warnings would repeat it at every attempt to reconnect
    logging.getLogger("psycopg.pool").setLevel(max(logging.ERROR, logging.getLogger().level))
    try:
        listen = parse_listen(args.listen)
        metrics_listen = (
            None
            if args.metrics_listen is None
            else parse_listen(args.metrics_listen, "--metrics-listen")
        )
    except ValueError as exc:
        return usage_error(str(exc))
    limits = limits_argument(args)
    if isinstance(limits, int):
        return limits
    if args.poll_interval is not None and args.poll_interval <= 0:
        return usage_error("--poll-interval must be positive")
    if not 0 <= args.stop_grace <= 3600:
        return usage_error("--stop-grace must be between 0 and 3600 seconds")
    key_dir = key_dir_argument(args.ssh_key_dir)
    if isinstance(key_dir, int):
        return key_dir
    max_output = max_output_argument(args.max_output)
    if max_output is None:
        return EXIT_USAGE
    trusted = trusted_arguments(args.trusted_user_header, args.trusted_proxy)
    if isinstance(trusted, int):
        return trusted
    if trusted[0] is not None and metrics_listen is None:
        log.warning(
            "identities are enforced (--trusted-user-header) but /metrics is served on the "
            "page's listener, where it names every map, component and host to anyone who "
            "reaches it: serve it apart with --metrics-listen HOST:PORT"
        )
    names = [n for n in args.secret_env if n]
    if any("," in n or "=" in n for n in names):
        return usage_error("--secret-env takes a variable name (no ',' or '=')")
    if names:
        os.environ[SECRET_ENV] = ",".join(sorted(secret_names() | set(names)))
    secret = os.environ.get("OPSMAP_WEBHOOK_SECRET", "").encode() or None
    if args.webhook_secret_file is not None:
        try:
            secret = args.webhook_secret_file.read_bytes().strip() or None
        except OSError as exc:
            return usage_error(f"cannot read {args.webhook_secret_file}: {exc.strerror}")
    url = state_url(args)
    if isinstance(url, int):
        return url
    problem = replica_problem(args.replica, args.lease, url)
    if problem is not None:
        return usage_error(problem)
    from reconciler.model.runtime import RuntimeSettings, SshLimits
    from reconciler.server.service import ServiceError, run_service

    try:
        asyncio.run(
            run_service(
                repo=args.repo,
                branch=args.branch,
                listen=listen,
                metrics_listen=metrics_listen,
                limits=limits,
                state_dir=args.state_dir.resolve(),
                state_url=url,
                poll_interval_s=args.poll_interval,
                webhook_secret=secret,
                ssh_key_dir=key_dir,
                install_signal_handlers=True,
                stop_grace_s=args.stop_grace,
                replica=args.replica,
                lease_s=args.lease,
                trusted_user_header=trusted[0],
                trusted_proxies=trusted[1],
                settings=RuntimeSettings(ssh=SshLimits(max_output=max_output)),
            )
        )
    except ServiceError as exc:
        print(f"opsmap: error: {for_log(exc)}", file=sys.stderr)
        return exc.exit_code
    return EXIT_OK


def replica_problem(name: str | None, lease_s: float | None, url: str | None) -> str | None:
    """What is wrong with ``--replica``/``--lease``, or None."""
    if name is None:
        return "--lease goes with --replica" if lease_s is not None else None
    if url is None:
        return "--replica needs the state in PostgreSQL (--state, --state-url-file or "\
            f"${STATE_URL_ENV}): replicas share one database"  # fmt: skip
    if not REPLICA_NAME.fullmatch(name):
        return "--replica: a name of 1 to 48 letters, digits, '.', '_' or '-'"
    if lease_s is not None and not 1 <= lease_s <= 3600:
        return "--lease must be between 1 and 3600 seconds"
    return None


__all__ = [
    "add_arguments",
    "add_key_dir_argument",
    "add_limit_arguments",
    "add_max_output_argument",
    "key_dir_argument",
    "limits_argument",
    "max_output_argument",
    "parse_listen",
    "run",
    "state_url",
    "trusted_arguments",
]
