"""Any text a PR or a host supplies goes through the request pipeline, on both stores.

Property tests (hypothesis, few examples: each is a real merge in a real git repo) merge
request files whose names, reasons and keys hold any Unicode (NUL, lone surrogates, line
separators, by YAML escapes) and raw bytes, and run them through the real
:class:`RequestProcessor` on SQLite and on a throwaway PostgreSQL, the action's output
any bytes (FakeTransport under the real action runner). Afterwards: every request is
journaled with the text it had, denied with a reason or run; the audit chain verifies;
its records, delivered as git notes to the real remote, pass ``opsmap audit verify``.

Then a journal that refuses one request's row (a seam over the real journal raising the
store's StoreError): that request is denied or failed with the reason, audited, and the
next request still runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from any_text import ANY_TEXT, FROM_BYTES
from gitrepos import BareRepo, Clone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from request_counts import Counts
from requests_e2e_support import (
    DMITRI,
    GROUPS,
    MAP,
    SAM,
    TINA,
    component,
    map_yaml,
    policy_yaml,
    request_yaml,
    settings_yaml,
)

from agentless.inventory import Host
from agentless.result import CommandResult
from agentless.testing import FakeTransport, reply
from reconciler.actions import ActionRunner
from reconciler.audit import AuditLog, NotesPublisher, verify_chain
from reconciler.clock import VirtualClock
from reconciler.git.mirror import GitSource
from reconciler.requests.processor import CURSOR_KEY, RequestProcessor
from reconciler.store.calls import StateCalls
from reconciler.store.postgres import PostgresStore
from reconciler.store.protocol import StateStore, StoreError
from reconciler.store.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(240)

REAL_WAIT_S = 60.0
OPERATORS = {"group": "trading-ops", "role": "operator", "maps": [MAP]}
INVENTORY = {"hosts": [{"name": "app-01", "transport": "local", "labels": {"role": "app"}}]}
EXAMPLES = settings(
    max_examples=4,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # seconds an example: no shrinking
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def yaml_quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar, every character by its ``\\U`` escape (so
    NUL and lone surrogates reach the parser as they are)."""
    return '"' + "".join(f"\\U{ord(c):08x}" for c in text) + '"'


def file_name(data: bytes) -> str:
    """Bytes as a file name (no slash, no NUL), as git hands it to OpsMap."""
    name = data.replace(b"/", b"_").replace(b"\0", b"_").decode("utf-8", "surrogateescape")
    return name[:40]


@dataclass
class Pipeline:
    """A map repo, a state store, and the processor over them (re-made for each head)."""

    remote: BareRepo
    clone: Clone
    cursor: str
    tmp_path: Path
    open_store: Callable[[], StateStore]
    output: str = ""
    refuse: dict[str, set[str]] = field(default_factory=dict)
    """For each journal call (``started``, ``denied``, ``get``, ``finished``, ``recover``,
    and ``cursor`` for the cursor's save), the paths (or ``*``) it refuses with a
    StoreError, as a store that cannot take a value would."""
    prs: int = 0

    def merge(self, files: dict[str, str | bytes]) -> str:
        self.prs += 1
        self.clone.pull_request(f"pr-{self.prs}", dict(files), author=DMITRI, merger=TINA)
        self.clone.push()
        return self.clone.head()

    def process(self, head: str) -> Result:
        source = GitSource(self.remote.url, cache_dir=self.tmp_path / "cache", timeout_s=30)
        source.fetch()
        store = self.open_store()
        clock = VirtualClock()
        state = StateCalls.of(store)
        outbox = AuditLog(store.outbox, clock=clock, deferred=store.blocks)

        def handle(host: Host, command: str, timeout: float) -> CommandResult:
            return reply(host, command, exit_status=1, stdout=self.output, stderr=self.output)

        processor = RequestProcessor(
            source=source,
            journal=_Refusing(store.journal, self.refuse),  # type: ignore[arg-type]
            auditor=outbox,
            executor=ActionRunner(FakeTransport(handle), clock=clock),
            counters=Counts(),
            cursor=self.cursor,
            save_cursor=_refusing_cursor(store, self.refuse),
            applied_revision=lambda: head,
            clock=clock,
            state=state,
        )

        async def scenario() -> None:
            await processor.recover()
            task = asyncio.create_task(processor.process(head))
            deadline = time.monotonic() + REAL_WAIT_S
            while not task.done():
                assert time.monotonic() < deadline, "the processor did not finish"
                await clock.advance(1.0)
                await asyncio.sleep(0.01)
            await task
            await state("audit", outbox.flush)

        try:
            asyncio.run(scenario())
            records = outbox.all_records()
            assert verify_chain(records) is None
            publisher = NotesPublisher(source.mirror, source.url)
            publisher.publish(records)
            entries = {e.path: e for e in store.journal.entries()}
        finally:
            source.close()
            store.close()
        self.cursor = head
        return Result(entries, records)


