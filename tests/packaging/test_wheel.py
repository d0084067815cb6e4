"""The wheel and sdist that ``python -m build`` makes carry everything an installed OpsMap
needs or ships: the plan's templates, the JSON Schemas, the status page's static assets,
and (under <venv>/share/opsmap) the CI templates, alert rules, dashboard and unit.

The build runs offline (``--no-isolation``: the locked setuptools) on a copy of this
checkout, so the checkout is left as it was.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from ci_support import copy_checkout

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
SHARED = {
    "ci/github/opsmap.yml": "ci/github/opsmap.yml",
    "ci/gitlab/opsmap.gitlab-ci.yml": "ci/gitlab/opsmap.gitlab-ci.yml",
    "prometheus/opsmap-alerts.yaml": "prometheus/opsmap-alerts.yaml",
    "prometheus/prometheus.yml": "packaging/prometheus/prometheus.yml",
    "prometheus/alertmanager.yml": "packaging/prometheus/alertmanager.yml",
    "grafana/opsmap.json": "packaging/grafana/opsmap.json",
    "systemd/opsmap.service": "packaging/systemd/opsmap.service",
}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("build")
    source = copy_checkout(ROOT, base / "src")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(base / "dist"), "."],
        cwd=source, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return base / "dist"


def wheel_files(dist: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(dist / f"opsmap-{VERSION}-py3-none-any.whl") as wheel:
        return {name: wheel.read(name) for name in wheel.namelist() if not name.endswith("/")}


def test_the_version_is_0_2_0() -> None:
    assert VERSION == "0.2.0"


def test_the_wheel_carries_templates_schemas_and_static_assets(dist: Path) -> None:
    files = wheel_files(dist)
    expected = {
        str(path.relative_to(ROOT)): path.read_bytes()
        for pattern in ("reconciler/plan/templates/*", "reconciler/schemas/*.schema.json")
        for path in sorted(ROOT.glob(pattern))
    }
    static = ROOT / "reconciler" / "statuspage" / "static"
    if static.is_dir():  # the status page's assets, when this checkout has the status page
        expected |= {
            str(p.relative_to(ROOT)): p.read_bytes()
            for p in sorted(static.rglob("*"))
            if p.is_file()
        }
    assert len(expected) >= 6, expected.keys()
    missing = sorted(set(expected) - set(files))
    assert not missing, f"the wheel lacks {missing}"
    assert all(files[name] == data for name, data in expected.items())


def test_the_wheel_schemas_are_the_editors_schemas(dist: Path) -> None:
    files = wheel_files(dist)
    for path in sorted((ROOT / "schemas").glob("*.schema.json")):
        assert files[f"reconciler/schemas/{path.name}"] == path.read_bytes(), path.name


def test_the_wheel_shares_the_ci_templates_and_the_packaging(dist: Path) -> None:
    files = wheel_files(dist)
    prefix = f"opsmap-{VERSION}.data/data/share/opsmap/"
    for shared, source in SHARED.items():
        assert files.get(prefix + shared) == (ROOT / source).read_bytes(), shared


def test_the_wheel_holds_only_the_two_packages(dist: Path) -> None:
    tops = {name.split("/")[0] for name in wheel_files(dist)}
    assert tops == {
        "reconciler",
        "agentless",
        f"opsmap-{VERSION}.dist-info",
        f"opsmap-{VERSION}.data",
    }


def test_the_sdist_carries_the_packaging(dist: Path) -> None:
    with tarfile.open(dist / f"opsmap-{VERSION}.tar.gz") as sdist:
        names = {name.partition("/")[2] for name in sdist.getnames()}
    for rel in (
        *SHARED.values(),
        "packaging/Containerfile",
        "docs/runbook.md",
        "schemas/map.schema.json",
    ):
        assert rel in names, rel
