"""The request pipeline after a merge: :mod:`~reconciler.requests.processor` finds, judges,
runs and audits each request once; :mod:`~reconciler.requests.journal` remembers it durably."""
