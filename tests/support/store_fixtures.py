"""Fixtures (a pytest plugin, see tests/conftest.py): ``any_store``, a fresh state store,
once SQLite and once PostgreSQL (a new database of the session's throwaway cluster);
``open_store`` opens that same store again; ``store_kind`` says which it is."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.store.postgres import PostgresStore
from reconciler.store.protocol import StateStore
from reconciler.store.sqlite import SqliteStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_store(
    store_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[], StateStore]:
    if store_kind == "sqlite":
        return lambda: SqliteStore(tmp_path / "state")
    url: str = request.getfixturevalue("pg_url")
    return lambda: PostgresStore(url)


@pytest.fixture
def any_store(open_store: Callable[[], StateStore]) -> Iterator[StateStore]:
    opened = open_store()
    yield opened
    opened.close()
