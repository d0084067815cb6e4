"""``opsmap request``: the file it writes, the mistakes it refuses, the branch it commits on.

And the end of the line for a request's fields: a hostile reason round-trips exactly in
the file, and never reaches a shell when the action it names runs over real SSH.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from actions_support import hostile_reason, transport_for
from sshd import Fleet

from agentless.testing import FakeTransport
from reconciler.actions import ActionOutcome, ActionRunner, action_command
from reconciler.clock import RealClock
from reconciler.repo.loader import load_repo, read_tree

ME = ("Rita Requester", "rita@example.com")

SHOP = """\
name: shop
components:
  - id: db
    hosts: {labels: {role: db}}
    actions:
      - {name: start, command: "echo db start >>RAN"}
      - {name: stop, command: "echo db stop >>RAN"}
  - id: api
    dependencies: [db]
    hosts: {labels: {role: api}}
    actions:
      - {name: start, command: "echo api start >>RAN"}
      - {name: restart, command: "echo api restart >>RAN"}
      - {name: clear_cache, command: "echo api clear_cache >>RAN"}
"""

HOSTS = """\
hosts:
  - {name: db1, address: 127.0.0.1, labels: {role: db}}
  - {name: api1, address: 127.0.0.1, labels: {role: api}}
  - {name: api2, address: 127.0.0.1, labels: {role: api}}
"""

NAME = re.compile(
    r"requests/\d{4}-\d{2}-\d{2}-(?P<action>[a-z_]+)-(?P<comp>[a-z]+)-[0-9a-f]{6}\.yaml"
)


def make_repo(root: Path, ran: Path | None = None) -> Path:
    (root / "maps").mkdir(parents=True)
    (root / "inventory").mkdir()
    shop = SHOP.replace("RAN", str(ran or root / "ran"))
    (root / "maps" / "shop.yaml").write_text(shop)
    (root / "inventory" / "hosts.yaml").write_text(HOSTS)
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An environment whose git identity is the user's own configured one (Rita's)."""
    config = tmp_path / "gitconfig"
    config.write_text(
        f"[user]\n\tname = {ME[0]}\n\temail = {ME[1]}\n"
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_GLOBAL=str(config), GIT_CONFIG_NOSYSTEM="1")
    return env


def opsmap(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def git(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def request_files(root: Path) -> list[Path]:
    return sorted((root / "requests").glob("*.yaml")) if (root / "requests").is_dir() else []


# -- the file ---------------------------------------------------------------------------


def test_a_hostile_reason_round_trips_exactly(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    reason = hostile_reason(str(marker))
    done = opsmap("request", "restart", "shop/api", "--reason", reason, "--repo", str(repo))
    assert done.returncode == 0, done.stderr
    written = Path(done.stdout.strip())
    assert written.parent == repo / "requests"
    match = NAME.fullmatch(written.relative_to(repo).as_posix())
    assert match is not None
    assert (match["action"], match["comp"]) == ("restart", "api")
    data = yaml.safe_load(written.read_text())
    assert data == {"map": "shop", "component": "api", "action": "restart", "reason": reason}
    [loaded] = load_repo(read_tree(repo)).requests
    assert loaded.model.reason == reason
    assert opsmap("validate", str(repo)).returncode == 0
    assert not marker.exists()


def test_hosts_and_the_whole_map(repo: Path) -> None:
    done = opsmap(
        "request",
        "start",
        "shop/api",
        "--reason",
        "r",
        "--hosts",
        "api1, api2",
        "--repo",
        str(repo),
    )
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(Path(done.stdout.strip()).read_text())["hosts"] == ["api1", "api2"]
    done = opsmap("request", "stop", "shop/*", "--reason", "maintenance", "--repo", str(repo))
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert "-stop-all-" in path.name
    assert yaml.safe_load(path.read_text())["component"] == "*"
    assert opsmap("validate", str(repo)).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "shop/api"], "component 'api' has no action 'nope'"),
        (["start", "shop/nope"], "map 'shop' has no component 'nope'"),
        (["start", "other/api"], "request names map 'other', which no file in maps/ defines"),
        (["clear_cache", "shop/*"], "not 'clear_cache'"),
        (["start", "shop"], "expected MAP/COMPONENT"),
        (["start", "shop/api/x"], "expected MAP/COMPONENT"),
        (["start", "shop/api", "--hosts", "db1"], "host 'db1' is not one of the hosts of 'api'"),
        (["start", "shop/api", "--hosts", "ghost"], "request names host 'ghost', which no file"),
        (["start", "shop/api", "--hosts", "api1,,api2"], "expected names separated by commas"),
        (["start", "shop/api", "--hosts", "api1;touch x"], "is not a host name"),
        (["start;id", "shop/api"], "action 'start;id': use lowercase letters"),
        (["start", "shop/$(id)"], "component '$(id)': use lowercase letters"),
        (["start", "Shop/api"], "map 'Shop': use lowercase letters"),
        (["start", "shop/api", "--message", "m"], "--message is for the commit"),
    ],
)
def test_mistakes_exit_2_with_a_clear_message_and_write_nothing(
    repo: Path, args: list[str], message: str
) -> None:
    done = opsmap("request", *args, "--reason", "because", "--repo", str(repo))
    assert done.returncode == 2, done
    assert message in done.stderr
    assert done.stderr.startswith("opsmap: error: ")
    assert "Traceback" not in done.stderr
    assert request_files(repo) == []


