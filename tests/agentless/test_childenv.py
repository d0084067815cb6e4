"""Local commands get an allow-listed environment: never ``OPSMAP_*`` nor marked secrets."""

from __future__ import annotations

import asyncio

import pytest

from agentless.childenv import child_environment
from agentless.inventory import Host
from agentless.local import LocalTransport
from agentless.result import HostName

SECRET = "TOPSECRET-value-4711"


def local_env(monkeypatch: pytest.MonkeyPatch) -> str:
    async def main() -> str:
        transport = LocalTransport()
        host = Host(name=HostName("here"), address="localhost", transport="local")
        result = await transport.run(host, "env", timeout=10)
        assert result.exit_status == 0, result.stderr
        return result.stdout

    return asyncio.run(main())


def test_a_local_command_sees_no_opsmap_variable_nor_an_unlisted_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSMAP_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("HOME", "/home/tester")
    out = local_env(monkeypatch)
    assert SECRET not in out
    assert "HOME=/home/tester" in out.splitlines()
    assert any(line.startswith("PATH=") for line in out.splitlines())


def test_a_variable_marked_secret_is_withheld_even_when_listed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", SECRET)
    monkeypatch.setenv("OPSMAP_SECRET_ENV", "LANG, TZ")
    out = local_env(monkeypatch)
    assert SECRET not in out
    assert "OPSMAP_SECRET_ENV" not in out


def test_git_extras_and_fixed_values() -> None:
    environ = {"PATH": "/bin", "SSH_AUTH_SOCK": "/s", "OPSMAP_X": "1", "HOME": "/h"}
    env = child_environment(("SSH_AUTH_SOCK", "OPSMAP_X"), fixed={"LC_ALL": "C"}, environ=environ)
    assert env == {"PATH": "/bin", "HOME": "/h", "SSH_AUTH_SOCK": "/s", "LC_ALL": "C"}
