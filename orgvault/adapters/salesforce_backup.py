"""The Salesforce source the backup engine uses: :class:`SimpleSalesforceSource` plus the cheap
checks an incremental run makes.

- ``count_records(object_name, query_all=...)``: ``SELECT COUNT() FROM X`` through REST ``query``
  or ``queryAll ... WHERE IsDeleted = false`` (live records only; one API call; Bulk refuses
  aggregates). The incremental compares it with the count the
  snapshot will hold, to notice purges between reconciliations (see ``orgvault.services.backup``).

- ``count_many`` / ``describe_many``: the same for many objects through the Composite API
  (Salesforce counts a composite request as one API call). A call carries at most 25 sub-requests of
  which at most 5 queries (Salesforce refuses a call with more): describes go 25 to a call, COUNT()s
  and probes 5 to a call.

- ``count_and_probe_many``: the counts above plus, per object, a *change probe* in the same Composite
  calls: ``SELECT Id, SystemModstamp FROM X WHERE SystemModstamp >= since ORDER BY SystemModstamp
  LIMIT n`` (queryAll when the object has ``IsDeleted``, so deletions show). The backup engine
  compares the rows with what the parent run read near its watermark to skip objects that did not
  change (see ``orgvault.services.backup``).

Errors are translated as by the base class (``SalesforceRequestError`` for an object that cannot
be counted). In the ``*_many`` answers an object whose sub-request failed is simply absent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlparse

from orgvault.adapters.salesforce import SimpleSalesforceSource, schema_from_describe
from orgvault.domain.records import RestRecordMapper
from orgvault.errors import SalesforceRequestError
from orgvault.ports import ObjectSchema

COMPOSITE_MAX = 25  # sub-requests in one Composite call
COMPOSITE_MAX_QUERIES = 5  # of which Query / QueryAll / query-more (Salesforce refuses more)
PROBE_LIMIT_MAX = 2000  # one REST page: a probe never needs a queryMore

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
# A SOQL datetime literal as the engine writes it (``soql_datetime``): nothing else reaches a query.
_SOQL_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$")
_PROBE_MAPPER = RestRecordMapper([("Id", "id"), ("SystemModstamp", "datetime")])


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
        """GET each data-API ``path`` (e.g. ``/sobjects/X/describe``) through Composite calls;
        ``(status, body)`` per path, in the order of ``paths``. Each call carries at most
        ``COMPOSITE_MAX`` sub-requests of which at most ``COMPOSITE_MAX_QUERIES`` are queries
        (Salesforce refuses more), in as few calls as those limits allow. A path whose answer is
        missing (the call was refused as a whole) gets status 0."""
        base = urlparse(self.data_url).path
        out: list[tuple[int, Any]] = [(0, None)] * len(paths)
        for batch in _composite_batches(paths):
            subs = [{"method": "GET", "url": f"{base}{paths[i]}", "referenceId": f"r{i}"} for i in batch]
            body = self._json("POST", f"{self.data_url}/composite", json_body={"compositeRequest": subs})
            answers = {
                str(a.get("referenceId")): a
                for a in (body.get("compositeResponse") or [] if isinstance(body, dict) else [])
                if isinstance(a, dict)
            }
            for i in batch:
                a = answers.get(f"r{i}") or {}
                out[i] = (int(a.get("httpStatusCode") or 0), a.get("body"))
        return out

    def count_many(self, objects: Sequence[tuple[str, bool]]) -> dict[str, int]:
        """``count_records`` of many ``(object_name, query_all)`` in Composite calls."""
        return self.count_and_probe_many(objects, ())[0]

    def count_and_probe_many(
        self,
        counts: Sequence[tuple[str, bool]],
        probes: Sequence[tuple[str, bool, str]],
        *,
        limit: int = 201,
    ) -> tuple[dict[str, int], dict[str, list[tuple[str, str]]]]:
        """``count_records`` of each ``(object_name, query_all)`` in ``counts`` and a change probe of
        each ``(object_name, query_all, since)`` in ``probes``, in Composite calls (5 queries a call;
        one API call each).

        A probe is ``SELECT Id, SystemModstamp FROM X WHERE SystemModstamp >= since ORDER BY
        SystemModstamp LIMIT limit`` through ``queryAll`` (``query_all``: deleted rows included) or
        ``query``; its answer is the rows as ``(Id, SystemModstamp)`` in canonical form
        (``...000+0000``), oldest first, at most ``limit`` of them. ``since`` must be a SOQL datetime
        literal (``2024-01-31T09:05:00Z``). An object whose sub-request failed, or whose answer is
        malformed or incomplete (not ``done``), is absent from its dict: the caller must then treat
        it as unknown. Raises ``SalesforceRequestError`` for an invalid name, ``since`` or
        ``limit`` (before any call), and as ``_json`` does when a Composite call itself fails."""
        if not 1 <= limit <= PROBE_LIMIT_MAX:
            raise SalesforceRequestError(
                f"probe limit {limit} is not in 1..{PROBE_LIMIT_MAX}", error_code="LIMIT"
            )
        paths = []
        for name, query_all in counts:
            _check_object(name)
            soql = f"SELECT COUNT() FROM {name}" + (" WHERE IsDeleted = false" if query_all else "")
            paths.append(f"/{'queryAll' if query_all else 'query'}?q={quote(soql)}")
        for name, query_all, since in probes:
            _check_object(name)
            if not _SOQL_DATETIME.match(since or ""):
                raise SalesforceRequestError(f"not a SOQL datetime: {since!r}", error_code="MALFORMED_QUERY")
            soql = (
                f"SELECT Id, SystemModstamp FROM {name} WHERE SystemModstamp >= {since} "
                f"ORDER BY SystemModstamp LIMIT {limit}"
            )
            paths.append(f"/{'queryAll' if query_all else 'query'}?q={quote(soql)}")
        answers = self._composite_get(paths) if paths else []
        counted: dict[str, int] = {}
        for (name, _), (status, body) in zip(counts, answers[: len(counts)], strict=True):
            if status == 200 and isinstance(body, dict) and isinstance(body.get("totalSize"), int):
                counted[name] = int(body["totalSize"])
        probed: dict[str, list[tuple[str, str]]] = {}
        for (name, _, _), (status, body) in zip(probes, answers[len(counts) :], strict=True):
            rows = _probe_rows(body, limit) if status == 200 else None
            if rows is not None:
                probed[name] = rows
        return counted, probed

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


def _is_query(path: str) -> bool:
    """Does Salesforce count this Composite sub-request against its query limit (Query, QueryAll,
    a ``nextRecordsUrl`` continuation)?"""
    return path.lstrip("/").split("?", 1)[0].split("/", 1)[0] in ("query", "queryAll")


def _composite_batches(paths: Sequence[str]) -> list[list[int]]:
    """Indexes of ``paths`` grouped into Composite calls: each group has at most ``COMPOSITE_MAX``
    paths and at most ``COMPOSITE_MAX_QUERIES`` queries, and there are ``max(ceil(queries / 5),
    ceil(paths / 25))`` groups (the fewest possible): queries go 5 to a call, the other paths fill
    the calls' free places in order, then go 25 to a call."""
    queries = [i for i, p in enumerate(paths) if _is_query(p)]
    others = [i for i, p in enumerate(paths) if not _is_query(p)]
    batches: list[list[int]] = []
    while queries or others:
        take_q, queries = queries[:COMPOSITE_MAX_QUERIES], queries[COMPOSITE_MAX_QUERIES:]
        room = COMPOSITE_MAX - len(take_q)
        take_o, others = others[:room], others[room:]
        batches.append(sorted(take_q + take_o))
    return batches