def _refused(refuse: dict[str, set[str]], call: str, path: str) -> None:
    if path in refuse.get(call, ()) or "*" in refuse.get(call, ()):
        raise StoreError(f"cannot {call} journal: value refused for {path!r}")


def _refusing_cursor(store: StateStore, refuse: dict[str, set[str]]) -> Callable[[str], None]:
    def save(sha: str) -> None:
        _refused(refuse, "cursor", sha)
        store.set_cursor(CURSOR_KEY, sha)

    return save


class _Refusing:
    """The real journal, but the calls and paths ``refuse`` names raise StoreError."""

    def __init__(self, journal: Any, refuse: dict[str, set[str]]) -> None:
        self._journal = journal
        self._refuse = refuse

    def __getattr__(self, name: str) -> Any:
        return getattr(self._journal, name)

    def started(self, path: str, *args: Any) -> None:
        _refused(self._refuse, "started", path)
        self._journal.started(path, *args)

    def denied(self, path: str, *args: Any) -> None:
        _refused(self._refuse, "denied", path)
        self._journal.denied(path, *args)

    def get(self, path: str) -> Any:
        _refused(self._refuse, "get", path)
        return self._journal.get(path)

    def finished(self, path: str, state: str, outcome: dict[str, Any]) -> None:
        if "error" not in outcome:  # the stand-in outcome is stored
            _refused(self._refuse, "finished", path)
        self._journal.finished(path, state, outcome)

    def recover(self, on_unknown: Any = None) -> Any:
        _refused(self._refuse, "recover", "*")
        return self._journal.recover(on_unknown)


@dataclass
class Result:
    journal: dict[str, Any]
    records: list[Any]

    def actions_of(self, path: str) -> list[str]:
        return [r.action for r in self.records if r.target.get("request") == path]


@pytest.fixture(params=["sqlite", "postgresql"])
def pipeline(request: pytest.FixtureRequest, tmp_path: Path) -> Pipeline:
    if request.param == "sqlite":
        opener: Callable[[], StateStore] = lambda: SqliteStore(tmp_path / "state")  # noqa: E731
    else:
        url: str = request.getfixturevalue("pg_url")
        opener = lambda: PostgresStore(url)  # noqa: E731
    remote = BareRepo.create(tmp_path / "remote.git")
    clone = Clone.create(remote, tmp_path / "work")
    restart = [{"name": "restart", "command": "systemctl restart api"}]
    base = clone.commit("the map", author=SAM, files={
        "opsmap.yaml": settings_yaml(),
        "inventory/local.yaml": yaml.safe_dump(INVENTORY),
        "policies/groups.yaml": policy_yaml(groups=GROUPS),
        "policies/trading.yaml": policy_yaml([OPERATORS]),
        f"maps/{MAP}.yaml": map_yaml([component("api", restart)]),
    })  # fmt: skip
    clone.push()
    return Pipeline(remote, clone, base, tmp_path, opener)


