"""Reading audit records back from the notes of any clone, mirror or bare remote.

The whole notes tree is read with one ``git archive`` of the notes ref (a tar of one
blob per annotated object, named by the object's SHA with git's fan-out slashes), so a
repo with thousands of annotated commits costs one git command, under a timeout.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from reconciler.audit.chain import Located
from reconciler.audit.errors import AuditFormatError, AuditReadError
from reconciler.audit.notes import NOTES_REF
from reconciler.audit.record import AuditRecord, is_full_sha
from reconciler.git.errors import GitSourceError
from reconciler.git.runner import GitRunner


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line of a note that is not an audit record."""

    note_of: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"note of {self.note_of}, line {self.line}: not an audit record: {self.problem}"


@dataclass(frozen=True, slots=True)
class AuditNotes:
    """Everything one notes ref holds: records (in seq order) and lines that are not."""

    records: list[Located]
    bad_lines: list[BadLine]


class NotesReader:
    """Reads ``notes_ref`` of the repository at ``path`` (a work tree or a git dir)."""

    def __init__(self, path: Path, *, notes_ref: str = NOTES_REF, timeout_s: float = 60) -> None:
        self.path = path
        self.notes_ref = notes_ref
        self._runner = GitRunner(remote=str(path), timeout_s=timeout_s, safe_directories=[path])
        self._git_dir = self._find_git_dir()

    def read(self) -> AuditNotes:
        """Every record under the notes ref; :class:`AuditReadError` if there is no such ref."""
        tip = self._resolve(f"{self.notes_ref}^{{commit}}")
        if tip is None:
            raise AuditReadError(f"{self.path}: no {self.notes_ref} (no audit notes fetched here)")
        _, tar = self._git("archive", "--format=tar", tip)
        records, bad = [], []
        for note_of, text in _notes(tar):
            # "\n" alone ends a line: a value may hold U+2028 or U+0085 (notes written
            # before they were escaped), which str.splitlines() would split at
            for number, line in enumerate(text.split("\n"), start=1):
                if not line.strip():
                    continue
                try:
                    records.append(Located(AuditRecord.from_line(line), note_of))
                except AuditFormatError as exc:
                    bad.append(BadLine(note_of, number, str(exc)))
        records.sort(key=lambda f: (f.record.seq, f.record.id))
        return AuditNotes(records, bad)

    def resolve_commit(self, rev: str) -> str | None:
        """The full SHA ``rev`` names here (None if none); a full SHA is taken as it is,
        so the records of a commit this clone lacks (force-pushed away) can be asked for."""
        if is_full_sha(rev.lower()):
            return rev.lower()
        if rev.startswith("-"):
            return None
        return self._resolve(f"{rev}^{{commit}}")

    def _resolve(self, rev: str) -> str | None:
        status, out = self._git("rev-parse", "--verify", "--quiet", rev, ok=(0, 1, 128))
        return out.decode().strip() if status == 0 else None

    def _find_git_dir(self) -> Path:
        where = self.path.resolve()
        if not where.is_dir():
            raise AuditReadError(f"{self.path}: not a directory")
        try:
            _, out = self._runner.run(
                "-C", str(where), "rev-parse", "--absolute-git-dir", git_dir=None
            )
        except GitSourceError as exc:
            raise AuditReadError(f"{self.path}: not a git repository") from exc
        return Path(out.decode().strip())

    def _git(self, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[int, bytes]:
        try:
            return self._runner.run(*args, git_dir=self._git_dir, ok=ok)
        except GitSourceError as exc:
            raise AuditReadError(
                f"{self.path}: cannot read {self.notes_ref}: {exc.reason}"
            ) from exc


def _notes(tar: bytes) -> list[tuple[str, str]]:
    """(annotated object, note text) for every note in a ``git archive`` of a notes tree."""
    if not tar.strip(b"\0"):
        return []
    notes = []
    try:
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
            for member in archive:
                name = member.name.replace("/", "")
                if not member.isfile() or not is_full_sha(name):
                    continue
                blob = archive.extractfile(member)
                if blob is not None:
                    notes.append((name, blob.read().decode("utf-8", "replace")))
    except tarfile.TarError as exc:
        raise AuditReadError(f"cannot read the notes tree: {exc}") from exc
    return sorted(notes)
