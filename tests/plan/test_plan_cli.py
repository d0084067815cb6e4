"""``opsmap plan`` and ``opsmap graph`` as a user meets them: exit codes, messages, limits."""

from __future__ import annotations

import json
import random
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from plan_support import make_repo

from reconciler.cli import main
from reconciler.model import Map
from reconciler.plan import MARKER, make_plan, render_markdown
from reconciler.plan.graph import mermaid
from reconciler.plan.render import truncate
from reconciler.plan.revisions import LocalRepo, load_revisions
from reconciler.plan.rights import MAX_RIGHTS_LISTED, diff_rights, naive_diff
from reconciler.policy.engine import PolicySet

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    case = GOLDEN / "component-added"
    make_repo(tmp_path / "repo", case / "base", case / "head")
    return tmp_path / "repo"


def test_unknown_ref_is_a_usage_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--base", "no-such-branch", "--repo", str(repo)]) == 2
    err = capsys.readouterr().err
    assert "unknown revision 'no-such-branch'" in err
    assert "Traceback" not in err


def test_not_a_git_repo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--base", "main", "--repo", str(tmp_path)]) == 2
    assert "not a git repository" in capsys.readouterr().err


def test_invalid_head_reports_findings_in_markdown_and_as_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = GOLDEN / "component-added"
    head = tmp_path / "head"
    head.mkdir()
    (head / "maps").mkdir()
    (head / "maps" / "shop.yaml").write_text("name: shop\ncomponents:\n  - id: a\n    nmae: x\n")
    make_repo(tmp_path / "repo", case / "base", head)
    assert main(["plan", "--base", "base", "--repo", str(tmp_path / "repo")]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(MARKER)
    assert "No plan: `HEAD` does not validate: **1 error(s)**" in out
    assert "| `maps/shop.yaml:4:5` | error | `unknown-key` | unknown key 'nmae'" in out
    assert err.startswith("maps/shop.yaml:4:5: error: unknown key 'nmae'")
    assert "no plan" in err


def test_unknown_ref_still_writes_a_markdown_report(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--base", "no-such-branch", "--repo", str(repo)]) == 2
    out = capsys.readouterr().out
    assert out.startswith(MARKER)
    assert "No plan:" in out
    assert "unknown revision &#39;" not in out  # plain text, no HTML escaping of quotes


def test_markdown_is_truncated_under_the_limit(repo: Path) -> None:
    plan = make_plan(repo, base="base")
    full = render_markdown(plan)
    assert full.startswith(MARKER)
    short = render_markdown(plan, limit=3000)
    assert len(short) <= 3000
    assert short.startswith(MARKER)
    assert "longer than fits here" in short
    assert "**37 gained**" in short  # the counts stay
    assert "more rights gained not shown — run `opsmap plan` locally" in short
    assert short.count("<details") == short.count("</details>")


def test_truncate_closes_an_open_code_block() -> None:
    text = "<details>\n\n```sh\n" + "echo hi\n" * 500 + "```\n</details>\n"
    cut = truncate(text, 1000)
    assert len(cut) <= 1000
    body = cut.split("> [!WARNING]")[0]
    assert body.count("```") % 2 == 0
    assert body.rstrip().endswith("</details>")


def test_json_carries_what_markdown_shows(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--base", "base", "--repo", str(repo), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["summary"]["rights_gained"] == len(document["rights"]["gained"]) > 0
    assert "redis" in document["graphs"]["shop"]


# -- the fast rights diff equals the naive one -----------------------------------------


def _random_tree(root: Path, rng: random.Random) -> None:
    """A small repo with random components, actions, bindings, overrides and groups."""
    people = [f"p{i}@example.com" for i in range(6)]
    groups = ["a", "b", "c"]
    verbs = ["view", "logs", "start", "stop", "restart"]
    maps = []
    for m in ("m1", "m2"):
        comps = []
        for c in range(rng.randint(1, 4)):
            actions = rng.sample(["start", "stop", "restart", "backup", "flush"], rng.randint(0, 3))
            lines = [f"  - id: c{c}", "    actions:" if actions else "    actions: []"]
            lines += [f"      - {{name: {a}, command: run {a}}}" for a in actions]
            comps.append("\n".join(lines))
        perms = []
        for _ in range(rng.randint(0, 2)):
            perms.append(_binding(rng, groups, people, verbs, None))
        maps.append(
            (
                m,
                "components:\n"
                + "\n".join(comps)
                + "\npermissions:"
                + ("\n" + "\n".join(perms) if perms else " []"),
            )
        )
    (root / "maps").mkdir(parents=True)
    for name, body in maps:
        (root / "maps" / f"{name}.yaml").write_text(f"name: {name}\n{body}\n")
    members = {g: rng.sample(people, rng.randint(0, 3)) for g in groups}
    policy = ["groups:"] + [f"  {g}: [{', '.join(ms)}]" for g, ms in members.items()]
    policy.append("permissions:")
    policy += [_binding(rng, groups, people, verbs, ["m1", "m2"]) for _ in range(rng.randint(1, 4))]
    (root / "policies").mkdir()
    (root / "policies" / "p.yaml").write_text("\n".join(policy) + "\n")


def _binding(
    rng: random.Random,
    groups: list[str],
    people: list[str],
    verbs: list[str],
    maps: list[str] | None,
) -> str:
    verdicts = ["allow", "deny"]
    who = f"group: {rng.choice(groups)}" if rng.random() < 0.7 else f"user: {rng.choice(people)}"
    lines = [f"  - {who}", f"    role: {rng.choice(['viewer', 'operator', 'admin'])}"]
    if maps is not None and rng.random() < 0.5:
        lines.append(f"    maps: [{rng.choice(maps)}]")
    if rng.random() < 0.6:
        c = f"c{rng.randint(0, 3)}"
        verdict = rng.choice(["allow", "deny"])
        lines += [
            "    overrides:",
            "      components:",
            f"        {c}: {{{verdict}: [{rng.choice(verbs)}]}}",
        ]
        lines += [
            "      actions:",
            f"        {c}: {{{rng.choice(['backup', 'flush', 'stop'])}: {rng.choice(verdicts)}}}",
        ]
    return "\n".join(lines)


@pytest.mark.parametrize("seed", range(48))
def test_fast_rights_diff_equals_naive_on_random_repos(tmp_path: Path, seed: int) -> None:
    """Head is base with one file replaced: a map, the policies, or both."""
    rng = random.Random(seed)
    _random_tree(tmp_path / "base", rng)
    _random_tree(tmp_path / "other", rng)
    shutil.copytree(tmp_path / "base", tmp_path / "head")
    changed = [["maps/m1.yaml"], ["policies/p.yaml"], ["maps/m2.yaml", "policies/p.yaml"]]
    for path in changed[seed % 3]:
        shutil.copy(tmp_path / "other" / path, tmp_path / "head" / path)
    make_repo(tmp_path / "repo", tmp_path / "base", tmp_path / "head")
    base, head = load_revisions(LocalRepo(tmp_path / "repo"), "base", "HEAD")
    assert not base.repo.findings
    assert not head.repo.findings
    fast = diff_rights(base.repo, head.repo)
    gained, lost = naive_diff(base.repo, head.repo)
    assert [c.right for c in fast.gained] == sorted(gained)
    assert [c.right for c in fast.lost] == sorted(lost)
    assert (fast.gained_count, fast.lost_count) == (len(gained), len(lost))
    assert fast.complete
    heads = PolicySet.from_repo(head.repo)
    assert all(c.rule == heads.decide(c.right.question()).rule for c in fast.gained + fast.lost)
    assert sum(g.rights for g in fast.groups) == len(gained) + len(lost)


def _bomb_tree(root: Path, *, members: int, components: int, role: str) -> None:
    """One map of ``components`` (one with a custom action), a group of ``members``.

    The group's binding gives ``role``; a member also has a binding of their own, and an
    override denies ``start`` on one component.
    """
    (root / "maps").mkdir(parents=True)
    lines = ["name: big", "components:"]
    lines += [f"  - id: c{i:05d}" for i in range(components)]
    lines += ["  - id: zz", "    actions:", "      - {name: backup, command: run backup}"]
    (root / "maps" / "big.yaml").write_text("\n".join(lines) + "\n")
    people = ", ".join(f"p{i:05d}@example.com" for i in range(members))
    (root / "policies").mkdir()
    (root / "policies" / "p.yaml").write_text(
        f"groups:\n  ops: [{people}]\npermissions:\n"
        f"  - group: ops\n    role: {role}\n"
        "    overrides: {components: {c00001: {deny: [start]}}}\n"
        "  - user: p00000@example.com\n    role: viewer\n"
    )


def test_a_binding_over_many_people_and_components_is_counted_not_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """viewer -> admin for 3,000 people on 2,000 components: 18 million rights, counted.

    Through the real ``opsmap plan``: the counts are exact, the first rights are listed in
    order with their rule, every right is in a group that names who gains it, and both
    outputs stay small.
    """
    members, components = 3000, 2000
    _bomb_tree(tmp_path / "base", members=members, components=components, role="viewer")
    _bomb_tree(tmp_path / "head", members=members, components=components, role="admin")
    make_repo(tmp_path / "repo", tmp_path / "base", tmp_path / "head")
    assert (
        main(["plan", "--base", "base", "--repo", str(tmp_path / "repo"), "--format", "json"]) == 0
    )
    out = capsys.readouterr().out
    assert len(out) < 1_000_000
    rights = json.loads(out)["rights"]
    subjects = members + 1  # and group:ops
    # start, stop, restart on every component but start on c00001; backup on zz
    expected = subjects * (3 * (components + 1) - 1 + 1)
    assert rights["gained_count"] == expected
    assert rights["lost_count"] == 0
    assert len(rights["gained"]) == MAX_RIGHTS_LISTED
    assert not rights["complete"]
    first = rights["gained"][:3]
    assert [(r["subject"], r["verb"], r["target"]) for r in first] == [
        ("group:ops", "restart", "big/c00000"),
        ("p00000@example.com", "restart", "big/c00000"),
        ("p00001@example.com", "restart", "big/c00000"),
    ]
    assert first[0]["rule"] == "policies/p.yaml:4:5: group ops (admin) grants everything (admin)"
    assert not any(r["target"] == "big/c00001" and r["verb"] == "start" for r in rights["gained"])
    assert sum(g["rights"] for g in rights["groups"]) == expected
    assert {g["subject_count"] for g in rights["groups"]} == {1, members}  # p00000 has their own
    assert all(
        g["verbs"] == ["start", "stop", "restart", "custom actions"] for g in rights["groups"]
    )

    assert main(["plan", "--base", "base", "--repo", str(tmp_path / "repo")]) == 0
    markdown = capsys.readouterr().out
    assert len(markdown) <= 65_000
    assert f"<summary>{expected} gained, 0 lost</summary>" in markdown
    assert "`group:ops`, `p00001@example.com`, `p00002@example.com`, " in markdown
    assert f" and {members - 5} more | `big` | " in markdown


# -- opsmap graph ----------------------------------------------------------------------


def test_mermaid_nodes_edges_and_classes() -> None:
    shop = Map.model_validate(
        {
            "name": "shop",
            "components": [
                {"id": "nginx", "name": 'Nginx "LB"', "dependencies": ["api-server"]},
                {"id": "api-server", "dependencies": ["zookeeper"]},
                {"id": "end"},
            ],
        }
    )
    text = mermaid(shop, classes={"nginx": "ok", "api-server": "error", "end": "bogus"})
    lines = text.splitlines()
    assert lines[0] == "graph TD"
    assert '    nginx["Nginx #34;LB#34;"]:::ok' in lines
    assert '    api-server["api-server"]:::error' in lines
    assert '    n2["end"]' in lines  # a Mermaid keyword is no node id
    assert "    nginx --> api-server" in lines
    assert "    api-server --> zookeeper" in lines
    assert '    zookeeper["zookeeper (external)"]:::external' in lines
    assert "    classDef ok fill:#d4edda,stroke:#28a745" in lines
    assert "    classDef unknown fill:#e2e3e5,stroke:#6c757d" in lines


@pytest.fixture
def status_server() -> Iterator[str]:
    body = json.dumps(
        {
            "maps": [
                {
                    "name": "shop",
                    "components": [
                        {"id": "nginx", "status": "ok"},
                        {"id": "api-server", "status": "warning"},
                        {"id": "postgresql", "status": "error"},
                    ],
                }
            ]
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/api/v1/status":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_graph_coloured_from_a_running_status(
    status_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = GOLDEN / "component-added" / "head"
    assert main(["graph", "shop", "--repo", str(root), "--status", status_server]) == 0
    out = capsys.readouterr().out
    assert '    nginx["Nginx Load Balancer"]:::ok' in out
    assert '    api-server["API Server"]:::warning' in out
    assert '    postgresql["PostgreSQL"]:::error' in out
    assert '    redis["Redis Cache"]:::unknown' in out  # not in the status


def test_graph_status_unreachable_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = GOLDEN / "component-added" / "head"
    code = main(["graph", "shop", "--repo", str(root), "--status", f"http://127.0.0.1:{port}"])
    assert code == 1
    err = capsys.readouterr().err
    assert f"http://127.0.0.1:{port}/api/v1/status: unreachable" in err
    assert "Traceback" not in err


def test_graph_unknown_map(capsys: pytest.CaptureFixture[str]) -> None:
    root = GOLDEN / "component-added" / "head"
    assert main(["graph", "nope", "--repo", str(root)]) == 2
    assert "no map named 'nope'" in capsys.readouterr().err


def test_graph_shows_a_status_server_reason_inert(capsys: pytest.CaptureFixture[str]) -> None:
    """A reason phrase with ESC/OSC from the status URL's server reaches the terminal escaped."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.0 500 bad\x1b]0;pwned\x07\x1b[2J\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        root = GOLDEN / "component-added" / "head"
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        assert main(["graph", "shop", "--repo", str(root), "--status", url]) == 1
    finally:
        thread.join(timeout=10)
        listener.close()
    err = capsys.readouterr().err
    assert "HTTP 500 bad\\x1b]0;pwned\\x07\\x1b[2J" in err
    assert "\x1b" not in err
