"""Processing merged requests, once each, in first-parent order.

For every commit on the branch's first-parent chain after the last one processed, every
request file it added is read at that commit, judged against the repo at the commit's
first parent (:mod:`reconciler.policy.judge`), journaled before anything runs
(:class:`reconciler.store.protocol.Journal`), run through the action runner, and audited at
each step.
Who asked and who approved come from :func:`reconciler.git.attribution.attribute`: claims
of the commits (the author of the commit that added the file, the author of the merge;
none for a direct commit), or with ``require_signed_commits`` verified signers only. Every
audit record of a request carries them (``details.identity``), ``verified`` or not.

State that cannot be written (:class:`~reconciler.store.writes.StateWriteError`: disk full,
I/O error) never stops the processor and never loses a decision: a request whose journal
row cannot be written does not start; it waits (:attr:`RequestProcessor.waiting` says
which and why) and processing goes on from the cursor where it stopped, with backoff,
when the state can be written again: requests already journaled are not run again, none
after it is skipped. An outcome that cannot be recorded is retried until it is; a cursor
that cannot be saved is saved later (the journal alone keeps requests from running twice).
A row the store refuses (a :class:`~reconciler.store.protocol.StoreError`: a value it does
not take, a row it cannot read) is that request's error alone: it does not run, it is
denied with the reason and audited (an outcome it refuses is stored as its result and
why), and the requests after it go on.

Every call of the journal, the audit outbox and the cursor goes through
:class:`~reconciler.store.calls.StateCalls`: on the loop for SQLite, in a worker thread for
PostgreSQL, so the loop never waits on the database. The order stays what the processor
awaits: the records before a request are stored, then its journal row is committed (and
fenced by the leader's term, in PostgreSQL) before its action starts; its outcome is
written after the action, before the records that tell it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from agentless.inventory import Host
from reconciler.clock import Clock, RealClock
from reconciler.git.attribution import Attribution, attribute
from reconciler.git.changes import AllowedSigner
from reconciler.git.mirror import BlobTooLarge, Commit, GitSource, GitSourceError
from reconciler.logcontext import ContextLogger, context
from reconciler.model import Action, Component, Map, Request
from reconciler.model.vocabulary import ALL_COMPONENTS
from reconciler.policy.judge import Base, Judgement, judge
from reconciler.repo.explain import explain
from reconciler.repo.loader import load_repo
from reconciler.repo.yamlparse import YamlError, parse_yaml
from reconciler.store.calls import IMMEDIATE, StateCalls
from reconciler.store.protocol import Journal, JournalEntry, RequestState, StoreError
from reconciler.store.writes import StateWriteError, wait_written

log = logging.getLogger(__name__)

CURSOR_KEY = "requests_cursor"
_STEPS = {
    "start": "not started",
    "outcome": "it ran; its outcome is not recorded yet",
    "recovery": "marking requests the last process left running",
}


class Auditor(Protocol):
    def append(
        self,
        *,
        action: str,
        actor: str,
        target: dict[str, Any],
        details: dict[str, Any],
        commit: str,
        revision: str | None,
    ) -> object: ...

    def flush(self) -> int:
        """Store records kept in memory; StateWriteError while the state is not writable."""
        ...


class Outcome(Protocol):
    @property
    def succeeded(self) -> bool: ...

    @property
    def result(self) -> Literal["succeeded", "failed", "unknown"]:
        """``unknown``: sent, and how it ended is not known (:mod:`reconciler.actions`)."""
        ...

    def to_json(self) -> dict[str, Any]: ...


class Executor(Protocol):
    async def run_action(
        self, map_name: str, component: Component, action: Action, hosts: Sequence[Host]
    ) -> Outcome: ...

    async def run_whole_map(
        self, map_: Map, verb: str, hosts_by_component: Mapping[str, Sequence[Host]]
    ) -> Outcome: ...


class Counters(Protocol):
    def request(self, result: str) -> None: ...

    def action(self, map_name: str, component: str, action: str, result: str) -> None: ...


class RequestProcessor:
    """Runs each newly merged request at most once; the reconciler feeds it new heads."""

    def __init__(
        self,
        *,
        source: GitSource,
        journal: Journal,
        auditor: Auditor,
        executor: Executor,
        counters: Counters,
        cursor: str | None,
        save_cursor: Any,
        applied_revision: Any,
        clock: Clock | None = None,
        state: StateCalls = IMMEDIATE,
    ) -> None:
        """``state``: how the journal, the auditor's flush and ``save_cursor`` are called
        (in a thread for a store that blocks); the auditor's appends are made on the loop
        (a deferred audit log only keeps them there)."""
        self.source = source
        self._state = state
        self.journal = journal
        self.auditor = auditor
        self.executor = executor
        self.counters = counters
        self.cursor = cursor
        self._save_cursor = save_cursor
        self._applied_revision = applied_revision
        self._last_base: tuple[str, Base] | None = None
        self._clock = clock or RealClock()
        self._cursor_unsaved = False
        self._handling: tuple[str, str] | None = None
        """The request file and commit being handled (named when it has to wait)."""
        self.waiting: dict[str, Any] | None = None
        """The request that waits for the state to be writable, and why; None if none."""
        #: Set on a clean stop: no further request starts (the running one may finish).
        self.stop_requested = False

    def start_from(self, sha: str) -> None:
        """Requests already on the branch at ``sha`` are history: none of them runs."""
        if self.cursor is None:
            log.info("requests up to %s are history: none of them will run", sha[:12])
            self.cursor = sha
            if self._state.blocks:  # saved by the next process(), off the loop
                self._cursor_unsaved = True
                return
            try:
                self._save_cursor(sha)
            except (StateWriteError, StoreError):
                self._cursor_unsaved = True  # reported by the store; saved by process()

    async def recover(self) -> None:
        """Report requests whose action was running when OpsMap last stopped: never rerun.

        Retried (with backoff) until every one of them is marked ``unknown``. Each is
        reported on the loop, as soon as it is marked (from a worker thread, through the
        loop's queue: a mark is reported even when the loop stopped awaiting the call)."""
        report = self._report_unknown
        if self._state.blocks:
            loop = asyncio.get_running_loop()

            def report(entry: JournalEntry) -> None:
                loop.call_soon_threadsafe(self._report_unknown, entry)

        try:
            await self._until_written(self.journal.recover, report, step="recovery")
        except StoreError as exc:  # a row it cannot read: that request is not run again
            log.error("requests left running by the last process not all marked: %s", exc)
        self._resumed()

    async def _until_written(self, write: Any, *args: object, step: str) -> Any:
        """``write(*args)`` to the journal, again after each StateWriteError's delay."""
        return await wait_written(
            lambda: self._state("journal", write, *args),
            clock=self._clock,
            waiting=functools.partial(self._wait, step=step),
        )

    def _report_unknown(self, entry: JournalEntry) -> None:
        log.error(
            "request %s: outcome unknown (OpsMap stopped while it ran); not re-run",
            entry.path,
            extra=context(request=entry.path),
        )
        self.counters.request("unknown")
        self.auditor.append(
            action="action.unknown",
            actor=entry.requester or "unknown",
            target={"request": entry.path},
            details={
                "result": "unknown",
                "reason": "OpsMap stopped while the action ran; it is not run again",
                "identity": entry.identity,
            },
            commit=entry.commit,
            revision=self._applied_revision(),
        )

    async def process(self, head: str) -> None:
        """Every request merged after the cursor and up to ``head``, in first-parent order.

        While the journal cannot be written, waits (with backoff) and goes on from the
        cursor, where it stopped."""
        while True:
            try:
                await self._process(head)
            except StateWriteError as exc:
                self._wait(exc, step="start")
                await self._clock.sleep(exc.delay)
            else:
                self._resumed()
                return

    def _wait(self, exc: StateWriteError, *, step: str) -> None:
        """``exc`` stopped the request being handled at ``step``: it waits, and says why.

        ``step`` is ``start`` (not started: its journal row or the records before it could
        not be written), ``outcome`` (it ran; its outcome is not recorded yet) or
        ``recovery`` (requests left running by the last process are being marked)."""
        path, commit = ("", "") if step == "recovery" else (self._handling or ("", ""))
        previous = self.waiting
        key = (path or None, step, str(exc))
        if previous is None or (previous["request"], previous["step"], previous["reason"]) != key:
            log.error(
                "request %s waits (%s): %s; it goes on when the state can be written",
                path or "recovery",
                _STEPS[step],
                exc,
            )
        same = previous is not None and previous["request"] == (path or None)
        self.waiting = {
            "request": path or None,
            "commit": commit or None,
            "step": step,
            "reason": str(exc),
            "since": previous["since"] if same and previous else self._clock.wall(),
        }

    def _resumed(self) -> None:
        if self.waiting is not None:
            log.warning("request %s: the state is writable again, going on",
                        self.waiting["request"] or "recovery")  # fmt: skip
            self.waiting = None

    async def _store_cursor(self, sha: str) -> None:
        """Save the cursor; when it cannot be written, it is saved again later."""
        try:
            await self._state("cursor", self._save_cursor, sha)
        except StateWriteError:
            self._cursor_unsaved = True  # reported by the store; the journal keeps requests once
        except StoreError as exc:
            log.error("requests' cursor not saved: %s", exc)
            self._cursor_unsaved = True
        else:
            self._cursor_unsaved = False

    async def _process(self, head: str) -> None:
        if self.cursor is not None and self._cursor_unsaved:
            await self._store_cursor(self.cursor)
        if self.cursor is None or self.cursor == head:
            return
        # Git is read in threads (each git command under the runner's timeout). The journal,
        # the audit outbox and the cursor are single rows: in SQLite written on the loop
        # (cheap and bounded), in PostgreSQL in a thread (self._state); each awaited, so
        # durable before the next step. The cursor is saved after each commit with
        # requests and once at the end, not once per commit: a push of many commits must
        # not become as many writes in a row.
        commits = await asyncio.to_thread(self.source.first_parent_path, self.cursor, head)
        for commit in commits:
            if self.stop_requested:  # the cursor stays before this commit: it runs next start
                return
            paths = [p for p in commit.added_requests if await self._new(commit, p)]
            if not paths:
                continue
            await self._handle_commit(commit, paths)
            self._handling = None
            if self.stop_requested:  # the requests it did not start run at the next start
                return
            self.cursor = commit.sha
            await self._store_cursor(commit.sha)
        if commits and self.cursor != commits[-1].sha:
            self.cursor = commits[-1].sha
            await self._store_cursor(self.cursor)

    async def _new(self, commit: Commit, path: str) -> bool:
        try:
            previous = await self._state("journal", self.journal.get, path)
        except StoreError as exc:  # whether it ran is unknown: never run it
            self._handling = (path, commit.sha)
            nobody = Attribution(None, None).to_json()
            rule = f"not run: its journal row cannot be read: {exc}"
            await self._deny(commit, path, None, None, rule, {}, identity=nobody)
            return False
        if previous is not None:
            log.info(
                "request %s was already processed (%s): not again",
                path,
                previous.state,
                extra=context(request=path),
            )
        return previous is None

    async def _handle_commit(self, commit: Commit, paths: Sequence[str]) -> None:
        """The requests ``commit`` added: its history is read once for all of them."""
        base_sha = commit.first_parent
        base = await asyncio.to_thread(self._base, base_sha) if base_sha else None
        signers = None
        if base is not None and base.repo.effective_settings.require_signed_commits:
            signers = [
                AllowedSigner(s.identity, s.key)
                for p in base.repo.policies
                for s in p.model.signers
            ]
        try:
            history = await asyncio.to_thread(
                self.source.merged_history, commit.sha, signers=signers
            )
        except GitSourceError as exc:
            # Never run what cannot be attributed; never stop the loop for one merge either.
            nobody = Attribution(None, None).to_json()
            for path in paths:
                self._handling = (path, commit.sha)
                await self._deny(
                    commit, path, None, None, f"who asked is unknown: {exc}", {}, identity=nobody
                )
            return
        for path in paths:
            if self.stop_requested:
                return
            await self._handle(commit, path, base, attribute(history, path, signers=signers))

    async def _handle(
        self, commit: Commit, path: str, base: Base | None, people: Attribution
    ) -> None:
        self._handling = (path, commit.sha)
        requester = people.requester.identity if people.requester else None
        approver = people.approver.identity if people.approver else None
        identity = people.to_json()
        request, problem = await asyncio.to_thread(self._read_request, commit.sha, path)
        deny = functools.partial(self._deny, commit, path, requester, approver, identity=identity)
        if request is None:
            await deny(f"invalid request file: {problem}", {})
            return
        target = {
            "request": path,
            "map": request.map,
            "component": request.component,
            "action": request.action,
            "hosts": request.hosts,
        }
        if base is None or commit.first_parent is None:
            await deny("the branch has no commit before it", target)
            return
        verdict = judge(
            request, base=base, requester=requester, approver=approver, untrusted=people.problem
        )
        details = {
            "reason": request.reason,
            "approver": approver,
            "base": commit.first_parent,
            "identity": identity,
        }
        if not verdict.allowed:
            await deny(verdict.rule, target, details)
            return
        await self._run(commit, path, request, verdict, requester or "", approver, target, details)

    async def _run(
        self,
        commit: Commit,
        path: str,
        request: Request,
        verdict: Judgement,
        requester: str,
        approver: str | None,
        target: dict[str, Any],
        details: dict[str, Any],
    ) -> None:
        assert verdict.map is not None
        plan = [step.to_json() for step in verdict.steps]
        identity = details["identity"]
        about = ContextLogger(
            log, request=path, revision=commit.sha, map=request.map, component=request.component
        )
        # Nothing starts unless what came before it is stored, and its own journal row is
        # committed (fenced by the leader's term, for replicas): either raises
        # StateWriteError, and the request waits.
        await self._state("audit", self.auditor.flush)
        try:
            await self._state(
                "journal", self.journal.started, path, commit.sha, requester, approver,
                verdict.rule, identity,
            )  # fmt: skip
        except StoreError as exc:  # this request's row alone: it does not run
            rule = f"not run: the journal cannot store it: {exc}"
            await self._deny(commit, path, requester, approver, rule, target, details,
                             identity=identity)  # fmt: skip
            return
        self.counters.request("authorized")
        audit = {"commit": commit.sha, "revision": self._applied_revision()}
        self.auditor.append(
            action="request.authorized",
            actor=requester,
            target=target,
            details={
                **details,
                "decision": "allow",
                "rule": verdict.rule,
                "plan": plan,
                "notes": list(verdict.notes),
            },
            **audit,
        )
        self.auditor.append(
            action="action.started",
            actor=requester,
            target=target,
            details={"plan": plan, "identity": identity},
            **audit,
        )
        await self._stored()
        about.info("request %s: %s, running %s", path, verdict.rule, plan)
        try:
            if request.component == ALL_COMPONENTS:
                hosts: dict[str, Sequence[Host]] = {s.component.id: s.hosts for s in verdict.steps}
                outcome = await self.executor.run_whole_map(verdict.map, request.action, hosts)
            else:
                step = verdict.steps[0]
                outcome = await self.executor.run_action(
                    verdict.map.name, step.component, step.action, step.hosts
                )
        except asyncio.CancelledError:
            # a clean stop whose grace ran out: the command may go on; say so now, once
            await self._stopped_while_running(path, verdict, requester, target, identity, audit)
            raise
        result: RequestState = outcome.result
        recorded = outcome.to_json()
        await self._record_outcome(path, result, recorded)
        self._resumed()
        for step in verdict.steps:
            self.counters.action(verdict.map.name, step.component.id, step.action.name, result)
        self.counters.request(result)
        self.auditor.append(
            action=f"action.{result}",
            actor=requester,
            target=target,
            details={**outcome.to_json(), "identity": identity},
            **audit,
        )
        await self._stored()
        about.log(
            logging.INFO if outcome.succeeded else logging.ERROR, "request %s: %s", path, result
        )

    async def _record_outcome(
        self, path: str, result: RequestState, recorded: dict[str, Any]
    ) -> None:
        """The outcome in the journal (retried while the state cannot be written); one the
        store refuses (a value it does not take) is recorded as its result and why."""
        try:
            await self._until_written(self.journal.finished, path, result, recorded, step="outcome")
            return
        except StoreError as exc:
            log.error("request %s: outcome not stored as it is: %s", path, exc,
                      extra=context(request=path))  # fmt: skip
            recorded = {"result": result, "error": f"the outcome was not stored: {exc}"}
        try:
            await self._until_written(self.journal.finished, path, result, recorded, step="outcome")
        except StoreError as exc:  # left running: the next start reports it unknown
            log.error("request %s: outcome not stored: %s", path, exc, extra=context(request=path))

    async def _stored(self) -> None:
        """A deferred audit log's records stored now, as an immediate one stores them at
        append (the request goes on when it cannot: they stay kept, and are stored first
        before the next request starts)."""
        if self._state.blocks:
            with contextlib.suppress(StateWriteError):
                await self._state("audit", self.auditor.flush)

    async def _stopped_while_running(
        self,
        path: str,
        verdict: Judgement,
        requester: str,
        target: dict[str, Any],
        identity: dict[str, Any],
        audit: dict[str, Any],
    ) -> None:
        reason = "OpsMap was stopped while the action ran; it is not run again"
        log.error("request %s: outcome unknown (%s)", path, reason, extra=context(request=path))
        unknown = {"result": "unknown", "reason": reason}
        with contextlib.suppress(StoreError):  # left running: the next start says unknown
            await self._state("journal", self.journal.finished, path, "unknown", unknown)
        assert verdict.map is not None
        for step in verdict.steps:
            self.counters.action(verdict.map.name, step.component.id, step.action.name, "unknown")
        self.counters.request("unknown")
        self.auditor.append(
            action="action.unknown",
            actor=requester,
            target=target,
            details={"result": "unknown", "reason": reason, "identity": identity},
            **audit,
        )

    async def _deny(
        self,
        commit: Commit,
        path: str,
        requester: str | None,
        approver: str | None,
        rule: str,
        target: dict[str, Any],
        details: dict[str, Any] | None = None,
        *,
        identity: dict[str, Any],
    ) -> None:
        about = context(
            request=path,
            revision=commit.sha,
            map=target.get("map"),
            component=target.get("component"),
        )
        log.warning("request %s denied: %s", path, rule, extra=about)
        try:
            await self._state(
                "journal", self.journal.denied, path, commit.sha, requester, approver, rule,
                identity,
            )  # fmt: skip
        except StoreError as exc:  # audited all the same, with why the journal lacks it
            log.error("request %s: denial not journaled: %s", path, exc, extra=about)
            details = {**(details or {}), "journal": f"not recorded: {exc}"}
        self.counters.request("denied")
        self.auditor.append(
            action="request.denied",
            actor=requester or "unknown",
            target=target or {"request": path},
            details={**(details or {}), "identity": identity, "decision": "deny", "rule": rule},
            commit=commit.sha,
            revision=self._applied_revision(),
        )

    def _read_request(self, sha: str, path: str) -> tuple[Request | None, str]:
        try:
            raw = self.source.read_file(sha, path)
        except BlobTooLarge as exc:
            return None, f"{path}: {exc.size} bytes, over the {exc.limit}-byte limit"
        if raw is None:
            return None, f"{path} is not in commit {sha[:12]}"
        try:
            doc = parse_yaml(raw, path)
            return Request.model_validate(doc.data), ""
        except YamlError as exc:
            return None, str(exc)
        except ValidationError as exc:
            first = next(explain(exc, doc))
            return None, f"{first.location}: {first.message}"

    def _base(self, sha: str) -> Base:
        """The repo at ``sha``, read and validated once for all the requests judged there."""
        if self._last_base is None or self._last_base[0] != sha:
            self._last_base = (sha, Base.of(load_repo(self.source.files_at(sha))))
        return self._last_base[1]