def _check_object(name: str) -> None:
    if not _NAME.match(name or ""):
        raise SalesforceRequestError(f"not a valid object name: {name!r}", error_code="INVALID_NAME")


def _probe_rows(body: Any, limit: int) -> list[tuple[str, str]] | None:
    """The ``(Id, SystemModstamp)`` rows of a probe answer; None unless the answer is complete
    (``done``, a ``records`` list, at most ``limit`` rows, each with an Id and a stamp)."""
    if (
        not isinstance(body, dict)
        or body.get("done") is not True
        or not isinstance(body.get("records"), list)
    ):
        return None
    records = body["records"]
    if len(records) > limit:
        return None
    rows: list[tuple[str, str]] = []
    for raw in records:
        try:
            rec = _PROBE_MAPPER(raw)
        except (TypeError, ValueError, AttributeError):
            return None
        rid, stamp = rec.get("Id"), rec.get("SystemModstamp")
        if not isinstance(rid, str) or not rid or not isinstance(stamp, str):
            return None
        rows.append((rid, stamp))
    return rows


def _schema_or_none(object_name: str, body: dict[str, Any]) -> ObjectSchema | None:
    """None when the describe answer is malformed (the caller then describes the object alone,
    which reports it)."""
    try:
        return schema_from_describe(object_name, body)
    except (KeyError, TypeError):
        return None
