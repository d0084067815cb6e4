"""The state store in one SQLite database in the state directory (see
:mod:`reconciler.store.sqlite.store`)."""

from reconciler.store.sqlite.schema import APPLICATION_ID, SCHEMA_VERSION, Connect
from reconciler.store.sqlite.store import SqliteStore

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "Connect", "SqliteStore"]
