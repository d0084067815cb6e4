"""Screenshots of the status page on this repo's examples, for the README.

    PYTHONPATH=tests/support python scripts/screenshots.py [--out DIR] [--listen HOST:PORT]

Copies the example map repo (``opsmap.yaml``, ``maps/``, ``policies/``, ``inventory/``,
``requests/``) into a fresh git repo in a temporary directory, with an example ``forge:``
added to its ``opsmap.yaml``, and runs ``opsmap run`` on it (the demo map's hosts use the
local transport; the others' SSH hosts do not exist here, so their components read
``unknown``). Once every demo component has a hard status, it saves PNGs of the overview,
the demo map's graph, the trading platform's graph and the demo ``web`` component in
headless Chromium (Debian's, nothing downloaded).

Listen on 127.0.0.1:9736 (the demo map checks OpsMap there) for a green ``opsmap`` node.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from browser import chromium, wait_until

ROOT = Path(__file__).resolve().parent.parent

FORGE = "https://github.com/example-org/ops-maps"
"""An example forge, added to the copy's opsmap.yaml (this repo's own names none)."""
EXAMPLES = ["opsmap.yaml", "maps", "policies", "inventory", "requests"]
SHOTS = [
    ("overview.png", "#/", "a.map-card"),
    ("map-demo.png", "#/maps/demo", "g.node"),
    ("map-trading-platform.png", "#/maps/trading-platform", "g.node"),
    ("component-demo-web.png", "#/maps/demo/components/web", "section.action"),
]


def git(cwd: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_AUTHOR_NAME="OpsMap Examples",
        GIT_AUTHOR_EMAIL="examples@example.com",
        GIT_COMMITTER_NAME="OpsMap Examples",
        GIT_COMMITTER_EMAIL="examples@example.com",
    )
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def example_repo(base: Path) -> Path:
    repo = base / "examples"
    repo.mkdir()
    for name in EXAMPLES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, symlinks=True)
        elif source.is_file():
            shutil.copy2(source, repo / name)
    # shown with a forge, so that the component view's "request this" has its link
    with (repo / "opsmap.yaml").open("a") as settings:
        settings.write(f"forge:\n  kind: github\n  url: {FORGE}\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the examples")
    return repo


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
        return json.load(response)


def demo_settled(base_url: str) -> bool:
    """Every component of the demo map has a hard status (failing checks are retried
    ``max_check_attempts`` times first: some 30 s)."""
    try:
        doc = get_json(base_url + "api/v1/maps/demo")
    except OSError:
        return False
    assert isinstance(doc, dict)
    nodes = doc["graph"]["nodes"]
    return bool(nodes) and all(n["status"] != "unknown" for n in nodes if not n["external"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--listen", default="127.0.0.1:9736")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base_url = f"http://{args.listen}/"
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        repo = example_repo(base)
        # the demo's process check looks for a process named opsmap: the console script
        opsmap = shutil.which("opsmap")
        command = [opsmap] if opsmap else [sys.executable, "-m", "reconciler"]
        argv = [*command, "run", "--repo", str(repo),
                "--listen", args.listen, "--state-dir", str(base / "state")]  # fmt: skip
        with (base / "opsmap.log").open("wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=base)
        try:
            wait_until(lambda: proc.poll() is not None or demo_settled(base_url),
                       what="the demo map's checks", timeout=180)  # fmt: skip
            if proc.poll() is not None:
                raise SystemExit((base / "opsmap.log").read_text(errors="replace"))
            driver = chromium(width=1280, height=900)
            try:
                for name, fragment, ready in SHOTS:
                    driver.get(base_url + fragment)
                    wait_until(lambda r=ready: driver.find_elements("css selector", r),
                               what=f"{fragment} rendered")  # fmt: skip
                    time.sleep(0.5)
                    driver.save_screenshot(str(args.out / name))
                    print(args.out / name)
            finally:
                driver.quit()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
