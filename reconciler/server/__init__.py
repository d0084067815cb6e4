"""``opsmap run``: :mod:`~reconciler.server.service` assembles the loop, the request
processor and the audit delivery; :mod:`~reconciler.server.http` serves the API, metrics
and the webhook (:mod:`~reconciler.server.webhook`); :mod:`~reconciler.server.operations`
is the loop's events sink and runs beside it: requests, audit records, action phases,
delivery."""
