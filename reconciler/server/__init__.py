"""``opsmap run``: :mod:`~reconciler.server.service` assembles the loop, the request
processor and the audit delivery; :mod:`~reconciler.server.http` serves the API, metrics,
probes and the webhook (:mod:`~reconciler.server.webhook`) on the loop, within the bounds of
:mod:`~reconciler.server.connections`; :mod:`~reconciler.server.sse` streams the events
of :mod:`~reconciler.server.broker`, which :mod:`~reconciler.server.feed` publishes, to
each viewer of :mod:`~reconciler.server.identity`; :mod:`~reconciler.server.operations`
is the loop's events sink and runs beside it: requests, audit records, action phases,
delivery."""
