"""The CI templates run as shipped: their shell steps, on a real map repo with a pull request.

OpsMap is installed as a user would: ``OPSMAP_SOURCE`` is a git URL at the tag v0.2.0,
here of a git repo made from this checkout (``git+file://…@v0.2.0``), into a fresh venv
that sees the locked dependencies (no index is asked). Then each job's shell steps run
with the variables the forge sets. GitHub's ``uses:`` steps (checkout, setup-python,
artifacts, the github-script comment) are the forge's own and do not run here; GitLab's
``before_script`` installs the image's tools (git, curl, jq are on this machine). The
GitLab MR notes API is a local HTTP stand-in, the one seam that is not real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from ci_support import NotesApi, copy_checkout, serve_notes
from e2e_support import command_check, component, repo_files
from gitrepos import ALICE, BOB, BareRepo, Clone, git

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- opsmap-plan -->"
TOKEN = "glpat-stand-in-token"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a CI job: PATH with a fresh venv first, OPSMAP_SOURCE set."""
    base = tmp_path_factory.mktemp("ci")
    source = copy_checkout(ROOT, base / "opsmap-src")
    git(source, "init", "--quiet", "-b", "main")
    git(source, "add", "--all")
    git(source, "commit", "--quiet", "-m", "this checkout", author=ALICE)
    git(source, "tag", "v0.2.0")
    venv = base / "venv"
    # No pip of its own: the running interpreter's pip and locked setuptools build OpsMap
    # offline. Not --system-site-packages: from a venv (CI's) that reaches the *base*
    # interpreter's site-packages, whatever old setuptools it holds, not the locked ones;
    # a .pth names the running interpreter's own site-packages instead (plain paths: its
    # .pth files, OpsMap's editable install among them, are not read).
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    (site_packages,) = (venv / "lib").glob("python*/site-packages")
    locked = dict.fromkeys(sysconfig.get_path(k) for k in ("purelib", "platlib"))
    (site_packages / "locked-dependencies.pth").write_text("".join(f"{p}\n" for p in locked))
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "OPSMAP_SOURCE"}}
    return env | {
        "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}",
        "OPSMAP_SOURCE": f"git+file://{source}@v0.2.0",
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # pip's spelling of --no-build-isolation
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "VENV": str(venv),
    }


def map_repo(tmp_path: Path) -> tuple[BareRepo, Clone]:
    """main with one map; the branch ``pr`` adds a component (checked out)."""
    remote = BareRepo.create(tmp_path / "remote.git")
    clone = Clone.create(remote, tmp_path / "repo")
    one = [component("api", [command_check("fine", "true")])]
    clone.commit("the first map", author=ALICE, files=repo_files(one))
    clone.push()
    two = [*one, component("db", [command_check("up", "true")], dependencies=["api"])]
    clone.switch("pr", create_from="main")
    clone.commit("a database", author=BOB, files=repo_files(two))
    clone.push("pr")
    return remote, clone


def bash(script: str, *, cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """As both forges run a step: bash, errexit and pipefail."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def github_steps(job: str) -> list[dict[str, Any]]:
    workflow = yaml.safe_load((ROOT / "ci" / "github" / "opsmap.yml").read_text())
    steps: list[dict[str, Any]] = workflow["jobs"][job]["steps"]
    return steps


def run_github_job(job: str, repo: Path, env: dict[str, str]) -> dict[str, str]:
    """Every ``run:`` step of ``job`` in order (stopping at the first failure); the outputs."""
    output = repo.parent / f"{job}-output"
    env = env | {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(repo.parent / "sum")}
    outputs: dict[str, str] = {}
    for step in github_steps(job):
        if "run" not in step or step.get("if") == "steps.plan.outputs.status != '0'":
            continue
        done = bash(step["run"], cwd=repo, env=env)
        assert done.returncode == 0, f"step {step.get('name')}: {done.stdout}{done.stderr}"
        if output.exists():
            outputs |= dict(line.split("=", 1) for line in output.read_text().splitlines())
    return outputs


def test_the_workflow_pins_a_source_and_caches_pip() -> None:
    workflow = yaml.safe_load((ROOT / "ci" / "github" / "opsmap.yml").read_text())
    assert "OPSMAP_SOURCE" in workflow["env"]
    for job in ("validate", "plan"):
        setup = next(
            s for s in github_steps(job) if s.get("uses", "").startswith("actions/setup-python")
        )
        assert setup["with"]["cache"] == "pip"
        assert setup["with"]["cache-dependency-path"] == ".github/workflows/opsmap.yml"


def test_github_jobs_install_validate_and_plan(installed: dict[str, str], tmp_path: Path) -> None:
    _, clone = map_repo(tmp_path)
    clone.merge("pr", by=ALICE)  # GitHub's test merge: HEAD^1 is the base branch
    run_github_job("validate", clone.path, installed)
    found = shutil.which("opsmap", path=installed["PATH"])
    assert found == str(Path(installed["VENV"]) / "bin" / "opsmap")
    outputs = run_github_job("plan", clone.path, installed)
    assert outputs["status"] == "0"
    plan = (clone.path / "plan.md").read_text()
    assert plan.startswith(MARKER)
    assert "db" in plan
    assert (tmp_path / "sum").read_text() == plan
    assert json.loads((clone.path / "plan.json").read_text())


def test_github_install_says_what_to_set_without_a_source(
    installed: dict[str, str], tmp_path: Path
) -> None:
    install = next(s for s in github_steps("validate") if s.get("name") == "Install OpsMap")
    done = bash(install["run"], cwd=tmp_path, env=installed | {"OPSMAP_SOURCE": ""})
    assert done.returncode == 1
    assert "set OPSMAP_SOURCE" in done.stdout


def gitlab_job(name: str) -> dict[str, Any]:
    pipeline = yaml.safe_load((ROOT / "ci" / "gitlab" / "opsmap.gitlab-ci.yml").read_text())
    job: dict[str, Any] = pipeline[name]
    assert job["extends"] == ".opsmap"
    assert "OPSMAP_SOURCE" in pipeline["variables"]
    hidden = pipeline[".opsmap"]
    assert hidden["cache"]["paths"] == [".cache/pip"]
    assert hidden["variables"]["PIP_CACHE_DIR"] == "$CI_PROJECT_DIR/.cache/pip"
    return job


@pytest.fixture
def notes() -> Iterator[NotesApi]:
    with serve_notes(TOKEN) as api:
        yield api


def test_gitlab_jobs_install_validate_plan_and_keep_one_note(
    installed: dict[str, str], tmp_path: Path, notes: NotesApi
) -> None:
    _, clone = map_repo(tmp_path)
    env = installed | {
        "CI_PROJECT_DIR": str(clone.path),
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_API_V4_URL": notes.url,
        "CI_PROJECT_ID": "42",
        "CI_MERGE_REQUEST_IID": "7",
        "OPSMAP_PLAN_TOKEN": TOKEN,
    }
    validate = bash("\n".join(gitlab_job("opsmap-validate")["script"]), cwd=clone.path, env=env)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert json.loads((clone.path / "opsmap-validate.json").read_text()) is not None
    script = "\n".join(gitlab_job("opsmap-plan")["script"])
    for _push in range(2):  # a second pipeline updates the note in place
        done = bash(script, cwd=clone.path, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    plan = (clone.path / "plan.md").read_text()
    assert plan.startswith(MARKER)
    assert "db" in plan
    assert notes.bodies() == [plan], "one note, holding the plan"
    assert [m for m, _ in notes.calls if m != "GET"] == ["POST", "PUT"]
    assert notes.project_paths == {"/api/v4/projects/42/merge_requests/7/notes"}
