"""What the commits a merge brings in did to request files, and who signed them.

One ``git log`` over the merged range (every commit reachable from the merge and not from
its first parent, the merge included) lists each commit that changed a file under
``requests/``: its parents, git's verdict on its signature, and for every such file the
blob it left. Merges are shown as a combined diff (``-c``), which lists only the files
whose content differs from *every* parent: content a merge made itself (a conflict
resolution, an "evil merge"), not content it took from one side. ``--full-history``
walks every side of every merge, so a change on a side branch whose result another side
overrode is listed too.

Only fields git itself prints go into that log (hex SHAs, a one-letter status, the
principal and fingerprint of our own allowed-signers file), never a name, an email or a
message, and paths are read positionally, so nothing a pull request writes can pass for
structure. People are read by :func:`reconciler.git.history.read_commits`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from reconciler.git.history import Run
from reconciler.model.common import CommitSha
from reconciler.model.policies import signer_problem
from reconciler.model.vocabulary import COMMIT_SHA

NOT_CHECKED = "-"
"""The signature status of a log read without verification (signing is not required)."""
GOOD = "G"
"""git's ``%G?`` for a good signature by a key the allowed-signers file names."""
DELETED = "0" * 40
"""The blob a change leaves for a file it deletes (the all-zero id git prints)."""

_HEADER_FIELDS = 5
_RAW = re.compile(r"(:+)([0-7]{6}(?: [0-7]{6})+) ([0-9a-f]{40,64}(?: [0-9a-f]{40,64})+) ([A-Z]+)")
# Signature fields only when they are checked: in unsigned mode git must not run gpg at all.
_SIGNED_FORMAT = "--format=%H%x00%P%x00%G?%x00%GS%x00%GF"
_UNSIGNED_FORMAT = f"--format=%H%x00%P%x00{NOT_CHECKED}%x00%x00"
_LOG = (
    "log", "--no-show-signature", "--no-mailmap", "--no-color", "-z", "--topo-order",
    "--full-history", "-c", "--raw", "--no-abbrev", "--no-renames",
)  # fmt: skip
REQUESTS_DIR = "requests"


@dataclass(frozen=True, slots=True)
class Signature:
    """git's verdict on a commit's signature: ``status`` is ``%G?`` (``G`` good, ``N`` none,
    ``B`` bad, ``U`` a key not among the allowed signers, ``E`` not checkable, ...)."""

    status: str
    signer: str = ""
    """The principal of the allowed signer whose key made a good signature."""
    key: str = ""
    """The fingerprint of the signing key (``SHA256:…``)."""

    @property
    def good(self) -> bool:
        return self.status == GOOD and bool(self.signer) and bool(self.key)


@dataclass(frozen=True, slots=True)
class Touch:
    """What one commit did to one file: git's status letter(s), the blob it left."""

    status: str
    """``A``, ``M``, ``D``, ``T``…; a merge's combined status has one letter per parent."""
    blob: str
    """:data:`DELETED` when it removed the file."""


@dataclass(frozen=True, slots=True)
class Change:
    """One commit of a merged range that changed files under ``requests/``."""

    sha: CommitSha
    parents: tuple[CommitSha, ...]
    signature: Signature
    files: dict[str, Touch]

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1


@dataclass(frozen=True, slots=True)
class AllowedSigner:
    """An identity and its SSH public key, as ``policies/`` lists them."""

    identity: str
    key: str

    @property
    def usable(self) -> bool:
        """Only these reach the allowed-signers file (see :func:`signer_problem`)."""
        return signer_problem(self.identity, self.key) is None

    @property
    def line(self) -> str:
        """Its line of an allowed-signers file (the key's type and base64, no comment)."""
        kind, blob = self.key.split()[:2]
        return f'{self.identity} namespaces="git" {kind} {blob}\n'

    @property
    def fingerprint(self) -> str | None:
        """``SHA256:…`` of the key, as ``ssh-keygen -l`` and git's ``%GF`` print it."""
        fields = self.key.split()
        if len(fields) < 2:
            return None
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except (binascii.Error, ValueError):
            return None
        digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"


