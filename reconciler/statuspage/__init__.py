"""The status page: the browser's view of the running reconciler (read-only).

:func:`~reconciler.statuspage.routes.add_routes` mounts ``/``, ``/static/…`` and the JSON
documents under ``/api/v1/`` on the server's aiohttp application; the service passes a
:class:`~reconciler.statuspage.pagesource.PageSource`. The graph is laid out here
(:mod:`~reconciler.statuspage.layout`); the browser only draws it, as SVG, and refetches
the view it shows when the server's event stream (``/api/v1/events``) says it changed.
"""

from reconciler.statuspage.pagesource import AuditHistory, PageSource, RecordedAuditLog
from reconciler.statuspage.routes import add_routes

__all__ = ["AuditHistory", "PageSource", "RecordedAuditLog", "add_routes"]