@pytest.mark.parametrize(
    ("reason", "message"),
    [("  \n ", "reason is blank"), ("x" * 2001, "at most 2000 characters")],
)
def test_a_blank_or_huge_reason_is_refused(repo: Path, reason: str, message: str) -> None:
    done = opsmap("request", "start", "shop/api", "--reason", reason, "--repo", str(repo))
    assert done.returncode == 2
    assert message in done.stderr
    assert request_files(repo) == []


def test_a_missing_repo_or_reason(tmp_path: Path) -> None:
    done = opsmap("request", "start", "shop/api", "--reason", "r", "--repo", str(tmp_path / "no"))
    assert (done.returncode, done.stderr.strip()) == (
        2,
        f"opsmap: error: {tmp_path}/no: not a directory",
    )
    assert opsmap("request", "start", "shop/api").returncode == 2


def test_a_broken_map_is_named(repo: Path) -> None:
    (repo / "maps" / "shop.yaml").write_text(SHOP + "  - id: 'Bad Id'\n")
    done = opsmap("request", "start", "shop/api", "--reason", "r", "--repo", str(repo))
    assert done.returncode == 2
    assert "map 'shop' has errors" in done.stderr


# -- --branch ---------------------------------------------------------------------------


@pytest.fixture
def checkout(repo: Path, home: dict[str, str]) -> Path:
    """``repo`` as a git checkout on main, with one staged and one unstaged change."""
    git(repo, home, "init", "--quiet")
    git(repo, home, "add", "--all")
    git(repo, home, "commit", "--quiet", "-m", "initial")
    (repo / "notes.txt").write_text("staged, not mine to commit\n")
    git(repo, home, "add", "notes.txt")
    (repo / "inventory" / "hosts.yaml").write_text(HOSTS + "  # edited, not staged\n")
    return repo


