"""Output formats, exit codes and file arguments of ``opsmap validate`` (issue 2, item 4)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from validate_support import Repo, run_cli

from reconciler.cli import main

TEXT_LINE = re.compile(
    r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning): "
    r"(?P<msg>.+) \[(?P<code>[a-z0-9-]+)\]$"
)
GITHUB_LINE = re.compile(
    r"^::(?P<sev>error|warning) file=(?P<file>[^,:\n]*),line=(?P<line>\d+),col=(?P<col>\d+)"
    r"(?:,title=(?P<title>[^,:\n]*))?::(?P<msg>[^\r\n]*)$"
)


def mixed_repo(repo: Repo) -> None:
    """Errors and warnings in several files."""
    repo.write(
        "maps/shop.yaml",
        """
        name: shop
        components:
          - id: api
            dependencies: [zookeeper, api]
          - id: db
            dependencies: [db2]
        """,
    )
    repo.write("maps/typo.yaml", "name: other\ncomponets: []\n")
    repo.write("requests/r.yaml", "map: nowhere\ncomponent: api\naction: restart\nreason: x\n")


def run_format(repo: Repo, fmt: str, *args: str) -> tuple[int, str, str]:
    repo.capsys.readouterr()
    repo.monkeypatch.chdir(repo.root)
    code = main(["validate", "--format", fmt, *args])
    out, err = repo.capsys.readouterr()
    return code, out, err


def test_text_format(repo: Repo) -> None:
    mixed_repo(repo)
    code, out, err = run_format(repo, "text")
    assert code == 1
    reference = repo.validate()
    lines = out.splitlines()
    assert len(lines) == len(reference.findings)
    parsed = []
    for line in lines:
        match = TEXT_LINE.match(line)
        assert match, f"not path:line:col: severity: message [code]: {line!r}"
        parsed.append(match)
    got = {
        (m["file"], int(m["line"]), int(m["col"]), m["sev"], m["code"], m["msg"]) for m in parsed
    }
    expected = {
        (f["file"], f["line"], f["column"], sev, f["code"], f["message"])
        for sev, pool in (("error", reference.errors), ("warning", reference.warnings))
        for f in pool
    }
    assert got == expected
    assert {m["sev"] for m in parsed} == {"error", "warning"}
    assert "Traceback" not in err


def test_text_format_is_sorted_by_file_and_line(repo: Repo) -> None:
    mixed_repo(repo)
    _, out, _ = run_format(repo, "text")
    matches = [TEXT_LINE.match(line) for line in out.splitlines()]
    keys = [(m["file"], int(m["line"]), int(m["col"])) for m in matches if m]
    assert keys == sorted(keys)


def test_text_summary_goes_to_stderr(repo: Repo) -> None:
    mixed_repo(repo)
    _, out, err = run_format(repo, "text")
    assert "error" in err
    assert all(TEXT_LINE.match(line) for line in out.splitlines())


@pytest.mark.parametrize("key", ["a\nb", "a\rb", "a\r\nb"])
def test_text_format_keeps_one_line_per_finding(repo: Repo, key: str) -> None:
    """A message quoting user text with a line break must still print as one line."""
    repo.write("maps/shop.yaml", f"name: shop\n{json.dumps(key)}: 1\n")
    _, out, _ = run_format(repo, "text")
    lines = out.splitlines()
    assert len(lines) == 1, lines
    assert TEXT_LINE.match(lines[0]), lines[0]


def test_json_format_shape(repo: Repo) -> None:
    mixed_repo(repo)
    code, out, err = run_format(repo, "json")
    assert code == 1
    assert err == ""
    report = json.loads(out)
    assert set(report) == {"valid", "errors", "warnings"}
    assert report["valid"] is False
    assert report["errors"]
    assert report["warnings"]
    for item in [*report["errors"], *report["warnings"]]:
        assert set(item) == {"file", "line", "column", "code", "message"}
        assert isinstance(item["file"], str)
        assert isinstance(item["line"], int)
        assert isinstance(item["column"], int)
        assert item["line"] >= 1
        assert item["column"] >= 1
        assert re.fullmatch(r"[a-z0-9-]+", item["code"])
        assert item["message"]
    codes = {e["code"] for e in report["errors"]}
    assert codes >= {"self-dependency", "unknown-key", "unknown-map"}
    assert {w["code"] for w in report["warnings"]} == {"external-dependency"}


def test_json_valid_repo(repo: Repo) -> None:
    repo.write("maps/shop.yaml", "name: shop\ncomponents:\n  - id: api\n    dependencies: [zk]\n")
    code, out, _ = run_format(repo, "json")
    report = json.loads(out)
    assert code == 0
    assert report["valid"] is True
    assert report["errors"] == []
    assert len(report["warnings"]) == 1


def test_json_empty_repo_is_valid(repo: Repo) -> None:
    code, out, _ = run_format(repo, "json")
    assert code == 0
    assert json.loads(out) == {"valid": True, "errors": [], "warnings": []}


def gh_unescape(value: str) -> str:
    for escaped, raw in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        value = value.replace(escaped, raw)
    return value


def test_github_format(repo: Repo) -> None:
    mixed_repo(repo)
    code, out, _ = run_format(repo, "github")
    assert code == 1
    reference = repo.validate()
    lines = out.splitlines()
    assert len(lines) == len(reference.findings)
    got = set()
    for line in lines:
        match = GITHUB_LINE.match(line)
        assert match, f"not a workflow command: {line!r}"
        got.add((match["sev"], match["file"], int(match["line"]), int(match["col"])))
    expected = {
        (sev, f["file"], f["line"], f["column"])
        for sev, pool in (("error", reference.errors), ("warning", reference.warnings))
        for f in pool
    }
    assert got == expected


def test_github_format_escapes_properties_and_data(repo: Repo) -> None:
    """``%``, CR and LF escaped in the message; also ``,`` and ``:`` in properties."""
    rel = "maps/odd, name: 100%.yaml"
    key = "50%,off: now\nplease"
    repo.write(rel, f"name: shop\n{json.dumps(key)}: 1\n")
    _, out, _ = run_format(repo, "github")
    lines = out.splitlines()
    assert len(lines) == 1, lines
    match = GITHUB_LINE.match(lines[0])
    assert match, lines[0]
    assert match["file"] == "maps/odd%2C name%3A 100%25.yaml"
    assert gh_unescape(match["file"]) == rel
    message = gh_unescape(match["msg"])
    assert key in message
    assert "%25" in match["msg"]
    assert "%0A" in match["msg"]
    # in the data part a comma or a colon needs no escape, and must not be mangled
    assert "50%25,off: now%0Aplease" in match["msg"]
    if match["title"] is not None:
        assert ":" not in match["title"]
        assert "," not in match["title"]


def test_github_format_with_strict_reports_warnings_as_errors(repo: Repo) -> None:
    repo.write("maps/shop.yaml", "name: shop\ncomponents:\n  - id: api\n    dependencies: [zk]\n")
    code, out, _ = run_format(repo, "github")
    assert code == 0
    assert out.startswith("::warning ")
    code, out, _ = run_format(repo, "github", "--strict")
    assert code == 1
    assert out.startswith("::error ")


# ── exit codes ────────────────────────────────────────────────────────────────


def test_exit_codes_in_process(repo: Repo) -> None:
    repo.write("maps/shop.yaml", "name: shop\n")
    assert run_format(repo, "text")[0] == 0
    repo.write("maps/bad.yaml", "name: bad\ncomponets: []\n")
    assert run_format(repo, "text")[0] == 1
    code, _, err = run_format(repo, "text", "does-not-exist")
    assert code == 2
    assert "does-not-exist" in err
    with pytest.raises(SystemExit) as exited:
        run_format(repo, "yaml")
    assert exited.value.code == 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["validate"], 0),
        (["validate", "."], 0),
        (["validate", "--strict"], 1),
        (["validate", "maps/bad.yaml"], 1),
        (["validate", "nowhere"], 2),
        (["validate", ".", "nowhere"], 2),
        (["validate", "--format", "xml"], 2),
        (["validate", "--bogus"], 2),
        (["frobnicate"], 2),
    ],
)
def test_exit_codes_of_the_command(tmp_path: Path, args: list[str], expected: int) -> None:
    (tmp_path / "maps").mkdir()
    ok = "name: ok\ncomponents: [{id: a, dependencies: [zk]}]\n"
    (tmp_path / "maps" / "ok.yaml").write_text(ok)
    if "maps/bad.yaml" in args:
        (tmp_path / "maps" / "bad.yaml").write_text("name: bad\ncomponets: []\n")
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == expected, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    if expected == 2:
        assert result.stderr.strip(), "a usage error says what is wrong"


# ── file arguments ────────────────────────────────────────────────────────────

SHOP = """
    name: shop
    components:
      - id: api
        actions:
          - name: restart
            command: systemctl restart api
