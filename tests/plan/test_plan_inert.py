"""The plan comment cannot be made to lie or to ping: repo text is inert Markdown.

Hostile names, descriptions, reasons and file names (newlines, fence lines, ESC and OSC 8
sequences, images, links, mentions, HTML) go through the real ``opsmap plan``; its
Markdown is parsed with markdown-it-py (CommonMark and tables, as GitHub reads them) and
nothing of the repo may come out as a link, an image, HTML, a heading or a code fence.
The shipped CI templates' plan scripts run as they are, against a head that does not
validate; a 70,000-character description leaves the Rights section whole.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token
from plan_support import commit_tree, git

from reconciler.plan import MARKER, MAX_MARKDOWN_CHARS

PROJECT = Path(__file__).resolve().parents[2]
SHOP = Path(__file__).parent / "golden" / "check-changed" / "head"
HOSTILE = (
    "![x](http://e.example/x.png) [click](http://e.example) <img src=x onerror=alert(1)> "
    "@org/team #12 www.e.example **bold** _em_ | cell | \x1b[31mred\x1b]8;;http://e.example\x07"
    "osc\x1b]8;;\x07 <!-- hide --> `tick` ~~strike~~ $x$"
)
FILE_NAME = "![x](x.png) @org-team\n```\nout \x1b[31m"
OUR_HTML = {"<details>", "<details open>", "</details>", "<summary>", "</summary>", "<b>", "</b>"}
OUR_HTML |= {"<code>", "</code>", MARKER}
OUR_HEADINGS = {"OpsMap plan", "Maps", "Rights", "Inventory", "Requests"}
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def two_commits(tmp_path: Path, head: Path) -> Path:
    """A repo whose HEAD^ holds the shop and whose HEAD holds ``head``."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_tree(repo, SHOP, "base", author="CI Bot <ci-bot@example.com>")
    commit_tree(repo, head, "head", author="Erin Developer <erin@example.com>")
    return repo


def shop_head(tmp_path: Path) -> Path:
    head = tmp_path / "head"
    shutil.copytree(SHOP, head)
    return head


def live_syntax(markdown: str) -> list[str]:
    """What in ``markdown`` is live beyond the plan's own structure, described."""
    parser = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    found = []
    tokens = parser.parse(markdown)

    def walk(items: list[Token]) -> None:
        for index, token in enumerate(items):
            if token.type in ("link_open", "image", "s_open"):
                found.append(f"{token.type}: {token.attrs or token.content}")
            inner = items[index + 1].content if index + 1 < len(items) else ""
            if token.type in ("em_open", "strong_open") and inner in ("em", "bold"):
                found.append(f"{token.type}: {inner}")  # the plan's own emphasis is allowed
            if token.type in ("html_inline", "html_block"):
                for tag in re.findall(r"<[^>]*>", token.content):
                    if tag not in OUR_HTML:
                        found.append(f"html: {tag}")
            if token.type == "fence" and token.info not in ("sh", "mermaid"):
                found.append(f"fence: {token.info!r}")
            if token.type == "text":
                for pattern in (r"@\w", r"#\d", r"://", r"www\."):
                    if re.search(pattern, token.content):
                        found.append(f"text {pattern}: {token.content!r}")
            if token.children:
                walk(token.children)

    walk(tokens)
    headings = [
        tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"
    ]  # fmt: skip
    found += [f"heading: {h}" for h in headings if h not in OUR_HEADINGS]
    return found


def test_hostile_names_reasons_and_descriptions_render_inert(tmp_path: Path) -> None:
    head = shop_head(tmp_path)
    shop = yaml.safe_load((head / "maps" / "shop.yaml").read_text())
    shop["description"] = HOSTILE
    shop["components"][0]["name"] = HOSTILE
    shop["components"][0]["description"] = HOSTILE
    (head / "maps" / "shop.yaml").write_text(yaml.safe_dump(shop))
    (head / "requests").mkdir()
    request = {"map": "shop", "component": "nginx", "action": "restart", "reason": HOSTILE}
    (head / "requests" / f"{FILE_NAME}.yaml").write_text(json.dumps(request))
    repo = two_commits(tmp_path, head)
    done = cli("plan", "--base", "HEAD^", cwd=repo)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith(MARKER)
    assert not RAW_CONTROL.search(out)
    assert live_syntax(out) == []
    assert "\\x1b[31mred\\x1b]8;;http" in out  # shown, escaped, not interpreted
    assert "&#64;&#8203;org/team" in out  # the mention is broken as GitHub's tools do
    assert "&#33;&#91;x&#93;(http:&#8203;//e.example/x.png)" in out
    assert "| Reason | " in out
    assert "restart" in out