def test_branch_commits_only_the_request_and_switches_to_it(
    checkout: Path, home: dict[str, str]
) -> None:
    before = git(checkout, home, "rev-parse", "HEAD")
    done = opsmap(
        "request", "restart", "shop/api", "--reason", "it's slow\n$(id)",
        "--repo", str(checkout), "--branch", "req/restart-api",
        env=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    rel = path.relative_to(checkout).as_posix()
    assert "git push -u origin req/restart-api" in done.stderr
    assert git(checkout, home, "symbolic-ref", "--short", "HEAD") == "req/restart-api"
    assert git(checkout, home, "rev-parse", "HEAD^") == before
    assert git(checkout, home, "rev-parse", "main") == before
    assert git(checkout, home, "show", "--name-only", "--format=", "HEAD") == rel
    assert git(checkout, home, "log", "-1", "--format=%an <%ae>") == f"{ME[0]} <{ME[1]}>"
    assert git(checkout, home, "log", "-1", "--format=%s").startswith(
        "Request restart of shop/api: it's slow"
    )
    assert git(checkout, home, "show", f"HEAD:{rel}") == path.read_text().rstrip("\n")
    # the user's own work is where it was: staged stays staged, unstaged stays unstaged
    assert git(checkout, home, "diff", "--cached", "--name-only") == "notes.txt"
    assert git(checkout, home, "diff", "--name-only") == "inventory/hosts.yaml"


def test_branch_with_a_custom_message(checkout: Path, home: dict[str, str]) -> None:
    done = opsmap(
        "request", "start", "shop/db", "--reason", "r", "--repo", str(checkout),
        "--branch", "ask", "--message", "Please start db",
        env=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert git(checkout, home, "log", "-1", "--format=%B") == "Please start db"


@pytest.mark.parametrize(
    ("branch", "message"),
    [("main", "branch 'main' already exists"), ("bad..name", "not a valid branch name")],
)
def test_branch_refused_before_anything_changes(
    checkout: Path, home: dict[str, str], branch: str, message: str
) -> None:
    done = opsmap(
        "request", "start", "shop/db", "--reason", "r", "--repo", str(checkout),
        "--branch", branch,
        env=home,
    )  # fmt: skip
    assert done.returncode == 2
    assert message in done.stderr
    assert request_files(checkout) == []
    assert git(checkout, home, "symbolic-ref", "--short", "HEAD") == "main"


def test_a_failed_commit_is_taken_back(checkout: Path, home: dict[str, str]) -> None:
    hook = checkout / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'hook says no' >&2\nexit 1\n")
    hook.chmod(0o755)
    done = opsmap(
        "request", "start", "shop/db", "--reason", "r", "--repo", str(checkout),
        "--branch", "req/x",
        env=home,
    )  # fmt: skip
    assert done.returncode == 2
    assert "hook says no" in done.stderr
    assert "Traceback" not in done.stderr
    assert request_files(checkout) == []
    assert git(checkout, home, "symbolic-ref", "--short", "HEAD") == "main"
    assert git(checkout, home, "branch", "--list", "req/x") == ""
    assert git(checkout, home, "diff", "--cached", "--name-only") == "notes.txt"


def test_branch_needs_a_git_checkout(repo: Path, home: dict[str, str]) -> None:
    done = opsmap(
        "request", "start", "shop/db", "--reason", "r", "--repo", str(repo), "--branch", "x",
        env=home,
    )  # fmt: skip
    assert done.returncode == 2
    assert "not in a git working tree" in done.stderr


# -- a hostile request, run for real --------------------------------------------------------


@pytest.mark.sshd
def test_a_hostile_request_never_reaches_a_shell(sshd_fleet: Fleet, tmp_path: Path) -> None:
    [server] = sshd_fleet.start(1)
    host = sshd_fleet.host(server)
    site = sshd_fleet.workdir / f"inject-{secrets.token_hex(4)}"
    site.mkdir()
    site.chmod(0o777)
    ran = site / "ran"
    marker = Path(f"/tmp/opsmap-injected-{secrets.token_hex(6)}")  # the test user may write /tmp
    root = make_repo(tmp_path / "repo", ran)
    reason = hostile_reason(str(marker))
    done = opsmap("request", "restart", "shop/api", "--reason", reason, "--repo", str(root))
    assert done.returncode == 0, done.stderr

    repo = load_repo(read_tree(root))
    [loaded] = repo.requests
    request = loaded.model
    assert request.reason == reason
    shop = repo.map(request.map)
    assert shop is not None
    component = shop.component(request.component)
    assert component is not None
    action = component.action(request.action)
    assert action is not None
    command = action_command(action)
    assert command == f"echo api restart >>{ran}"
    for fragment in (str(marker), "$(", "`", ";", "'", '"', "\n"):
        assert fragment not in command

    async def scenario() -> tuple[ActionOutcome, list[str]]:
        ssh = transport_for(sshd_fleet)
        # The real SSH transport behind the fake, which keeps every command it sends.
        transport = FakeTransport(lambda h, c, t: ssh.run(h, c, timeout=t))
        try:
            runner = ActionRunner(transport, clock=RealClock())
            outcome = await runner.run_action(request.map, component, action, [host])
        finally:
            await ssh.aclose()
        return outcome, transport.commands()

    try:
        outcome, sent = asyncio.run(scenario())
        assert outcome.succeeded, outcome.to_json()
        assert sent == [command]
        assert ran.read_text() == "api restart\n"
        assert not marker.exists()
    finally:
        marker.unlink(missing_ok=True)