def read_changes(
    run: Run, revs: Sequence[str], *, signers: Sequence[AllowedSigner] | None
) -> list[Change]:
    """The commits of ``revs`` that changed a request file, newest first (topological).

    With ``signers`` (None: signatures are not checked), each signature is verified
    against exactly those keys (a temporary allowed-signers file); GPG and X.509
    signatures never verify (their programs are set to ``false``).
    """
    if signers is None:
        _, out = run(*_LOG, _UNSIGNED_FORMAT, *revs, "--", REQUESTS_DIR)
        return parse_changes(out)
    with _allowed_signers(signers) as config:
        _, out = run(*config, *_LOG, _SIGNED_FORMAT, *revs, "--", REQUESTS_DIR)
    return parse_changes(out)


@contextlib.contextmanager
def _allowed_signers(signers: Sequence[AllowedSigner]) -> Iterator[tuple[str, ...]]:
    lines = [f'{s.identity} namespaces="git" {s.key.strip()}\n' for s in signers if s.usable]
    with tempfile.NamedTemporaryFile("w", suffix=".allowed_signers") as allowed:
        allowed.write("".join(lines))
        allowed.flush()
        yield (
            "-c", "gpg.ssh.program=ssh-keygen",
            "-c", f"gpg.ssh.allowedSignersFile={allowed.name}",
            "-c", "gpg.ssh.revocationFile=/dev/null",
            "-c", "gpg.program=false",
            "-c", "gpg.x509.program=false",
        )  # fmt: skip


def parse_changes(out: bytes) -> list[Change]:
    """Parse :func:`read_changes`' log: per commit a header of five NUL-ended fields, then
    (raw diff line, path) pairs. ValueError if it is not that shape."""
    tokens = out.decode("utf-8", "surrogateescape").split("\0")
    changes: list[Change] = []
    index = 0
    while index < len(tokens):
        token = tokens[index].lstrip("\n")
        if not token:
            index += 1
            continue
        if token.startswith(":"):
            if not changes or index + 1 >= len(tokens):
                raise ValueError("git log printed a diff line outside a commit")
            match = _RAW.fullmatch(token)
            if match is None:
                raise ValueError(f"git log printed an unexpected diff line {token[:80]!r}")
            blob = match.group(3).split()[-1]
            touch = Touch(match.group(4), DELETED if set(blob) == {"0"} else blob)
            changes[-1].files[tokens[index + 1]] = touch
            index += 2
            continue
        header = [token, *tokens[index + 1 : index + _HEADER_FIELDS]]
        if len(header) != _HEADER_FIELDS:
            raise ValueError("git log output ends inside a commit header")
        sha, parents, status, signer, key = header
        if not COMMIT_SHA.fullmatch(sha) or not all(
            COMMIT_SHA.fullmatch(p) for p in parents.split()
        ):
            raise ValueError(f"git log printed {sha[:80]!r} where a commit was expected")
        if len(status) != 1:
            raise ValueError(f"git log printed signature status {status[:8]!r}")
        changes.append(
            Change(
                sha=CommitSha(sha),
                parents=tuple(CommitSha(p) for p in parents.split()),
                signature=Signature(status, signer.strip(), key.strip()),
                files={},
            )
        )
        index += _HEADER_FIELDS
    return changes


def read_blobs(run: Run, sha: str) -> dict[str, str]:
    """The blob of every file under ``requests/`` in ``sha``'s tree (one ``ls-tree``)."""
    _, out = run("ls-tree", "-r", "-z", "--full-tree", sha, "--", REQUESTS_DIR)
    blobs = {}
    for entry in out.decode("utf-8", "surrogateescape").split("\0"):
        meta, tab, path = entry.partition("\t")
        fields = meta.split()
        if tab and len(fields) == 3 and fields[1] == "blob":
            blobs[path] = fields[2]
    return blobs
