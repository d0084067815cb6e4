"""Every shipped alert links a section of docs/runbook.md that exists and says how to act."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def anchors(markdown: str) -> dict[str, str]:
    """GitHub's anchor of each ``## heading`` (lowercase, punctuation dropped), with its text."""
    sections = re.split(r"^## ", markdown, flags=re.MULTILINE)[1:]
    found = {}
    for section in sections:
        heading, _, body = section.partition("\n")
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found[slug] = body
    return found


def test_every_alert_has_a_runbook_section() -> None:
    rules = yaml.safe_load((ROOT / "prometheus" / "opsmap-alerts.yaml").read_text())
    sections = anchors((ROOT / "docs" / "runbook.md").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    assert alerts
    for rule in alerts:
        url = rule["annotations"].get("runbook_url", "")
        page, _, anchor = url.partition("#")
        assert page == "docs/runbook.md", (rule["alert"], url)
        assert anchor == rule["alert"].lower(), (rule["alert"], url)
        assert anchor in sections, f"{rule['alert']}: no section #{anchor} in docs/runbook.md"
        for part in ("**What it means.**", "**How to check.**", "**How to fix.**"):
            assert part in sections[anchor], f"{rule['alert']}: its section lacks {part}"