def audit_verify(repo: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "audit", "verify", "--repo", str(repo)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


_n = iter(range(10**6))


def json_normal(value: object) -> object:
    """``value`` as JSON reads it back (a high surrogate before a low one: one character)."""
    return json.loads(json.dumps(value))


def values_of(value: object, key: str) -> list[object]:
    """Every value of ``key`` in the JSON ``value``, depth first."""
    if isinstance(value, dict):
        here = [value[key]] if key in value else []
        return here + [v for item in value.values() for v in values_of(item, key)]
    if isinstance(value, list):
        return [v for item in value for v in values_of(item, key)]
    return []


@EXAMPLES
@given(name=st.binary(min_size=1, max_size=24), reason=st.text(), key=ANY_TEXT, output=FROM_BYTES)
def test_any_text_from_a_pr_or_a_host_is_journaled_audited_and_verifies(
    pipeline: Pipeline, name: bytes, reason: str, key: str, output: str
) -> None:
    """``reason``: any Unicode the YAML parser takes (it refuses a surrogate's escape:
    ``key`` has them, and its file is denied either way, for that)."""
    stem = f"requests/{next(_n)}-{file_name(name)}"
    ran, extra, raw = f"{stem}-run.yaml", f"{stem}-key.yaml", f"{stem}-raw.yaml"
    valid = request_yaml("api", "restart")
    pipeline.output = output
    head = pipeline.merge({
        ran: f"map: {MAP}\ncomponent: api\naction: restart\nreason: {yaml_quoted('r' + reason)}\n",
        extra: valid + f"{yaml_quoted(key + chr(0))}: 1\n",
        raw: valid.encode() + b"note: \xff\xfe\x00" + name + b"\n",
    })  # fmt: skip
    result = pipeline.process(head)
    entry = result.journal[ran]  # found by its path: the file name's bytes came back
    assert entry.state == "failed"  # it ran: the command exits 1
    assert result.actions_of(ran) == ["request.authorized", "action.started", "action.failed"]
    authorized, _, failed = [r for r in result.records if r.target.get("request") == ran]
    assert authorized.details["reason"] == json_normal("r" + reason)
    digest = hashlib.sha256((output + output).encode("utf-8", "surrogateescape")).hexdigest()
    assert values_of(entry.outcome, "output_sha256") == [digest]
    assert values_of(failed.details, "output_sha256") == [digest]
    assert values_of(entry.outcome, "output_excerpt") == values_of(failed.details, "output_excerpt")
    for denied in (extra, raw):
        entry = result.journal[denied]
        assert entry.state == "denied"
        assert entry.rule.startswith("invalid request file")
        assert result.actions_of(denied) == ["request.denied"]
    verified = audit_verify(pipeline.remote.path)
    assert verified.returncode == 0, verified.stderr
    assert "chain intact" in verified.stdout


def test_a_request_whose_journal_row_is_refused_is_denied_and_the_next_one_runs(
    pipeline: Pipeline,
) -> None:
    bad, good = "requests/a-refused.yaml", "requests/b-later.yaml"
    pipeline.refuse = {"started": {bad}, "denied": {bad}}
    head = pipeline.merge({bad: request_yaml("api", "restart")})
    first = pipeline.process(head)
    assert bad not in first.journal  # it could not be journaled: it did not run
    denial = [r for r in first.records if r.target.get("request") == bad]
    assert [r.action for r in denial] == ["request.denied"]
    assert "the journal cannot store it" in denial[0].details["rule"]
    assert "not recorded" in denial[0].details["journal"]
    second = pipeline.process(pipeline.merge({good: request_yaml("api", "restart")}))
    assert second.journal[good].state == "failed"  # it ran (the command exits 1)
    verified = audit_verify(pipeline.remote.path)
    assert verified.returncode == 0, verified.stderr


def test_a_journal_row_that_cannot_be_read_is_never_run_and_is_audited(
    pipeline: Pipeline,
) -> None:
    unread, good = "requests/a-unread.yaml", "requests/b-read.yaml"
    pipeline.refuse = {"get": {unread}, "recover": {"*"}, "cursor": {"*"}}
    head = pipeline.merge({unread: request_yaml("api", "restart"), good: request_yaml(
        "api", "restart")})  # fmt: skip
    result = pipeline.process(head)  # recovery and the cursor refused too: it goes on
    assert result.journal[unread].state == "denied"
    assert "its journal row cannot be read" in result.journal[unread].rule
    assert result.actions_of(unread) == ["request.denied"]
    assert result.journal[good].state == "failed"  # it ran (the command exits 1)


def test_an_outcome_the_journal_refuses_is_recorded_as_its_result_and_why(
    pipeline: Pipeline,
) -> None:
    path, later = "requests/a-outcome.yaml", "requests/b-after.yaml"
    pipeline.refuse = {"finished": {path}}
    head = pipeline.merge({path: request_yaml("api", "restart")})
    first = pipeline.process(head)
    entry = first.journal[path]
    assert entry.state == "failed"
    assert entry.outcome["result"] == "failed"
    assert "the outcome was not stored: cannot finished journal" in entry.outcome["error"]
    assert first.actions_of(path) == ["request.authorized", "action.started", "action.failed"]
    second = pipeline.process(pipeline.merge({later: request_yaml("api", "restart")}))
    assert second.journal[later].state == "failed"  # it ran
