"""The status page: the browser's view of the running reconciler (read-only).

:func:`~reconciler.statuspage.routes.add_routes` mounts ``/``, ``/static/…`` and the JSON
documents under ``/api/v1/`` on the server's aiohttp application; the service passes a
:class:`~reconciler.statuspage.source.PageSource`. The graph is laid out here
(:mod:`~reconciler.statuspage.layout`); the browser only draws it, as SVG, and refetches
the view it shows when the server's event stream (``/api/v1/events``) says it changed.
"""

from reconciler.statuspage.routes import add_routes
from reconciler.statuspage.source import AuditHistory, PageSource, RecordedAuditLog

__all__ = ["AuditHistory", "PageSource", "RecordedAuditLog", "add_routes"]
