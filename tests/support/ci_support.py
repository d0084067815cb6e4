"""Helpers of the packaging tests: a copy of this checkout, and a local stand-in for
GitLab's merge request notes API (the CI template's plan job).

It answers what the job calls: ``GET …/notes?per_page=100`` (the list), ``POST …/notes``
(a new note) and ``PUT …/notes/ID`` (an update), each only with the right
``PRIVATE-TOKEN``, and records every call.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def copy_checkout(root: Path, dest: Path) -> Path:
    """The files git tracks or would track in ``root`` (not ignored ones), copied to ``dest``.

    Builds run there, so nothing (egg-info, build/) is written into the checkout.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=root, capture_output=True, check=True, timeout=60,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        if (root / rel).is_file() and not (root / rel).is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, dest / rel)
    return dest


NOTES = re.compile(r"(/api/v4/projects/[^/]+/merge_requests/[^/]+/notes)(?:/(\d+))?")


@dataclass
class NotesApi:
    url: str = ""
    token: str = ""
    notes: dict[int, str] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    project_paths: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[str]:
        with self.lock:
            return list(self.notes.values())

    def answer(self, method: str, path: str, body: bytes, token: str | None) -> tuple[int, Any]:
        with self.lock:
            self.calls.append((method, path))
            found = NOTES.fullmatch(path.partition("?")[0])
            if token != self.token:
                return 401, {"message": "401 Unauthorized"}
            if not found:
                return 404, {"message": "404 Not Found"}
            self.project_paths.add(found.group(1))
            note_id = int(found.group(2)) if found.group(2) else None
            if method == "GET" and note_id is None:
                return 200, [{"id": k, "body": v} for k, v in self.notes.items()]
            if method == "POST" and note_id is None:
                new_id = len(self.notes) + 1
                self.notes[new_id] = json.loads(body)["body"]
                return 201, {"id": new_id}
            if method == "PUT" and note_id in self.notes:
                self.notes[note_id] = json.loads(body)["body"]
                return 200, {"id": note_id}
            return 404, {"message": "404 Not Found"}


@contextlib.contextmanager
def serve_notes(token: str) -> Iterator[NotesApi]:
    api = NotesApi(token=token)

    class Handler(BaseHTTPRequestHandler):
        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            code, payload = api.answer(
                self.command, self.path, body, self.headers.get("PRIVATE-TOKEN")
            )
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = handle_one

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}/api/v4"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
