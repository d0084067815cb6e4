"""How long ``opsmap validate`` takes on a large map repo (goal: <= 2 s on 2 cores).

Generates a repo of N components (default 10,000 across 500 maps): a dependency DAG in
each map plus some external dependencies, 2-4 checks of mixed types and 3-4 actions per
component, map-level bindings with overrides, a policies/ file with groups and bindings,
an inventory whose hosts match every selector, and some requests. Then times
``opsmap validate DIR`` as a subprocess (first run, best and median of the runs) and
in-process, and prints the figures.

Then the bombs a pull request could send, each one map of ``--bomb-size`` components
(default 10,000), validated by a real ``opsmap validate`` whose time, peak RSS and output
size are printed (goal: <= 2 s and <= 300 MB each, output bounded):

- ``chain``: a valid chain, each component depending on the one before it;
- ``fan``: each component also depends on the first (valid);
- ``fan-cycle``: the same plus the first depending on the last, a cycle through all of
  them (naively one finding per back edge, each with the whole path);
- ``selectors``: an inventory of as many hosts, component ``i`` selecting host ``i`` by
  its label (naively every host tried for every component);
- ``checks``: 1,000 hosts that every component (with one check) selects: 10 million
  scheduled checks, refused by count (``too-many-checks``) without building them.

    python benchmarks/validate_bench.py [--components N] [--maps M] [--runs R]
                                        [--keep DIR] [--profile]
                                        [--bombs also|only|no] [--bomb-size N]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_SECONDS = 2.0
GOAL_RSS_MB = 300
BOMBS = ("chain", "fan", "fan-cycle", "selectors", "checks")
ROLES = ("app", "db", "cache", "broker", "proxy", "worker")
ENVS = ("production", "staging")


def check_yaml(rng: random.Random, name: str) -> str:
    kind = rng.choice(("http", "tcp", "process", "command", "memory", "cpu", "disk"))
    interval = rng.choice((10, 30, 60))
    if kind == "http":
        body = (
            "type: http\n"
            "config:\n"
            f"  url: http://localhost:{rng.randint(1024, 9999)}/health\n"
            "  expected_status: 200\n"
        )
    elif kind == "tcp":
        body = f"type: tcp\nconfig:\n  port: {rng.randint(1, 65535)}\n"
    elif kind == "process":
        body = f"type: process\nconfig:\n  name: svc-{name}\n  min_count: 1\n"
    elif kind == "command":
        body = f"type: command\nconfig:\n  command: /usr/lib/nagios/plugins/check_{name} -w 5\n"
    else:
        native = {"memory": "native:memory", "cpu": "native:cpu", "disk": "native:disk_space"}
        body = (
            f'type: "{native[kind]}"\n'
            "config:\n"
            f"  warning_percent: {rng.randint(50, 80)}\n"
            f"  critical_percent: {rng.randint(85, 99)}\n"
        )
        if kind == "disk":
            body += "  path: /var/lib\n"
    return f"name: {name}\n{body}interval_secs: {interval}\ntimeout_secs: 5\n"


def indent(text: str, spaces: int, *, item: bool = False) -> str:
    pad = " " * spaces
    lines = text.rstrip("\n").split("\n")
    first = (pad[:-2] + "- " if item else pad) + lines[0]
    return "\n".join([first, *(pad + line for line in lines[1:])]) + "\n"


def map_yaml(
    rng: random.Random, index: int, ids: list[str], other_maps: list[list[str]]
) -> tuple[str, dict[str, list[str]]]:
    """A map file and, per component, its action names."""
    out = [
        f"name: map-{index:04d}",
        'version: "1.0"',
        f"description: Generated map {index} for the validate benchmark",
        "components:",
    ]
    actions_of: dict[str, list[str]] = {}
    for position, cid in enumerate(ids):
        role = ROLES[position % len(ROLES)]
        env = ENVS[index % len(ENVS)]
        out.append(f"  - id: {cid}")
        out.append(f'    name: "Component {cid}"')
        out.append(f"    type: {role}")
        out.append(f"    description: Component {cid} of map {index}")
        earlier = ids[:position]
        deps = rng.sample(earlier, k=min(len(earlier), rng.randint(0, 3)))
        if other_maps and rng.random() < 0.05:
            deps.append(rng.choice(rng.choice(other_maps)))  # external: a warning
        if deps:
            out.append("    dependencies:")
            out.extend(f"      - {dep}" for dep in deps)
        out.append("    hosts:" if position % 2 else "    agent:")
        out.append("      labels:")
        out.append(f"        role: {role}")
        out.append(f"        env: {env}")
        out.append("    checks:")
        for c in range(rng.randint(2, 4)):
            out.append(indent(check_yaml(rng, f"check-{c}"), 8, item=True).rstrip("\n"))
        names = ["start", "stop", "restart"] + (["backup"] if rng.random() < 0.5 else [])
        actions_of[cid] = names
        out.append("    actions:")
        for name in names:
            out.append(f"      - name: {name}")
            out.append(f'        label: "{name.capitalize()} {cid}"')
            out.append(f"        command: systemctl {name} {cid}.service")
            if name == "start":
                out.append("        async: true")
                out.append("        completion_check:")
                out.append("          type: tcp")
                out.append("          config:")
                out.append(f"            port: {rng.randint(1024, 65535)}")
                out.append("          timeout_secs: 60")
            if name in ("stop", "backup"):
                out.append("        confirmation_required: true")
    out.append("permissions:")
    out.append("  - group: sre")
    out.append("    role: admin")
    out.append(f"  - group: team-{index % 20:02d}")
    out.append("    role: operator")
    out.append("    overrides:")
    out.append("      components:")
    for cid in ids[:3]:
        out.append(f"        {cid}:")
        out.append("          deny: [stop]")
    out.append("      actions:")
    for cid in ids[:2]:
        out.append(f"        {cid}:")
        out.append(f"          {actions_of[cid][-1]}: allow")
    out.append("  - group: developers")
    out.append("    role: viewer")
    out.append("    overrides:")
    out.append("      components:")
    out.append(f"        {ids[0]}:")
    out.append("          allow: [logs, restart]")
    return "\n".join(out) + "\n", actions_of


def generate(root: Path, components: int, maps: int, seed: int = 2) -> dict[str, int]:
    rng = random.Random(seed)
    for folder in ("maps", "policies", "inventory", "requests"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    per_map = [components // maps + (1 if i < components % maps else 0) for i in range(maps)]
    all_ids: list[list[str]] = []
    files = 0
    requests = 0
    for index, count in enumerate(per_map):
        ids = [f"m{index:04d}-c{j:03d}" for j in range(count)]
        text, actions_of = map_yaml(rng, index, ids, all_ids[-5:])
        all_ids.append(ids)
        (root / "maps" / f"map-{index:04d}.yaml").write_text(text, encoding="utf-8")
        files += 1
        if index % 5 == 0 and ids:
            cid = rng.choice(ids)
            action = rng.choice(actions_of[cid])
            request = (
                f"map: map-{index:04d}\ncomponent: {cid}\naction: {action}\n"
                f"reason: benchmark request {requests}\n"
            )
            path = root / "requests" / f"{2026 + index % 3}" / f"r-{requests:04d}.yaml"
            path.parent.mkdir(exist_ok=True)
            path.write_text(request, encoding="utf-8")
            requests += 1
            files += 1
    groups = ["groups:", "  sre: [sre-1@example.org, sre-2@example.org]"]
    groups.append("  developers: [dev-1@example.org, dev-2@example.org]")
    groups += [f"  team-{t:02d}: [ops-{t}@example.org]" for t in range(20)]
    groups.append("permissions:")
    for t in range(20):
        chosen = [f"map-{i:04d}" for i in range(t, maps, 20)][:10]
        groups.append(f"  - group: team-{t:02d}")
        groups.append("    role: viewer")
        groups.append(f"    maps: [{', '.join(chosen)}]")
    groups.append("  - user: auditor@example.org")
    groups.append("    role: viewer")
    (root / "policies" / "groups.yaml").write_text("\n".join(groups) + "\n", encoding="utf-8")
    hosts = ["defaults:", "  user: opsmap", "  port: 22", "hosts:"]
    for role in ROLES:
        for env in ENVS:
            for n in range(3):
                hosts.append(f"  - name: {role}-{env}-{n}")
                hosts.append(f"    address: 10.{ROLES.index(role)}.{ENVS.index(env)}.{n + 1}")
                hosts.append(f"    labels: {{role: {role}, env: {env}, datacenter: dc1}}")
    (root / "inventory" / "hosts.yaml").write_text("\n".join(hosts) + "\n", encoding="utf-8")
    files += 2
    return {"files": files, "components": components, "maps": maps, "requests": requests}


def opsmap_command() -> list[str]:
    script = shutil.which("opsmap")
    return [script] if script else [sys.executable, "-m", "reconciler"]


def time_subprocess(root: Path, runs: int) -> tuple[list[float], dict[str, object]]:
    times = []
    report: dict[str, object] = {}
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(
            [*opsmap_command(), "validate", "--format", "json", str(root)],
            capture_output=True,
            text=True,
            check=False,
        )
        times.append(time.perf_counter() - start)
        if result.returncode not in (0, 1):
            sys.exit(f"opsmap validate failed (exit {result.returncode}):\n{result.stderr}")
        report = json.loads(result.stdout)
    return times, report


def bomb_inventory(kind: str, n: int) -> str | None:
    """The inventory of the bomb ``kind``, if it has one."""
    if kind == "selectors":
        hosts = [f"  - {{name: h{i}, address: 10.0.0.1, labels: {{role: r{i}}}}}" for i in range(n)]
    elif kind == "checks":
        hosts = [
            f"  - {{name: h{i}, address: 10.0.0.1, labels: {{role: all}}}}" for i in range(1000)
        ]
    else:
        return None
    return "hosts:\n" + "\n".join(hosts) + "\n"


def bomb_yaml(kind: str, n: int) -> str:
    """One map of ``n`` components wired as the bomb ``kind`` says (see the docstring)."""
    out = ["name: bomb", 'version: "1.0"', "components:"]
    if kind in ("selectors", "checks"):
        check = "[{name: k, type: tcp, config: {port: 80}, interval_secs: 10}]"
        for i in range(n):
            role = f"r{i}" if kind == "selectors" else "all"
            out.append(f"  - {{id: c{i}, hosts: {{labels: {{role: {role}}}}}, checks: {check}}}")
        return "\n".join(out) + "\n"
    for i in range(n):
        deps = [f"c{i - 1}"] if i else []
        if kind in ("fan", "fan-cycle") and i > 1:
            deps.append("c0")
        if kind == "fan-cycle" and i == 0:
            deps.append(f"c{n - 1}")
        out += [f"  - id: c{i}", f"    name: Component {i}", "    type: service"]
        if deps:
            out.append(f"    dependencies: [{', '.join(deps)}]")
    return "\n".join(out) + "\n"


def run_measured(argv: list[str]) -> tuple[int, bytes, float, float]:
    """Exit status, stdout, seconds and peak RSS (MB) of one process, waited by wait4."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read()
    return proc.returncode, output, elapsed, usage.ru_maxrss / 1024  # ru_maxrss is KiB


