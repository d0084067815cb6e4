"""How long ``opsmap plan`` takes on a large map repo (goal: <= 5 s).

Generates the repo of ``validate_bench`` (10,000 components across 500 maps by default) in
a temporary git repo and commits it as base; then a head commit that changes a few things
the way a pull request does: a check of one map changed, a component added to another, a
member added to a group (a policy change), a host's labels changed, and a request added.
Times ``opsmap plan --base base`` (Markdown) as a subprocess and prints the figures.

    python benchmarks/plan_bench.py [--components N] [--maps M] [--runs R] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from validate_bench import generate, opsmap_command

GOAL_SECONDS = 5.0
NEW_COMPONENT = """  - id: bench-new-cache
    name: "Cache added by the PR"
    type: cache
    dependencies: [{dep}]
    hosts:
      labels: {{role: cache, env: production}}
    checks:
      - name: port
        type: tcp
        config: {{port: 6379}}
    actions:
      - name: restart
        command: systemctl restart redis
"""


def git(root: Path, *args: str, author: str = "Bench Bot <bench@example.org>") -> str:
    name, _, email = author.partition(" <")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME=name,
        GIT_AUTHOR_EMAIL=email.rstrip(">"),
        GIT_COMMITTER_NAME=name,
        GIT_COMMITTER_EMAIL=email.rstrip(">"),
    )
    done = subprocess.run(
        ["git", *args], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def change_like_a_pull_request(root: Path) -> str:
    """Edit the generated repo as a PR would; returns the request file it adds."""
    first = root / "maps" / "map-0007.yaml"
    text = first.read_text()
    first.write_text(text.replace("interval_secs: 30", "interval_secs: 45", 1))
    second = root / "maps" / "map-0042.yaml"
    text = second.read_text()
    dep = text.split("  - id: ", 2)[1].split("\n", 1)[0]
    second.write_text(
        text.replace("permissions:\n", NEW_COMPONENT.format(dep=dep) + "permissions:\n", 1)
    )
    policies = root / "policies" / "groups.yaml"
    text = policies.read_text()
    policies.write_text(
        text.replace(
            "  team-03: [ops-3@example.org]", "  team-03: [ops-3@example.org, new-hire@example.org]"
        )
    )
    hosts = root / "inventory" / "hosts.yaml"
    text = hosts.read_text()
    hosts.write_text(
        text.replace(
            "{role: db, env: staging, datacenter: dc1}",
            "{role: db, env: staging, datacenter: dc2}",
            1,
        )
    )
    request = root / "requests" / "2026" / "bench-restart.yaml"
    request.write_text(
        "map: map-0003\ncomponent: m0003-c005\naction: restart\nreason: benchmark PR request\n"
    )
    return request.relative_to(root).as_posix()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--components", type=int, default=10_000)
    parser.add_argument("--maps", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the repo here and keep it")
    args = parser.parse_args(argv)
    if args.maps < 50 or args.components < args.maps:
        parser.error("need at least 50 maps and one component per map")
    temp = None
    if args.keep:
        root = args.keep
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
    else:
        temp = tempfile.TemporaryDirectory(prefix="opsmap-plan-bench-")
        root = Path(temp.name)
    try:
        start = time.perf_counter()
        info = generate(root, args.components, args.maps)
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "base")
        git(root, "tag", "base")
        change_like_a_pull_request(root)
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "a pull request", author="Ops Three <ops-3@example.org>")
        print(
            f"generated {info['components']} components in {info['maps']} maps, base and head "
            f"commits, in {time.perf_counter() - start:.2f} s -> {root}"
        )
        command = [*opsmap_command(), "plan", "--base", "base", "--repo", str(root)]
        times = []
        output = ""
        for _ in range(args.runs):
            began = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - began)
            if done.returncode != 0:
                sys.exit(f"opsmap plan failed (exit {done.returncode}):\n{done.stderr}")
            output = done.stdout
        done = subprocess.run(
            [*command, "--format", "json"], capture_output=True, text=True, check=True
        )
        summary = json.loads(done.stdout)["summary"]
        print("plan summary: " + ", ".join(f"{k} {v}" for k, v in summary.items() if v))
        print(f"markdown: {len(output):,} characters")
        best, median = min(times), statistics.median(times)
        print(
            f"opsmap plan (subprocess): first {times[0]:.2f} s, best {best:.2f} s, "
            f"median {median:.2f} s of {len(times)}"
        )
        verdict = "meets" if best <= GOAL_SECONDS else "MISSES"
        print(f"goal <= {GOAL_SECONDS:.1f} s: {verdict} (best run {best:.2f} s)")
        return 0 if best <= GOAL_SECONDS else 1
    finally:
        if temp is not None:
            temp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
