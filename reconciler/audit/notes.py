"""Delivering audit records as git notes, pushed to the map repo's remote.

:class:`NotesPublisher` appends each record, as one JSON line, to the note of the commit
it concerns under ``refs/notes/opsmap`` in the reconciler's bare mirror, then pushes that
ref. Appending is idempotent (a record whose id the note already holds is skipped), so a
publish retried after a failed push never duplicates a line. When the remote's notes
moved meanwhile (another writer), they are fetched and merged with git's
``cat_sort_uniq`` strategy (union of lines, duplicates dropped) and the push is retried.

It is synchronous (git runs as a child process); the reconciler calls it through
``asyncio.to_thread``. It never touches the outbox: the caller marks records delivered
after :meth:`NotesPublisher.publish` returns.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from reconciler.audit.errors import AuditDeliveryError
from reconciler.audit.record import AuditRecord, is_full_sha
from reconciler.git.errors import GitSourceError, mask_secrets
from reconciler.git.runner import GitRunner, receive_pack_args, upload_pack_args
from reconciler.git.watch import local_path

log = logging.getLogger(__name__)

NOTES_REF = "refs/notes/opsmap"
NOTES_REF_PATTERN = re.compile(r"refs/notes/[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*")
IDENTITY = ("-c", "user.name=OpsMap", "-c", "user.email=opsmap@localhost")
"""Who commits to the notes ref: a bare mirror has no user configured."""
_PUSH_ATTEMPTS = 3


class NotesPublisher:
    """Attaches records as notes in the bare repo ``git_dir`` and pushes them to ``remote``."""

    def __init__(
        self,
        git_dir: Path,
        remote: str,
        *,
        notes_ref: str = NOTES_REF,
        push: bool = True,
        timeout_s: float = 60,
    ) -> None:
        if remote.startswith("-"):
            raise ValueError(f"not a repository URL: {remote!r}")
        if not NOTES_REF_PATTERN.fullmatch(notes_ref) or ".." in notes_ref:
            raise ValueError(f"not a notes ref: {notes_ref!r}")
        self.git_dir = Path(git_dir)
        self.remote = remote
        self.notes_ref = notes_ref
        self.push = push
        self.display = mask_secrets(remote)
        self._incoming = f"{notes_ref}-incoming"
        self._runner = GitRunner(remote=self.display, timeout_s=timeout_s)
        local = local_path(remote)  # the operator's repo, maybe another user's
        self._upload_pack, self._receive_pack = upload_pack_args(local), receive_pack_args(local)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NotesPublisher({self.display!r}, notes_ref={self.notes_ref!r})"

    def publish(self, records: Sequence[AuditRecord]) -> None:
        """Attach every record to its commit's note and push; :class:`AuditDeliveryError`
        if git or the remote fails (nothing is lost: the records stay pending)."""
        if not records:
            return
        with self._lock:
            try:
                attached = self._attach(records)
                if self.push:
                    self._push()
            except GitSourceError as exc:
                raise AuditDeliveryError(
                    f"audit notes not delivered to {self.display}: {exc.reason}"
                ) from exc
            except OSError as exc:
                raise AuditDeliveryError(
                    f"audit notes not written in {self.git_dir}: {exc.strerror or exc}"
                ) from exc
        log.debug(
            "audit: %d record(s) attached, %d already there", attached, len(records) - attached
        )

    # -- notes in the mirror ---------------------------------------------------------------

    def _attach(self, records: Sequence[AuditRecord]) -> int:
        by_commit: dict[str, list[AuditRecord]] = {}
        for record in records:
            if not is_full_sha(record.commit):
                raise AuditDeliveryError(f"audit record seq {record.seq}: no commit to attach to")
            by_commit.setdefault(record.commit, []).append(record)
        attached = 0
        for commit, batch in by_commit.items():
            existing = self._note(commit)
            known = _ids(existing)
            lines = [r.to_line() for r in sorted(batch, key=lambda r: r.seq) if r.id not in known]
            if not lines:
                continue
            if existing and not existing.endswith("\n"):
                existing += "\n"
            self._write_note(commit, existing + "".join(f"{line}\n" for line in lines))
            attached += len(lines)
        return attached

    def _note(self, commit: str) -> str:
        status, out = self._git("notes", "--ref", self.notes_ref, "show", commit, ok=(0, 1))
        return out.decode("utf-8", "replace") if status == 0 else ""

    def _write_note(self, commit: str, text: str) -> None:
        with tempfile.TemporaryDirectory(prefix="opsmap-note-") as scratch:
            path = Path(scratch) / "note"
            path.write_text(text, encoding="utf-8")
            _, out = self._git("hash-object", "-w", "--", str(path))
        blob = out.decode().strip()
        self._git(*IDENTITY, "notes", "--ref", self.notes_ref, "add", "-f", "-C", blob, commit)

    # -- the remote ------------------------------------------------------------------------

    def _push(self) -> None:
        """Push the notes ref; on a non-fast-forward, fetch, merge and push again."""
        refspec = f"{self.notes_ref}:{self.notes_ref}"
        for _ in range(_PUSH_ATTEMPTS):
            status, out = self._git(
                "push", "--porcelain", *self._receive_pack, "--", self.remote, refspec,
                ok=(0, 1), network=True,
            )  # fmt: skip
            if status == 0:
                return
            rejection = _rejection(out.decode("utf-8", "replace"))
            if rejection is None or "[rejected]" not in rejection:
                raise AuditDeliveryError(
                    f"audit notes not delivered to {self.display}: "
                    f"push refused{': ' + rejection if rejection else ''}"
                )
            log.info("audit: notes on %s moved meanwhile; merging them", self.display)
            self._merge_remote()
        raise AuditDeliveryError(
            f"audit notes not delivered to {self.display}: the remote's notes kept moving "
            f"({_PUSH_ATTEMPTS} attempts)"
        )

    def _merge_remote(self) -> None:
        refspec = f"+{self.notes_ref}:{self._incoming}"
        self._git(
            "fetch", "--quiet", "--no-tags", *self._upload_pack, "--", self.remote, refspec,
            network=True,
        )  # fmt: skip
        self._git(
            *IDENTITY, "notes", "--ref", self.notes_ref, "merge", "--quiet",
            "-s", "cat_sort_uniq", self._incoming,
        )  # fmt: skip

    def _git(
        self, *args: str, ok: tuple[int, ...] = (0,), network: bool = False
    ) -> tuple[int, bytes]:
        return self._runner.run(*args, git_dir=self.git_dir, ok=ok, network=network)


def _ids(note: str) -> set[str]:
    """The ids of the records a note holds (lines that are not records are kept, unread)."""
    ids = set()
    for line in note.split("\n"):  # not splitlines(): see reader.NotesReader.read
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            ids.add(data["id"])
    return ids


def _rejection(porcelain: str) -> str | None:
    """What ``git push --porcelain`` said about a refused ref, e.g. ``[rejected] (fetch first)``."""
    for line in porcelain.splitlines():
        flag, _, rest = line.partition("\t")
        if flag == "!":
            return rest.partition("\t")[2].strip() or "rejected"
    return None