def bench_bombs(size: int) -> bool:
    met = True
    for kind in BOMBS:
        with tempfile.TemporaryDirectory(prefix=f"opsmap-bomb-{kind}-") as tmp:
            root = Path(tmp)
            (root / "maps").mkdir()
            text = bomb_yaml(kind, size)
            (root / "maps" / "bomb.yaml").write_text(text, encoding="utf-8")
            inventory = bomb_inventory(kind, size)
            if inventory is not None:
                (root / "inventory").mkdir()
                (root / "inventory" / "hosts.yaml").write_text(inventory, encoding="utf-8")
                text += inventory
            argv = [*opsmap_command(), "validate", str(root)]
            code, output, elapsed, rss = run_measured(argv)
            _, as_json, _, _ = run_measured([*argv[:-1], "--format", "json", str(root)])
            report = json.loads(as_json)
            ok = elapsed <= GOAL_SECONDS and rss <= GOAL_RSS_MB and code in (0, 1)
            met &= ok
            print(
                f"bomb {kind:9s} {size} components ({len(text) / 1024:.0f} KiB): exit {code}, "
                f"{len(report['errors'])} error(s), output {len(output) / 1024:.1f} KiB, "
                f"{elapsed:.2f} s, peak RSS {rss:.0f} MB "
                f"(goal <= {GOAL_SECONDS:g} s, <= {GOAL_RSS_MB} MB: {'met' if ok else 'MISSED'})"
            )
    return met