def test_the_parser_sees_live_syntax_when_it_is_there() -> None:
    """The check above can fail: raw repo text in the same places is caught."""
    raw = f"{MARKER}\n## OpsMap plan\n\n| Reason | {HOSTILE} |\n|---|---|\n\n@org/team\n"
    problems = live_syntax(raw)
    assert any(p.startswith("image") for p in problems)
    assert any(p.startswith("html: <img") for p in problems)
    assert any(p.startswith("text @") for p in problems)
    assert "strong_open: bold" in problems


def test_a_huge_description_does_not_push_the_rights_out(tmp_path: Path) -> None:
    head = shop_head(tmp_path)
    shop = yaml.safe_load((head / "maps" / "shop.yaml").read_text())
    shop["description"] = "lorem ipsum " * 6000  # 72,000 characters
    (head / "maps" / "shop.yaml").write_text(yaml.safe_dump(shop))
    groups = head / "policies" / "groups.yaml"
    groups.write_text(
        groups.read_text().replace("sre: [alice@example.com", "sre: [mallory@example.com")
    )
    repo = two_commits(tmp_path, head)
    done = cli("plan", "--base", "HEAD^", cwd=repo)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert len(out) <= MAX_MARKDOWN_CHARS
    rights = out[out.index("### Rights") : out.index("### Inventory")]
    gained = [line for line in rights.splitlines() if line.startswith("| **gained** | `mallory@")]
    lost = [line for line in rights.splitlines() if line.startswith("| **lost** | `alice@")]
    summary = re.search(r"\*\*(\d+) gained\*\*, \*\*(\d+) lost\*\*", out)
    assert summary is not None
    assert gained
    assert lost
    assert "not shown" not in rights  # every right is listed
    assert int(summary[1]) == len([ln for ln in rights.splitlines() if "| **gained** |" in ln])
    assert "more characters)" in out  # the description was cut, and says so


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (key, *_strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def test_huge_values_are_cut_in_the_json_plan_and_its_graphs(tmp_path: Path) -> None:
    """A 72,000-character description, name and command: each is cut, and says so."""
    head = shop_head(tmp_path)
    shop = yaml.safe_load((head / "maps" / "shop.yaml").read_text())
    shop["description"] = "lorem ipsum " * 6000
    shop["components"][0]["name"] = "N" * 72_000
    shop["components"][0]["description"] = "D" * 72_000
    (head / "maps" / "shop.yaml").write_text(yaml.safe_dump(shop))
    repo = two_commits(tmp_path, head)
    done = cli("plan", "--base", "HEAD^", "--format", "json", cwd=repo)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    longest = max(_strings({k: v for k, v in document.items() if k != "graphs"}), key=len)
    assert len(longest) < 10_100
    assert "more characters)" in done.stdout
    assert len(done.stdout) < 100_000
    assert all(len(line) < 2_000 for g in document["graphs"].values() for line in g.splitlines())
    assert "NNNN" in document["graphs"]["shop"]


def _github_plan_script() -> str:
    workflow = yaml.safe_load((PROJECT / "ci" / "github" / "opsmap.yml").read_text())
    steps: list[dict[str, Any]] = workflow["jobs"]["plan"]["steps"]
    return next(step["run"] for step in steps if step.get("name") == "Plan")


def _gitlab_plan_script() -> str:
    pipeline = yaml.safe_load((PROJECT / "ci" / "gitlab" / "opsmap.gitlab-ci.yml").read_text())
    script: list[str] = pipeline["opsmap-plan"]["script"]
    return 'BASE="HEAD^1"\n' + "\n".join(line for line in script if "opsmap plan" in line)


@pytest.mark.parametrize("template", ["github", "gitlab"])
def test_ci_posts_plans_own_report_when_head_does_not_validate(
    tmp_path: Path, template: str
) -> None:
    head = shop_head(tmp_path)
    (head / "maps" / f"{FILE_NAME}.yaml").write_text("name: x\nnot_a_key: 1\n")
    repo = two_commits(tmp_path, head)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "opsmap").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m reconciler "$@"\n')
    (shim / "opsmap").chmod(0o755)
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    env = {
        **os.environ,
        "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(PROJECT),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(output),
    }
    script = _github_plan_script() if template == "github" else _gitlab_plan_script()
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    posted = (repo / "plan.md").read_text()
    assert posted.startswith(MARKER)
    assert "does not validate" in posted
    assert live_syntax(posted) == []
    tokens = MarkdownIt("commonmark").enable("table").parse(posted)
    assert not [t for t in tokens if t.type in ("fence", "code_block")]  # no fence to break
    assert "\x1b" not in posted
    if template == "github":
        assert summary.read_text() == posted
        assert "status=1" in output.read_text()


