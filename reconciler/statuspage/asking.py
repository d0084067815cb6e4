""" "Request this": the ``opsmap request`` command, the request file, and the forge link.

The page changes nothing: it shows what to run (or the file to add in a pull request) to
ask for an action, exactly as ``opsmap request`` writes it, and when ``opsmap.yaml`` names
the forge (``forge: {kind: github|gitlab, url: …}``) a link that opens the forge's
new-file page with that file prefilled; the forge's editor then commits it on a new
branch and opens the pull request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shlex
from dataclasses import dataclass
from typing import TypedDict
from urllib.parse import quote, urlencode

import yaml

from reconciler.model.request import Request
from reconciler.model.settings import Forge

REASON = "Say why this is needed."
"""The reason the prefilled request gives: the requester replaces it."""
REQUESTS_DIR = "requests"


class AskDoc(TypedDict):
    command: str
    """The ``opsmap request`` command line (shell-quoted)."""
    path: str
    text: str
    """The request file's text, as ``opsmap request`` writes it."""
    forge_url: str | None
    branch: str
    """The branch the file is proposed from (a new one, named after the request)."""


@dataclass(frozen=True, slots=True)
class Asking:
    """What the links are made of: the tracked branch, the forge, the viewer, the day."""

    branch: str
    forge: Forge | None
    user: str | None
    day: dt.date

    def ask(self, map_name: str, component: str, action: str) -> AskDoc:
        request = Request(map=map_name, component=component, action=action, reason=REASON)
        text = request_text(request)
        # one name per viewer, request and day: the same link on every refresh
        seed = f"{self.user or ''}\0{map_name}\0{component}\0{action}\0{self.day}".encode()
        suffix = hashlib.sha256(seed).hexdigest()[:6]
        slug = f"{self.day:%Y-%m-%d}-{action}-{component}-{suffix}"
        path = f"{REQUESTS_DIR}/{slug}.yaml"
        branch = f"request/{slug}"
        command = shlex.join(
            ["opsmap", "request", action, f"{map_name}/{component}", "--reason", REASON]
        )
        message = f"Request {action} of {map_name}/{component}"
        return {
            "command": command,
            "path": path,
            "text": text,
            "forge_url": new_file_url(self.forge, self.branch, path, text, message, branch),
            "branch": branch,
        }

    def commit_url(self, sha: str) -> str | None:
        return commit_url(self.forge, sha)


def request_text(request: Request) -> str:
    """The file ``opsmap request`` would write for ``request`` (yaml.safe_dump, in order)."""
    data = request.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


def new_file_url(
    forge: Forge | None, base: str, path: str, text: str, message: str, branch: str
) -> str | None:
    """The forge's page for a new file at ``path`` holding ``text``, from branch ``base``.

    GitHub: ``/new/BASE?filename=…&value=…&message=…`` (its editor offers "create a new
    branch and start a pull request"); GitLab: ``/-/new/BASE?file_name=…&content=…
    &commit_message=…&branch_name=…``.
    """
    if forge is None:
        return None
    if forge.kind == "github":
        query = {"filename": path, "value": text, "message": message}
        return f"{forge.url}/new/{quote(base, safe='/')}?{urlencode(query, quote_via=quote)}"
    query = {"file_name": path, "content": text, "commit_message": message, "branch_name": branch}
    return f"{forge.url}/-/new/{quote(base, safe='/')}?{urlencode(query, quote_via=quote)}"


def commit_url(forge: Forge | None, sha: str) -> str | None:
    if forge is None or not all(c in "0123456789abcdef" for c in sha) or not sha:
        return None
    return f"{forge.url}/commit/{sha}" if forge.kind == "github" else f"{forge.url}/-/commit/{sha}"
