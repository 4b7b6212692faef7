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

- ``count_and_first_pages``: the counts above plus, per object, the *first page of its delta read*
  (the very query ``read_page`` would send for a REST read cursor) in the same Composite calls. The
  backup engine compares its rows with what the parent run read near its watermark to skip objects
  that did not change, and hands the page to the object's extract so that it is not read again
  (see ``orgvault.services.backup``). First pages are at most ``FIRST_PAGE_RECORDS`` records; the
  calls of one plan go out ``COMPOSITE_PARALLEL`` at a time.

Errors are translated as by the base class (``SalesforceRequestError`` for an object that cannot
be counted). In the ``*_many`` answers an object whose sub-request failed is simply absent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlparse

from orgvault.adapters.salesforce import SimpleSalesforceSource, schema_from_describe
from orgvault.errors import SalesforceRequestError
from orgvault.ports import ObjectSchema, RecordPage

COMPOSITE_MAX = 25  # sub-requests in one Composite call
COMPOSITE_MAX_QUERIES = 5  # of which Query / QueryAll / query-more (Salesforce refuses more)
COMPOSITE_PARALLEL = 3  # Composite calls in flight at once (planning an incremental)
FIRST_PAGE_RECORDS = 200  # batch size of the first pages read at plan time (Salesforce's minimum)

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

    def _composite_get(
        self, paths: Sequence[str], headers: Sequence[dict[str, str]] | None = None
    ) -> list[tuple[int, Any]]:
        """GET each data-API ``path`` (e.g. ``/sobjects/X/describe``) through Composite calls;
        ``(status, body)`` per path, in the order of ``paths``. Each call carries at most
        ``COMPOSITE_MAX`` sub-requests of which at most ``COMPOSITE_MAX_QUERIES`` are queries
        (Salesforce refuses more), in as few calls as those limits allow. ``headers``: per path, the
        sub-request's HTTP headers. A path whose answer is missing (the call was refused as a whole)
        gets status 0."""
        base = urlparse(self.data_url).path
        out: list[tuple[int, Any]] = [(0, None)] * len(paths)

        def call(batch: list[int]) -> None:
            subs = [
                {"method": "GET", "url": f"{base}{paths[i]}", "referenceId": f"r{i}"}
                | ({"httpHeaders": headers[i]} if headers and headers[i] else {})
                for i in batch
            ]
            body = self._json("POST", f"{self.data_url}/composite", json_body={"compositeRequest": subs})
            answers = {
                str(a.get("referenceId")): a
                for a in (body.get("compositeResponse") or [] if isinstance(body, dict) else [])
                if isinstance(a, dict)
            }
            for i in batch:
                a = answers.get(f"r{i}") or {}
                out[i] = (int(a.get("httpStatusCode") or 0), a.get("body"))

        batches = _composite_batches(paths)
        if len(batches) < 2:
            for batch in batches:
                call(batch)
            return out
        self._ensure_login()  # once, before the calls go out together
        # A few calls at once: Salesforce answers them in parallel (well under its limit of
        # concurrent long-running requests); the first error is raised once all have ended.
        with ThreadPoolExecutor(
            max_workers=COMPOSITE_PARALLEL, thread_name_prefix="orgvault-composite"
        ) as ex:
            for future in [ex.submit(call, b) for b in batches]:
                future.result()
        return out

    def count_many(self, objects: Sequence[tuple[str, bool]]) -> dict[str, int]:
        """``count_records`` of many ``(object_name, query_all)`` in Composite calls."""
        return self.count_and_first_pages(objects, ())[0]

    def count_and_first_pages(
        self,
        counts: Sequence[tuple[str, bool]],
        reads: Sequence[tuple[str, dict[str, Any]]],
    ) -> tuple[dict[str, int], dict[str, RecordPage]]:
        """``count_records`` of each ``(object_name, query_all)`` in ``counts`` and the first page
        of each ``(object_name, cursor)`` in ``reads``, in Composite calls (5 queries a call; one API
        call each). ``cursor`` is a REST read cursor as ``start_read(..., strategy="rest")`` returns
        it (no call made yet); its page is what ``read_page(cursor)`` would return at that moment —
        same query, same record mapping — but at most ``FIRST_PAGE_RECORDS`` records (Salesforce's
        smallest batch size: a planning step holding the first pages of many objects stays small),
        with its continuation cursor when the answer is not ``done``.

        An object whose sub-request failed or whose answer is malformed is absent from its dict:
        the caller must then treat it as unknown (and read it as usual). Raises
        ``SalesforceRequestError`` for an invalid object name or a cursor that is not an unread REST
        cursor (before any call), and as ``_json`` does when a Composite call itself fails."""
        paths: list[tuple[str, dict[str, str]]] = []
        for name, query_all in counts:
            _check_object(name)
            soql = f"SELECT COUNT() FROM {name}" + (" WHERE IsDeleted = false" if query_all else "")
            paths.append((f"/{'queryAll' if query_all else 'query'}?q={quote(soql)}", {}))
        batch = min(self.rest_batch_size or FIRST_PAGE_RECORDS, FIRST_PAGE_RECORDS)
        headers = {"Sforce-Query-Options": f"batchSize={batch}"}
        for name, cursor in reads:
            _check_object(name)
            if cursor.get("kind") != "rest" or cursor.get("next") or cursor.get("object") != name:
                raise SalesforceRequestError(f"not an unread REST cursor of {name}", error_code="CURSOR")
            endpoint = "queryAll" if cursor.get("all", True) else "query"
            paths.append((f"/{endpoint}?q={quote(str(cursor['soql']))}", headers))
        answers = self._composite_get([p for p, _ in paths], [h for _, h in paths]) if paths else []
        counted: dict[str, int] = {}
        for (name, _), (status, body) in zip(counts, answers[: len(counts)], strict=True):
            if status == 200 and isinstance(body, dict) and isinstance(body.get("totalSize"), int):
                counted[name] = int(body["totalSize"])
        pages: dict[str, RecordPage] = {}
        for (name, cursor), (status, body) in zip(reads, answers[len(counts) :], strict=True):
            if status != 200:
                continue
            try:
                pages[name] = self._rest_answer(cursor, body)
            except SalesforceRequestError:
                continue
        return counted, pages

    def record_counts(self, names: Sequence[str]) -> dict[str, int]:
        """Approximate live record counts of many objects in ONE call (``/limits/recordCount``):
        Salesforce refreshes them periodically, so they are good for planning (which object is
        large), never for checking a backup. Objects Salesforce does not report are absent."""
        valid = [n for n in names if _NAME.match(n or "")]
        if not valid:
            return {}
        body = self._json("GET", f"{self.data_url}/limits/recordCount", params={"sObjects": ",".join(valid)})
        out: dict[str, int] = {}
        for item in body.get("sObjects") or [] if isinstance(body, dict) else []:
            if isinstance(item, dict) and isinstance(item.get("count"), int) and item.get("name"):
                out[str(item["name"])] = int(item["count"])
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


def _schema_or_none(object_name: str, body: dict[str, Any]) -> ObjectSchema | None:
    """None when the describe answer is malformed (the caller then describes the object alone,
    which reports it)."""
    try:
        return schema_from_describe(object_name, body)
    except (KeyError, TypeError):
        return None
