"""The Salesforce source the backup engine uses: :class:`SimpleSalesforceSource` plus the cheap
checks an incremental run makes.

- ``count_records(object_name, query_all=...)``: ``SELECT COUNT() FROM X`` through REST ``query``
  or ``queryAll ... WHERE IsDeleted = false`` (live records only; one API call; Bulk refuses
  aggregates). The incremental compares it with the count the
  snapshot will hold, to notice purges between reconciliations (see ``orgvault.services.backup``).

- ``count_many`` / ``describe_many``: the same for many objects through the Composite API, up to
  25 sub-requests per call (Salesforce counts a composite request as one API call): an incremental's
  fixed cost is then a couple of calls, not two per object.

Errors are translated as by the base class (``SalesforceRequestError`` for an object that cannot
be counted). In the ``*_many`` answers an object whose sub-request failed is simply absent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlparse

from orgvault.adapters.salesforce import SimpleSalesforceSource, schema_from_describe
from orgvault.errors import SalesforceRequestError
from orgvault.ports import ObjectSchema

COMPOSITE_MAX = 25

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")


class BackupSalesforceSource(SimpleSalesforceSource):
    """``SimpleSalesforceSource`` with ``count_records`` (one REST call)."""

    def count_records(self, object_name: str, *, query_all: bool = False) -> int:
        """Live (not deleted) records of ``object_name`` now. ``query_all``: count through
        ``queryAll`` with ``WHERE IsDeleted = false`` (the object must have ``IsDeleted``), so that
        rows ``query`` hides but a backup keeps (archived activities) are counted too."""
        if not _NAME.match(object_name or ""):
            raise SalesforceRequestError(
                f"not a valid object name: {object_name!r}", error_code="INVALID_NAME"
            )
        soql = f"SELECT COUNT() FROM {object_name}" + (" WHERE IsDeleted = false" if query_all else "")
        resource = "queryAll" if query_all else "query"
        body = self._json("GET", f"{self.data_url}/{resource}", params={"q": soql})
        try:
            return int(body["totalSize"])
        except (KeyError, TypeError, ValueError):
            raise SalesforceRequestError(
                f"COUNT() of {object_name} answered without a totalSize", error_code="MALFORMED"
            ) from None

    # --- composite ------------------------------------------------------------------------------

    def _composite_get(self, paths: Sequence[str]) -> list[tuple[int, Any]]:
        """GET each data-API ``path`` (e.g. ``/sobjects/X/describe``), 25 per Composite call;
        ``(status, body)`` per path, in order."""
        base = urlparse(self.data_url).path
        out: list[tuple[int, Any]] = []
        for start in range(0, len(paths), COMPOSITE_MAX):
            batch = paths[start : start + COMPOSITE_MAX]
            subs = [
                {"method": "GET", "url": f"{base}{path}", "referenceId": f"r{i}"}
                for i, path in enumerate(batch)
            ]
            body = self._json("POST", f"{self.data_url}/composite", json_body={"compositeRequest": subs})
            answers = {
                str(a.get("referenceId")): a
                for a in (body.get("compositeResponse") or [] if isinstance(body, dict) else [])
                if isinstance(a, dict)
            }
            for i in range(len(batch)):
                a = answers.get(f"r{i}") or {}
                out.append((int(a.get("httpStatusCode") or 0), a.get("body")))
        return out

    def count_many(self, objects: Sequence[tuple[str, bool]]) -> dict[str, int]:
        """``count_records`` of many ``(object_name, query_all)`` in Composite calls."""
        paths = []
        for name, query_all in objects:
            if not _NAME.match(name or ""):
                raise SalesforceRequestError(f"not a valid object name: {name!r}", error_code="INVALID_NAME")
            soql = f"SELECT COUNT() FROM {name}" + (" WHERE IsDeleted = false" if query_all else "")
            paths.append(f"/{'queryAll' if query_all else 'query'}?q={quote(soql)}")
        out: dict[str, int] = {}
        for (name, _), (status, body) in zip(objects, self._composite_get(paths), strict=True):
            if status == 200 and isinstance(body, dict) and isinstance(body.get("totalSize"), int):
                out[name] = int(body["totalSize"])
        return out

    def describe_many(self, names: Sequence[str]) -> dict[str, ObjectSchema]:
        """``describe`` of many objects in Composite calls."""
        valid = [n for n in names if _NAME.match(n or "")]
        out: dict[str, ObjectSchema] = {}
        for name, (status, body) in zip(
            valid, self._composite_get([f"/sobjects/{n}/describe" for n in valid]), strict=True
        ):
            if status == 200 and isinstance(body, dict):
                schema = _schema_or_none(name, body)
                if schema is not None:
                    out[name] = schema
        return out


def _schema_or_none(object_name: str, body: dict[str, Any]) -> ObjectSchema | None:
    """None when the describe answer is malformed (the caller then describes the object alone,
    which reports it)."""
    try:
        return schema_from_describe(object_name, body)
    except (KeyError, TypeError):
        return None
