"""git runs with the child allow-list: ``OPSMAP_*`` and marked secrets never reach it."""

from __future__ import annotations

import pytest

from reconciler.git.runner import GitRunner

SECRET = "TOPSECRET-git-0815"


def git_env() -> dict[str, str]:
    """The environment git (and what it starts: ssh, helpers) sees, through a shell alias."""
    runner = GitRunner(remote="test", timeout_s=30)
    _, out = runner.run("-c", "alias.envdump=!env", "envdump", git_dir=None)
    return dict(line.split("=", 1) for line in out.decode().splitlines() if "=" in line)


def test_git_gets_no_secret_and_the_agent_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSMAP_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("DATABASE_PASSWORD", SECRET)
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
    env = git_env()
    assert SECRET not in "".join(f"{k}={v}" for k, v in env.items())
    assert env["SSH_AUTH_SOCK"] == "/tmp/agent.sock"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["LC_ALL"] == "C"


def test_a_marked_proxy_is_withheld(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", f"http://user:{SECRET}@proxy:3128")
    assert "https_proxy" in git_env()
    monkeypatch.setenv("OPSMAP_SECRET_ENV", "https_proxy")
    assert "https_proxy" not in git_env()
