"""Processing merged requests, once each, in first-parent order.

For every commit on the branch's first-parent chain after the last one processed, every
request file it added is read at that commit, judged against the repo at the commit's
first parent (:mod:`reconciler.judge`), journaled before anything runs
(:mod:`reconciler.journal`), run through the action runner, and audited at each step.
The requester is the author of the commit that added the file; the approver is the
author of the merge commit that brought it in (none for a direct commit).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from agentless.inventory import Host
from reconciler.gitsource import Commit, GitSource
from reconciler.journal import RequestJournal, RequestState
from reconciler.judge import Base, Judgement, judge
from reconciler.model import Action, Component, Map, Request
from reconciler.model.requests import ALL_COMPONENTS
from reconciler.repo import MapRepo, load_repo
from reconciler.source import YamlError, parse_yaml

log = logging.getLogger(__name__)

CURSOR_KEY = "requests_cursor"


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


class Outcome(Protocol):
    @property
    def succeeded(self) -> bool: ...

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
        journal: RequestJournal,
        auditor: Auditor,
        executor: Executor,
        counters: Counters,
        cursor: str | None,
        save_cursor: Any,
        applied_revision: Any,
    ) -> None:
        self.source = source
        self.journal = journal
        self.auditor = auditor
        self.executor = executor
        self.counters = counters
        self.cursor = cursor
        self._save_cursor = save_cursor
        self._applied_revision = applied_revision
        self._last_base: tuple[str, Base] | None = None

    def start_from(self, sha: str) -> None:
        """Requests already on the branch at ``sha`` are history: none of them runs."""
        if self.cursor is None:
            log.info("requests up to %s are history: none of them will run", sha[:12])
            self.cursor = sha
            self._save_cursor(sha)

    def recover(self) -> None:
        """Report requests whose action was running when OpsMap last stopped: never rerun."""
        for entry in self.journal.recover():
            log.error(
                "request %s: outcome unknown (OpsMap stopped while it ran); not re-run", entry.path
            )
            self.counters.request("unknown")
            self.auditor.append(
                action="action.unknown",
                actor=entry.requester or "unknown",
                target={"request": entry.path},
                details={"reason": "OpsMap stopped while the action ran; it is not run again"},
                commit=entry.commit,
                revision=self._applied_revision(),
            )

    async def process(self, head: str) -> None:
        """Every request merged after the cursor and up to ``head``, in first-parent order."""
        if self.cursor is None or self.cursor == head:
            return
        # Git is read in threads (each git command under the runner's timeout). The journal,
        # the audit outbox and the cursor are single rows in SQLite, written on the loop:
        # cheap and bounded, and durable before the next step. The cursor is saved after
        # each commit with requests and once at the end, not once per commit: a push of
        # many commits must not become as many writes in a row on the loop.
        commits = await asyncio.to_thread(self.source.first_parent_path, self.cursor, head)
        for commit in commits:
            if not commit.added_requests:
                continue
            for path in commit.added_requests:
                await self._handle(commit, path)
            self.cursor = commit.sha
            self._save_cursor(commit.sha)
        if commits and self.cursor != commits[-1].sha:
            self.cursor = commits[-1].sha
            self._save_cursor(self.cursor)

    async def _handle(self, commit: Commit, path: str) -> None:
        previous = self.journal.get(path)
        if previous is not None:
            log.info("request %s was already processed (%s): not again", path, previous.state)
            return
        added_by = await asyncio.to_thread(self.source.commit_added_file, path, within=commit.sha)
        requester = added_by.author.email if added_by else None
        approver = commit.author.email if commit.is_merge else None
        request, problem = await asyncio.to_thread(self._read_request, commit.sha, path)
        if request is None:
            self._deny(commit, path, requester, approver, f"invalid request file: {problem}", {})
            return
        target = {
            "request": path,
            "map": request.map,
            "component": request.component,
            "action": request.action,
            "hosts": request.hosts,
        }
        base_sha = commit.first_parent
        if base_sha is None:
            self._deny(
                commit, path, requester, approver, "the branch has no commit before it", target
            )
            return
        base = await asyncio.to_thread(self._base, base_sha)
        signed: bool | None = None
        if base.repo.effective_settings.require_signed_commits:
            signed = await asyncio.to_thread(self._signatures_verify, base.repo, commit, added_by)
        verdict = judge(request, base=base, requester=requester, approver=approver, signed=signed)
        details = {"reason": request.reason, "approver": approver, "base": base_sha}
        if not verdict.allowed:
            self._deny(commit, path, requester, approver, verdict.rule, target, details)
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
        self.journal.started(path, commit.sha, requester, approver, verdict.rule)
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
            action="action.started", actor=requester, target=target, details={"plan": plan}, **audit
        )
        log.info("request %s: %s, running %s", path, verdict.rule, plan)
        if request.component == ALL_COMPONENTS:
            hosts: dict[str, Sequence[Host]] = {s.component.id: s.hosts for s in verdict.steps}
            outcome = await self.executor.run_whole_map(verdict.map, request.action, hosts)
        else:
            step = verdict.steps[0]
            outcome = await self.executor.run_action(
                verdict.map.name, step.component, step.action, step.hosts
            )
        result: RequestState = "succeeded" if outcome.succeeded else "failed"
        self.journal.finished(path, result, outcome.to_json())
        for step in verdict.steps:
            self.counters.action(verdict.map.name, step.component.id, step.action.name, result)
        self.counters.request(result)
        self.auditor.append(
            action=f"action.{result}",
            actor=requester,
            target=target,
            details=outcome.to_json(),
            **audit,
        )
        log.log(
            logging.INFO if outcome.succeeded else logging.ERROR, "request %s: %s", path, result
        )

    def _deny(
        self,
        commit: Commit,
        path: str,
        requester: str | None,
        approver: str | None,
        rule: str,
        target: dict[str, Any],
        details: dict[str, Any] | None = None,
    ) -> None:
        log.warning("request %s denied: %s", path, rule)
        self.journal.denied(path, commit.sha, requester, approver, rule)
        self.counters.request("denied")
        self.auditor.append(
            action="request.denied",
            actor=requester or "unknown",
            target=target or {"request": path},
            details={**(details or {}), "decision": "deny", "rule": rule},
            commit=commit.sha,
            revision=self._applied_revision(),
        )

    def _read_request(self, sha: str, path: str) -> tuple[Request | None, str]:
        raw = self.source.read_file(sha, path)
        if raw is None:
            return None, f"{path} is not in commit {sha[:12]}"
        try:
            doc = parse_yaml(raw, path)
            return Request.model_validate(doc.data), ""
        except YamlError as exc:
            return None, str(exc)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            return None, f"{path}: {where}: {first['msg']}"

    def _base(self, sha: str) -> Base:
        """The repo at ``sha``, read and validated once for all the requests judged there."""
        if self._last_base is None or self._last_base[0] != sha:
            self._last_base = (sha, Base.of(load_repo(self.source.files_at(sha))))
        return self._last_base[1]

    def _signatures_verify(self, base: MapRepo, commit: Commit, added_by: Commit | None) -> bool:
        """Both identities (requester, and approver for a merge) come from verified signatures."""
        signers = [(s.identity, s.key) for p in base.policies for s in p.model.signers]
        people = [(added_by.sha, added_by.author.email)] if added_by else []
        if commit.is_merge:
            people.append((commit.sha, commit.author.email))
        for sha, email in people:
            verified = self.source.verify_commit(sha, signers)
            if verified is None or verified.lower() != email.lower():
                log.warning(
                    "commit %s by %s: no verified signature from an allowed signer", sha[:12], email
                )
                return False
        return bool(people)