def test_many_maps_and_rights_still_fit_with_rights_first_cut_last(tmp_path: Path) -> None:
    """300 changed maps and a new admin: the maps shrink to a few, the rights are counted."""
    base, head = tmp_path / "base", tmp_path / "head"
    for tree, description in ((base, "old"), (head, "new " * 50)):
        (tree / "maps").mkdir(parents=True)
        for index in range(300):
            (tree / "maps" / f"m{index}.yaml").write_text(
                f"name: m{index}\ndescription: {description}\ncomponents:\n"
                "  - id: a\n    actions:\n      - {name: restart, command: x}\n"
            )
        (tree / "policies").mkdir()
        admins = "[alice@example.com, mallory@example.com]" if tree is head else "[]"
        (tree / "policies" / "p.yaml").write_text(
            f"groups:\n  sre: {admins}\npermissions:\n  - group: sre\n    role: admin\n"
        )
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_tree(repo, base, "base", author="CI Bot <ci-bot@example.com>")
    commit_tree(repo, head, "head", author="Erin Developer <erin@example.com>")
    done = cli("plan", "--base", "HEAD^", cwd=repo)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert len(out) <= MAX_MARKDOWN_CHARS
    assert "| Maps | 300 changed, 0 added, 0 removed |" in out
    summary = re.search(r"\*\*(\d+) gained\*\*", out)
    assert summary is not None
    gained = int(summary[1])
    rights = out[out.index("### Rights") : out.index("### Inventory")]
    shown = rights.split("Every right gained and lost")[0].count("| **gained** |")
    assert 0 < shown < gained  # 3,000 rights do not fit: the rows left out are counted
    more = f"**{gained - shown} more rights gained not shown — the table below counts them all.**"
    assert more in rights
    # past the first 1,000, every right is counted by who gains it: two people, 300 maps
    group = "| **gained** | `alice@example.com`, `mallory@example.com` | `m0`, `m1`, `m10`, "
    assert f"{group}`m100`, `m101` and 295 more | " in rights
    assert "| 1500 | 3000 |" in rights
    assert "more (see `opsmap plan --format json`)" in out  # the maps list was cut


MERMAID_HOSTILE = (
    '`**md string**` x"] --> evil["y ]\n click nginx href "http://e.example" \n'
    "%%{init: {'securityLevel': 'loose'}}%% #quot; <b>h</b> \x1b]0;t\x07 ```"
)
MERMAID_LINE = re.compile(
    r"graph TD"
    r"|    [\w-]+\[\"[\w .,:()+=/'#;-]*\"\](:::\w+)?"  # a node: its label holds no syntax
    r"|    [\w-]+ --> [\w-]+"
    r"|    classDef \w+ [\w:#,-]+( [\w:#,-]+)?"
)


def mermaid_problems(source: str) -> list[str]:
    """The lines of ``source`` that are not the graph's own node, edge and class lines."""
    return [line for line in source.splitlines() if not MERMAID_LINE.fullmatch(line)]


def test_repo_text_cannot_inject_mermaid_syntax(tmp_path: Path) -> None:
    """A name with quotes, brackets, a Markdown string, a directive or a click line stays a label.

    Through the real ``opsmap graph`` and the graphs of the real ``opsmap plan``.
    """
    head = shop_head(tmp_path)
    shop = yaml.safe_load((head / "maps" / "shop.yaml").read_text())
    shop["components"][0]["name"] = MERMAID_HOSTILE
    (head / "maps" / "shop.yaml").write_text(yaml.safe_dump(shop))
    repo = two_commits(tmp_path, head)
    assert mermaid_problems('graph TD\n    a["x"] --> b["y"]\n') != []  # the check can fail

    graph = cli("graph", "shop", cwd=repo)
    assert graph.returncode == 0, graph.stderr
    assert not RAW_CONTROL.search(graph.stdout)
    assert mermaid_problems(graph.stdout) == []
    assert "#96;#42;#42;md string#42;#42;#96;" in graph.stdout  # shown, as entities
    assert "%%" not in graph.stdout

    plan = cli("plan", "--base", "HEAD^", "--format", "json", cwd=repo)
    assert plan.returncode == 0, plan.stderr
    graphs = json.loads(plan.stdout)["graphs"]
    assert graphs
    assert all(mermaid_problems(source) == [] for source in graphs.values())
    markdown = cli("plan", "--base", "HEAD^", cwd=repo).stdout
    fences = [t.content for t in MarkdownIt("commonmark").parse(markdown) if t.type == "fence"]
    assert fences
    assert all(mermaid_problems(source) == [] for source in fences)
