"""The state store in a PostgreSQL database (see :mod:`reconciler.store.postgres.store`),
shared by the replicas of one map repo."""

from reconciler.store.postgres.schema import SCHEMA_VERSION
from reconciler.store.postgres.store import PostgresStore
from reconciler.store.postgres.url import is_state_url, masked

__all__ = ["SCHEMA_VERSION", "PostgresStore", "is_state_url", "masked"]