def time_in_process(root: Path) -> float:
    from reconciler.cli import main

    out = io.StringIO()
    saved = sys.stdout
    sys.stdout = out
    try:
        start = time.perf_counter()
        main(["validate", "--format", "json", str(root)])
        return time.perf_counter() - start
    finally:
        sys.stdout = saved


def profile(root: Path, top: int = 15) -> str:
    from reconciler.cli import main

    profiler = cProfile.Profile()
    saved = sys.stdout
    sys.stdout = io.StringIO()
    try:
        profiler.runcall(main, ["validate", "--format", "json", str(root)])
    finally:
        sys.stdout = saved
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(top)
    text.write("\n--- by own time ---\n")
    stats.sort_stats("tottime").print_stats(top)
    return text.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--components", type=int, default=10_000)
    parser.add_argument("--maps", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3, help="subprocess runs (default 3)")
    parser.add_argument("--keep", type=Path, help="write the repo here and keep it")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    parser.add_argument(
        "--bombs", choices=("also", "only", "no"), default="also", help="run the bombs (also)"
    )
    parser.add_argument("--bomb-size", type=int, default=10_000, help="components per bomb")
    args = parser.parse_args(argv)
    # the bombs first, while this process is small: a child's peak RSS counts what it
    # shared with its parent between fork and exec
    bombs_met = args.bombs == "no" or bench_bombs(args.bomb_size)
    if args.bombs == "only":
        return 0 if bombs_met else 1
    if args.maps < 1 or args.components < args.maps:
        parser.error("need at least one map and one component per map")

    temp = None
    if args.keep:
        root = args.keep
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
    else:
        temp = tempfile.TemporaryDirectory(prefix="opsmap-bench-")
        root = Path(temp.name)
    try:
        start = time.perf_counter()
        info = generate(root, args.components, args.maps)
        size = sum(p.stat().st_size for p in root.rglob("*.yaml"))
        print(
            f"generated {info['files']} files ({size / 1048576:.1f} MiB): {info['maps']} maps, "
            f"{info['components']} components, {info['requests']} requests "
            f"in {time.perf_counter() - start:.2f} s -> {root}"
        )
        times, report = time_subprocess(root, args.runs)
        errors, warnings = report["errors"], report["warnings"]
        assert isinstance(errors, list)
        assert isinstance(warnings, list)
        print(f"findings: {len(errors)} error(s), {len(warnings)} warning(s) (external deps)")
        for finding in errors[:5]:
            print(f"  unexpected error: {finding}")
        in_process = time_in_process(root)
        best, median = min(times), statistics.median(times)
        print(
            f"opsmap validate (subprocess): first {times[0]:.2f} s, best {best:.2f} s, "
            f"median {median:.2f} s of {len(times)}"
        )
        print(f"opsmap validate (in-process, imports warm): {in_process:.2f} s")
        print(f"per component: {best / args.components * 1e6:.0f} us")
        verdict = "meets" if best <= GOAL_SECONDS else "MISSES"
        print(f"goal <= {GOAL_SECONDS:.1f} s: {verdict} (best subprocess run {best:.2f} s)")
        if args.profile:
            print(profile(root))
        return 0 if best <= GOAL_SECONDS and bombs_met else 1
    finally:
        if temp is not None:
            temp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
