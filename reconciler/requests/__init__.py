"""The request pipeline after a merge: :mod:`~reconciler.requests.processor` finds, judges,
runs and audits each request once; the state store's
:class:`~reconciler.store.protocol.Journal` remembers it durably."""
