"""The state store: :mod:`~reconciler.store.protocol` is what the loop, the request journal
and the audit outbox ask of it (no database type in it), :mod:`~reconciler.store.sqlite`
the implementation that owns the state database and its connections,
:mod:`~reconciler.store.statedir` the claim on the state directory, and
:mod:`~reconciler.store.writes` turns a failed write into a temporary, retried error."""