"""


def test_request_file_alone_is_checked_against_the_whole_repo(repo: Repo) -> None:
    repo.write("maps/shop.yaml", SHOP)
    repo.write("requests/ok.yaml", "map: shop\ncomponent: api\naction: restart\nreason: x\n")
    outcome = repo.validate("requests/ok.yaml")
    assert (outcome.code, outcome.findings) == (0, [])


def test_request_file_alone_naming_an_unknown_component(repo: Repo) -> None:
    repo.write("maps/shop.yaml", SHOP)
    rel = "requests/2026/bad.yaml"
    repo.write(rel, "map: shop\ncomponent: web\naction: restart\nreason: x\n")
    outcome = repo.validate(rel)
    assert outcome.code == 1
    repo.assert_at(outcome.one("unknown-component"), rel, "component:")


def test_file_argument_from_another_directory(repo: Repo, tmp_path: Path) -> None:
    repo.write("maps/shop.yaml", SHOP)
    repo.write("requests/bad.yaml", "map: shop\ncomponent: web\naction: restart\nreason: x\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outcome = repo.validate(str(repo.root / "requests" / "bad.yaml"), cwd=elsewhere)
    assert outcome.code == 1
    (finding,) = outcome.errors
    assert finding["code"] == "unknown-component"
    assert Path(elsewhere, finding["file"]).resolve() == repo.root / "requests" / "bad.yaml"


def test_only_findings_of_the_named_files(repo: Repo) -> None:
    repo.write("maps/shop.yaml", SHOP)
    repo.write("maps/broken.yaml", "name: broken\ncomponets: []\n")
    repo.write("requests/bad.yaml", "map: shop\ncomponent: web\naction: restart\nreason: x\n")
    outcome = repo.validate("maps/shop.yaml")
    assert (outcome.code, outcome.findings) == (0, []), outcome.describe()
    outcome = repo.validate("maps/shop.yaml", "maps/broken.yaml")
    assert outcome.code == 1
    assert {f["file"] for f in outcome.findings} == {"maps/broken.yaml"}


def test_a_repo_and_one_of_its_files_reports_the_whole_repo(repo: Repo) -> None:
    """``opsmap validate . maps/shop.yaml``: the folder asks for every file."""
    repo.write("maps/shop.yaml", SHOP)
    repo.write("maps/broken.yaml", "name: broken\ncomponets: []\n")
    for args in ((".", "maps/shop.yaml"), ("maps/shop.yaml", ".")):
        outcome = repo.validate(*args)
        assert outcome.code == 1, f"{args}: {outcome.describe()}"
        assert {f["file"] for f in outcome.findings} == {"maps/broken.yaml"}


def test_map_change_breaking_a_request_is_reported_on_the_request(repo: Repo) -> None:
    """Passing only the map: findings of other files (the request) are left out."""
    repo.write("maps/shop.yaml", SHOP.replace("restart", "reboot"))
    repo.write("requests/ok.yaml", "map: shop\ncomponent: api\naction: restart\nreason: x\n")
    assert repo.validate("maps/shop.yaml").findings == []
    assert repo.validate("requests/ok.yaml").code == 1


def test_file_outside_repo_folders_is_read_as_a_map(repo: Repo, tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "shop.yaml").write_text("name: shop\ncomponents:\n  - id: api\n")
    outcome = repo.validate("shop.yaml", cwd=loose)
    assert (outcome.code, outcome.findings) == (0, [])
    (loose / "request.yaml").write_text("map: shop\ncomponent: api\naction: x\nreason: y\n")
    outcome = repo.validate("request.yaml", cwd=loose)
    assert outcome.code == 1
    assert outcome.with_code("unknown-key") or outcome.with_code("missing-key")
    assert {f["file"] for f in outcome.findings} == {"request.yaml"}


def test_loose_file_at_a_repo_root_is_a_map_of_that_repo(repo: Repo) -> None:
    repo.write("maps/shop.yaml", SHOP)
    repo.write("draft.yaml", "name: shop\n")
    outcome = repo.validate("draft.yaml")
    # two maps named 'shop' in one repo: the draft collides with maps/shop.yaml
    assert outcome.code == 1
    assert {f["file"] for f in outcome.findings} == {"draft.yaml"}


def test_settings_file_argument(repo: Repo) -> None:
    repo.write("opsmap.yaml", "require_signed_commits: false\npoll_interval_secs: 0\n")
    outcome = repo.validate("opsmap.yaml")
    assert outcome.code == 1
    repo.assert_at(outcome.one("interval-too-short"), "opsmap.yaml", "poll_interval_secs")


def test_a_branch_in_the_settings_is_a_warning_that_it_is_ignored(repo: Repo) -> None:
    """A repo cannot name the branch it is read from: the key is accepted (older repos set
    it), said to be ignored at its line, and an error only under --strict."""
    repo.write("opsmap.yaml", "poll_interval_secs: 45\nbranch: release\n")
    outcome = repo.validate("opsmap.yaml")
    assert outcome.code == 0
    finding = outcome.one("setting-ignored", severity="warning")
    repo.assert_at(finding, "opsmap.yaml", "branch")
    assert "--branch" in finding["message"]
    assert repo.validate("--strict", "opsmap.yaml").code == 1


@pytest.mark.parametrize("rel", ["maps/notes.txt", "maps/.drafts/shop.yaml", "maps/shop.json"])
def test_a_named_file_that_is_not_checked_is_not_called_valid(repo: Repo, rel: str) -> None:
    """Naming a file that validation skips must not print 'valid' for it silently."""
    repo.write(rel, "componets: [\n")
    repo.capsys.readouterr()
    repo.monkeypatch.chdir(repo.root)
    code = main(["validate", rel])
    out, err = repo.capsys.readouterr()
    assert code != 0, f"exit 0 for {rel}, which was never read: {err}"
    assert rel in out + err
