"""A faithful local Salesforce org for tests, demos and benchmarks (see SOQL.md for the query subset).

The org model (:class:`Org`) is usable on its own; the HTTP server in :mod:`.server` exposes it through
Salesforce's REST, Bulk API 2.0, OAuth and SOAP login endpoints.
"""

from __future__ import annotations

from .clock import Clock
from .errors import SalesforceError
from .ids import IdFactory, is_valid_id, to_15, to_18
from .org import Org, Page
from .soql import Column, Query

__all__ = [
    "Clock",
    "Column",
    "IdFactory",
    "Org",
    "Page",
    "Query",
    "SalesforceError",
    "is_valid_id",
    "to_15",
    "to_18",
]
from .server import EmulatorFacts, EmulatorServer  # noqa: E402,F401  (HTTP server; see server.py)
