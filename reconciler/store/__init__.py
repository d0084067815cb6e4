"""What every owner of the state database shares: :mod:`~reconciler.store.writes` turns a
failed write into a temporary, retried error (the loop's state, the request journal and
the audit outbox all write through it)."""
