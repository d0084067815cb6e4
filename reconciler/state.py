"""The reconciler's durable state in SQLite: revisions and the last result of every check.

Times are stored as wall-clock epochs; the scheduler works on a monotonic clock, so the
store is given the offset between the two when it loads or saves.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentless.result import CheckState
from reconciler.checkstate import FLAP_WINDOW, CheckStatus, StateType
from reconciler.scheduler import CheckKey

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS check_status (
    map TEXT NOT NULL, component TEXT NOT NULL, check_name TEXT NOT NULL, host TEXT NOT NULL,
    state INTEGER, state_type TEXT NOT NULL, hard_state INTEGER, attempt INTEGER NOT NULL,
    message TEXT NOT NULL, value REAL, last_run REAL, duration REAL, last_hard_change REAL,
    flapping INTEGER NOT NULL, history TEXT NOT NULL,
    PRIMARY KEY (map, component, check_name, host)
);
"""
_INSERT_CHECK = "INSERT INTO check_status VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


class StateError(Exception):
    """The state directory cannot be used (unwritable, corrupt, from a newer OpsMap)."""


class StateStore:
    """One SQLite file under the state directory; used from the event loop's thread only."""

    def __init__(self, state_dir: Path) -> None:
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            self.path = state_dir / "opsmap.sqlite3"
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(f"{self.path} was written by a newer OpsMap (schema {version})")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._rows_db: sqlite3.Connection | None = None
            self._rows_lock = threading.Lock()
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot use state directory {state_dir}: {exc}") from exc

    @property
    def db(self) -> sqlite3.Connection:
        return self._db

    def close(self) -> None:
        with self._rows_lock:
            if self._rows_db is not None:
                self._rows_db.close()
                self._rows_db = None
        self._db.close()

    def get_meta(self) -> dict[str, object]:
        rows = self._db.execute("SELECT key, value FROM meta").fetchall()
        return {key: json.loads(value) for key, value in rows}

    def set_meta(self, values: Mapping[str, object]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(key, json.dumps(value)) for key, value in values.items()],
            )

    def load_checks(self, *, wall_offset: float) -> dict[CheckKey, CheckStatus]:
        """Every remembered check status, with times moved to the monotonic clock."""

        def mono(wall: float | None) -> float | None:
            return None if wall is None else wall - wall_offset

        statuses = {}
        for row in self._db.execute("SELECT * FROM check_status"):
            key = CheckKey(*row[:4])
            state, state_type, hard, attempt, message, value, last_run, duration, change = row[4:13]
            statuses[key] = CheckStatus(
                state=None if state is None else CheckState(state),
                state_type=StateType(state_type),
                hard_state=None if hard is None else CheckState(hard),
                attempt=attempt,
                message=message,
                value=value,
                last_run=mono(last_run),
                last_duration_s=duration,
                last_hard_change=mono(change),
                flapping=bool(row[13]),
                history=deque(json.loads(row[14]), maxlen=FLAP_WINDOW),
            )
        return statuses

    def save_checks(self, statuses: Mapping[CheckKey, CheckStatus], *, wall_offset: float) -> None:
        """Replace the stored statuses with ``statuses`` (checks gone are forgotten)."""
        self.write_check_rows(check_rows(statuses, wall_offset=wall_offset))

    def write_check_rows(self, rows: Sequence[CheckRow]) -> None:
        """Replace the stored statuses with ``rows`` (from :func:`check_rows`).

        Safe to call from a worker thread, so that a large state is not written on the
        event loop: it uses a connection of its own (SQLite lets one writer at a time, so
        a write on the loop meanwhile waits for this one transaction at most).
        """
        with self._rows_lock:
            if self._rows_db is None:
                self._rows_db = sqlite3.connect(self.path, check_same_thread=False)
                self._rows_db.execute("PRAGMA synchronous=NORMAL")
            db = self._rows_db
            encoded = [(*row[:-1], json.dumps(row[-1])) for row in rows]
            with db:
                db.execute("DELETE FROM check_status")
                db.executemany(_INSERT_CHECK, encoded)


CheckRow = tuple[Any, ...]
"""A ``check_status`` row, its last element the history as a list (not yet JSON)."""


def check_rows(statuses: Mapping[CheckKey, CheckStatus], *, wall_offset: float) -> list[CheckRow]:
    """The rows of ``statuses``: a copy that the loop may go on changing statuses after."""

    def wall(mono: float | None) -> float | None:
        return None if mono is None else mono + wall_offset

    return [
        (
            *key,
            None if s.state is None else s.state.value,
            s.state_type.value,
            None if s.hard_state is None else s.hard_state.value,
            s.attempt,
            s.message,
            s.value,
            wall(s.last_run),
            s.last_duration_s,
            wall(s.last_hard_change),
            int(s.flapping),
            list(s.history),
        )
        for key, s in statuses.items()
    ]
