"""``POST /hooks/git``: signed hooks fetch now, unsigned or wrongly signed ones are refused.

The remote is served by ``git daemon`` (``git://``): it is not on a local path, so the
reconciler does not watch it, and with a poll interval of an hour only a hook can make it
see a push in time.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import (
    Opsmap,
    Processes,
    command_check,
    component,
    counter,
    repo_files,
    start_git_daemon,
    wait_for,
)
from gitrepos import ALICE, BareRepo, Clone

from reconciler.server.webhook import MAX_WEBHOOK_BODY, hex_digest, sign

Start = Callable[..., Opsmap]
SECRET = "e2e-webhook-secret"
BODY = b'{"ref": "refs/heads/main", "after": "0000000000000000000000000000000000000000"}'


def fetches(service: Opsmap, result: str) -> float:
    return counter(service.metrics(), "opsmap_git_fetch_total", result=result)


def commit_map(clone: Clone, message: str, *checks: str) -> str:
    files = repo_files([component("a", [command_check(name, "true") for name in checks])])
    return clone.commit(message, author=ALICE, files=files)


@pytest.fixture
def hooked(
    remote: BareRepo, clone: Clone, processes: Processes, opsmap: Start, tmp_path: Path
) -> Opsmap:
    """``opsmap run`` on a git:// remote, secret from the environment, polling hourly."""
    first = commit_map(clone, "first", "one")
    clone.push()
    base = start_git_daemon(processes, remote.path.parent, log=tmp_path / "git-daemon.log")
    service = opsmap(base + remote.path.name, poll_interval=3600, secret=SECRET)
    service.wait_applied(first)
    return service


def test_a_signed_hook_fetches_now_and_repeated_hooks_cost_one_fetch(
    hooked: Opsmap, clone: Clone
) -> None:
    second = commit_map(clone, "second", "one", "two")
    clone.push()
    assert hooked.hook(BODY, sign(SECRET.encode(), BODY)) == 202
    hooked.wait_applied(second)
    hooked.wait_check("a", "two", "OK")

    changed_before = fetches(hooked, "changed")
    third = commit_map(clone, "third", "one", "two", "three")
    clone.push()
    for _ in range(5):
        assert hooked.hook(BODY, sign(SECRET.encode(), BODY)) == 202
    hooked.wait_applied(third)
    # one more hook, and wait for its fetch: every fetch the five hooks asked for is done
    unchanged = fetches(hooked, "unchanged")
    assert hooked.hook(BODY, sign(SECRET.encode(), BODY)) == 202
    wait_for(
        lambda: fetches(hooked, "unchanged") > unchanged,
        what="the fetch of the last hook (unchanged head)",
    )
    assert fetches(hooked, "changed") == changed_before + 1


def test_wrong_or_missing_signatures_are_refused_and_fetch_nothing(
    hooked: Opsmap, clone: Clone
) -> None:
    applied = hooked.status()["last_applied_revision"]
    commit_map(clone, "not fetched", "one", "two")
    clone.push()

    assert hooked.hook(BODY, sign(b"another secret", BODY)) == 401
    assert hooked.hook(BODY, sign(SECRET.encode(), BODY + b" ")) == 401
    assert hooked.hook(BODY, "sha256=" + "0" * 64) == 401
    assert hooked.hook(BODY, "sha1=" + "0" * 40) == 401
    assert hooked.hook(BODY, None) == 401

    metrics = hooked.metrics()
    assert counter(metrics, "opsmap_webhook_requests_total", result="unauthorized") == 5
    assert counter(metrics, "opsmap_git_fetch_total", result="changed") == 1
    assert hooked.status()["last_applied_revision"] == applied


def test_an_oversized_body_is_refused_unread(hooked: Opsmap) -> None:
    conn = http.client.HTTPConnection(hooked.host, hooked.port, timeout=10)
    try:
        conn.putrequest("POST", "/hooks/git")
        conn.putheader("Content-Length", str(MAX_WEBHOOK_BODY + 1))
        conn.putheader("X-Hub-Signature-256", sign(SECRET.encode(), BODY))
        conn.endheaders()  # the body is never sent: the server must answer without it
        assert conn.getresponse().status == 413
    finally:
        conn.close()
    assert hooked.healthz() == 200


def test_without_a_secret_hooks_are_forbidden(
    remote: BareRepo, clone: Clone, opsmap: Start
) -> None:
    first = commit_map(clone, "first", "one")
    clone.push()
    service = opsmap(remote.file_url, poll_interval=3600)
    service.wait_applied(first)

    assert service.hook(BODY, sign(SECRET.encode(), BODY)) == 403
    assert service.hook(BODY, None) == 403


FORGE_HEADERS = {
    "gitlab": lambda body: {"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Push Hook"},
    "gitea": lambda body: {"X-Gitea-Signature": hex_digest(SECRET.encode(), body)},
    "forgejo": lambda body: {
        "X-Forgejo-Signature": hex_digest(SECRET.encode(), body),
        "X-Gitea-Signature": hex_digest(SECRET.encode(), body),
        "X-Hub-Signature-256": sign(SECRET.encode(), body),
    },
    "github": lambda body: {"X-Hub-Signature-256": sign(SECRET.encode(), body)},
}


@pytest.mark.parametrize("forge", sorted(FORGE_HEADERS))
def test_each_forges_hook_fetches_now(hooked: Opsmap, clone: Clone, forge: str) -> None:
    second = commit_map(clone, f"second, announced by {forge}", "one", "two")
    clone.push()
    headers = {"Content-Type": "application/json", **FORGE_HEADERS[forge](BODY)}

    code, answer = hooked.request("POST", "/hooks/git", body=BODY, headers=headers)

    assert code == 202, answer
    hooked.wait_applied(second)
    assert counter(hooked.metrics(), "opsmap_webhook_requests_total", result="accepted") == 1


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Gitlab-Token": "not-the-secret"}, id="gitlab-wrong-token"),
        pytest.param({"X-Gitea-Signature": "0" * 64}, id="gitea-wrong"),
        pytest.param({"X-Forgejo-Signature": sign(SECRET.encode(), BODY)}, id="forgejo-prefixed"),
        pytest.param(
            {"X-Gitlab-Token": SECRET, "X-Gitea-Signature": "0" * 64}, id="token-right-sig-wrong"
        ),
    ],
)
def test_a_wrong_forge_credential_is_refused_with_its_reason(
    hooked: Opsmap, headers: dict[str, str]
) -> None:
    code, answer = hooked.request("POST", "/hooks/git", body=BODY, headers=headers)

    assert code == 401
    assert json.loads(answer)["message"].startswith("wrong X-")
    assert counter(hooked.metrics(), "opsmap_webhook_requests_total", result="unauthorized") == 1
    assert "refused: wrong X-" in hooked.stderr()
