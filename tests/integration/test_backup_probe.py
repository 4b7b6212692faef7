"""The incremental's change probe: objects whose probe shows only the rows the parent already holds
(and whose count did not move) are finished at plan time with no query of their own, yet every kind
of change on such an object — an update, a late commit inside the overlap window, a delete, a purge —
is still captured, and the snapshot equals the org."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from orgvault.bootstrap import App, init_local, open_app
from orgvault.domain.models import ChunkKind, ObjectState, RunKind
from orgvault.settings import Settings
from tests.integration.test_backup_support import ORG, SMALL_CHUNKS, assert_identical, connect, source_factory

_FROM = re.compile(r"\bFROM\s+(\w+)", re.I)


class Requests:
    """Every HTTP request the Salesforce sources of one app made: ``(method, path, soql)``."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, str]] = []

    def queried_objects(self) -> set[str]:
        """Objects named by a query sent on its own (not inside a Composite call)."""
        return {m.group(1) for _, path, q in self.log if q and (m := _FROM.search(q))}

    def composite_calls(self) -> int:
        return sum(1 for method, path, _ in self.log if method == "POST" and path.endswith("/composite"))


def _recording_app(home: Path, requests: Requests) -> App:
    make = source_factory()

    def factory(conn: Any, creds: dict[str, str]) -> Any:
        src = make(conn, creds)
        inner = src._request

        def request(method: str, url: str, **kw: Any) -> Any:
            q = (kw.get("params") or {}).get("q") or parse_qs(urlparse(url).query).get("q", [""])[0]
            requests.log.append((method, urlparse(url).path, str(q)))
            return inner(method, url, **kw)

        src._request = request
        return src

    settings = Settings.from_env({}, home=str(home), **{**SMALL_CHUNKS, "reconcile_every": 7})
    init_local(settings)
    return open_app(settings, source_factory=factory)


@pytest.fixture
def world(tmp_path: Path, fresh_emulator: Any) -> tuple[App, Any, Requests]:
    """A fully backed-up org (scheduled reconciliation far away), then 15 quiet minutes."""
    emu = fresh_emulator(scale=150, seed=31)
    requests = Requests()
    app = _recording_app(tmp_path, requests)
    connect(app, emu)
    app.backup_service().run_backup(ORG)
    emu.org.clock.advance(900)
    requests.log.clear()
    return app, emu, requests


def _incremental(app: App) -> tuple[Any, Any]:
    service = app.backup_service()
    plan = service.start_run(ORG)
    for obj in plan.objects:
        while service.extract_step(ORG, plan.run_id, obj).status.value != "done":
            pass
    service.finalize_run(ORG, plan.run_id)
    snap = app.catalog.get_snapshot(ORG, plan.run_id)
    assert snap is not None and snap.kind is RunKind.INCREMENTAL
    return plan, snap


def _delta_objects(app: App, run_id: str) -> set[str]:
    return {
        c.object_name for c in app.catalog.list_checkpoints(ORG, run_id) if c.cursor.get("mode") == "delta"
    }


def _a_record(emu: Any, sobject: str) -> dict[str, Any]:
    return next(emu.org.true_records(sobject, include_blobs=False))


def test_only_changed_objects_are_queried_and_the_snapshot_equals_the_org(world):
    app, emu, requests = world
    account = _a_record(emu, "Account")
    emu.org.update("Account", account["Id"], {"Name": "Renamed by the probe test"})
    emu.org.clock.advance(60)

    plan, snap = _incremental(app)

    delta = _delta_objects(app, plan.run_id)
    assert len(delta) > 10
    # Account is read; ContentDocumentLink is always read in full (through ContentDocument's Ids);
    # every other object costs no query of its own
    assert requests.queried_objects() == {"Account", "ContentDocument", "ContentDocumentLink"}
    assert set(plan.unchanged) == delta - {"Account"}
    assert "Account" in plan.objects and not set(plan.unchanged) & set(plan.objects)
    # describes ride 25 to a Composite call, COUNT()s and probes 5 (Salesforce's query limit): far
    # fewer calls than queries
    planned = len(app.catalog.list_checkpoints(ORG, plan.run_id))
    composites = -(-planned // 25) + -(-2 * len(delta) // 5)
    assert requests.composite_calls() <= composites
    assert len(requests.log) <= composites + 8, requests.log
    for cp in app.catalog.list_checkpoints(ORG, plan.run_id):
        if cp.object_name in plan.unchanged:
            assert cp.state is ObjectState.DONE
            assert not app.catalog.list_chunks(ORG, plan.run_id, cp.object_name)
    assert_identical(app, emu)

    # the carried-over edge keeps working: a quiet run reads nothing, a later change is captured
    emu.org.clock.advance(900)
    requests.log.clear()
    quiet, _ = _incremental(app)
    assert set(quiet.unchanged) == _delta_objects(app, quiet.run_id)
    assert requests.queried_objects() == {"ContentDocument", "ContentDocumentLink"}
    product = _a_record(emu, "Product2")
    emu.org.update("Product2", product["Id"], {"Name": "Changed two runs later"})
    emu.org.clock.advance(60)
    later, _ = _incremental(app)
    assert "Product2" in later.objects and "Product2" not in later.unchanged
    assert_identical(app, emu)


def test_a_record_committed_late_inside_the_overlap_window_is_captured(world):
    app, emu, _ = world
    parent = app.catalog.head_snapshot(ORG)
    assert parent is not None
    watermark = next(
        c.watermark
        for c in app.catalog.list_checkpoints(ORG, parent.snapshot_id)
        if c.object_name == "Account"
    )
    assert watermark
    # A transaction that began before the parent's read and committed after it: its SystemModstamp
    # is older than the parent's watermark (inside the overlap window), yet the parent never saw it.
    from orgvault.domain.records import parse_datetime

    now = emu.org.clock.now()
    emu.org.clock.set(parse_datetime(watermark) - timedelta(seconds=60))
    late = _a_record(emu, "Account")
    emu.org.update("Account", late["Id"], {"Name": "Committed late"})
    emu.org.clock.set(now)

    plan, _ = _incremental(app)

    assert "Account" in plan.objects and "Account" not in plan.unchanged
    assert "Contact" in plan.unchanged  # the probe still skips what really did not change
    assert_identical(app, emu)


def test_a_delete_on_an_otherwise_unchanged_object_is_captured(world):
    app, emu, _ = world
    doc = _a_record(emu, "Document")
    emu.org.delete("Document", doc["Id"])
    emu.org.clock.advance(60)

    plan, snap = _incremental(app)

    assert "Document" in plan.objects and "Document" not in plan.unchanged
    kinds = {c.kind for c in app.catalog.list_chunks(ORG, plan.run_id, "Document")}
    assert ChunkKind.TOMBSTONES in kinds
    assert_identical(app, emu)


def test_a_purge_on_an_otherwise_unchanged_object_is_captured(world):
    app, emu, _ = world
    before = app.catalog.head_snapshot(ORG)
    lead = _a_record(emu, "Lead")
    emu.org.purge(lead["Id"])  # gone without a trace: no row for any SystemModstamp query
    emu.org.clock.advance(60)

    plan, snap = _incremental(app)

    assert "Lead" in plan.objects and "Lead" not in plan.unchanged
    kinds = {c.kind for c in app.catalog.list_chunks(ORG, plan.run_id, "Lead")}
    assert ChunkKind.IDS in kinds, "the count moved: the object is reconciled"
    assert snap.records == before.records - 1
    assert_identical(app, emu)


def test_the_local_run_still_reports_every_object_including_the_unchanged_ones(world):
    app, emu, requests = world
    seen: list[Any] = []

    result = app.backup_service().run_backup(ORG, progress=seen.append)

    done = {p.object_name: p for p in seen if p.done}
    assert set(done) == {
        c.object_name for c in app.catalog.list_checkpoints(ORG, result.snapshot.snapshot_id)
    }
    assert done["Contact"].records == 0 and done["Contact"].api_calls == 0
    # only ContentDocumentLink (always read in full) was read; the snapshot holds what its parent held
    assert result.records_read == done["ContentDocumentLink"].records
    parent = app.catalog.get_snapshot(ORG, result.snapshot.parent_id)
    assert result.snapshot.records == parent.records
    assert requests.queried_objects() == {"ContentDocument", "ContentDocumentLink"}


def test_a_resumed_incremental_keeps_the_objects_finished_at_plan_time(world):
    from orgvault.domain.models import RunStatus

    app, emu, requests = world
    account = _a_record(emu, "Account")
    emu.org.update("Account", account["Id"], {"Name": "Changed before a crash"})
    emu.org.clock.advance(60)
    first = app.backup_service().start_run(ORG)
    assert "Account" in first.objects and "Contact" in first.unchanged
    app.backup_service().stop_run(ORG, first.run_id, status=RunStatus.FAILED, message="killed")
    requests.log.clear()

    resumed = app.backup_service().start_run(ORG)

    assert resumed.resumed and resumed.run_id == first.run_id
    assert set(resumed.objects) == set(first.objects) and set(resumed.unchanged) == set(first.unchanged)
    assert requests.composite_calls() == 0, "a resume neither describes nor probes again"
    service = app.backup_service()
    for obj in resumed.objects:
        while service.extract_step(ORG, resumed.run_id, obj).status.value != "done":
            pass
    service.finalize_run(ORG, resumed.run_id)
    assert app.catalog.head_snapshot(ORG).snapshot_id == first.run_id
    assert_identical(app, emu)


def _delta_queries(requests: Requests) -> list[str]:
    """Delta reads sent on their own (not inside a Composite call)."""
    return [q for _, _, q in requests.log if "SystemModstamp >=" in q]


def test_a_local_incremental_takes_whole_deltas_from_the_batched_first_pages(world):
    app, emu, requests = world
    account = _a_record(emu, "Account")
    emu.org.update("Account", account["Id"], {"Name": "Changed; read at plan time"})
    emu.org.create("Contact", {"LastName": "Created; read at plan time"})
    doc = _a_record(emu, "Document")
    emu.org.delete("Document", doc["Id"])
    lead = _a_record(emu, "Lead")
    emu.org.purge(lead["Id"])  # the count moves: Lead is reconciled after its (given) delta
    emu.org.clock.advance(60)

    result = app.backup_service().run_backup(ORG)

    run_id = result.snapshot.snapshot_id
    assert _delta_queries(requests) == [], "every delta came whole in the Composite calls' pages"
    chunks = {o: {c.kind for c in app.catalog.list_chunks(ORG, run_id, o)} for o in ("Account", "Contact")}
    assert chunks == {"Account": {ChunkKind.DELTA}, "Contact": {ChunkKind.DELTA}}
    assert ChunkKind.TOMBSTONES in {c.kind for c in app.catalog.list_chunks(ORG, run_id, "Document")}
    assert ChunkKind.IDS in {c.kind for c in app.catalog.list_chunks(ORG, run_id, "Lead")}
    assert result.records_read >= 2  # the updated Account and the new Contact
    assert not app.backup_service()._first_pages
    assert_identical(app, emu)

    # the edges the given pages left behind let the next quiet run skip every delta object
    emu.org.clock.advance(900)
    requests.log.clear()
    quiet = app.backup_service().run_backup(ORG)
    cps = app.catalog.list_checkpoints(ORG, quiet.snapshot.snapshot_id)
    assert {c.object_name for c in cps if c.cursor.get("probe") == "unchanged"} == {
        c.object_name for c in cps if c.cursor.get("mode") == "delta"
    }
    assert _delta_queries(requests) == []
    assert_identical(app, emu)


def test_a_long_delta_goes_on_from_the_batched_first_page(world):
    """A delta longer than a page: its first page comes from the Composite call, the rest through
    that page's continuation (query more); page one is never read a second time."""
    app, emu, requests = world
    for i in range(450):  # three pages of 200
        emu.org.create("Contact", {"LastName": f"Long delta {i}"})
    emu.org.clock.advance(60)

    result = app.backup_service().run_backup(ORG)

    assert _delta_queries(requests) == [], "page one came from the Composite call"
    more = [p for m, p, q in requests.log if m == "GET" and re.search(r"/query(All)?/[^/]+$", p)]
    assert len(more) == 2, requests.log
    assert result.records_read >= 450
    assert_identical(app, emu)


def test_first_pages_are_read_for_a_bounded_number_of_objects(world, monkeypatch):
    """Planning holds at most FIRST_PAGES_MAX first pages: the other changed objects are read by
    their own delta query, and nothing is missed."""
    from orgvault.services import backup as backup_module

    monkeypatch.setattr(backup_module, "FIRST_PAGES_MAX", 1)
    app, emu, requests = world
    emu.org.update("Account", _a_record(emu, "Account")["Id"], {"Name": "Beyond the first-page cap"})
    emu.org.update("Contact", _a_record(emu, "Contact")["Id"], {"LastName": "Beyond the cap too"})
    emu.org.clock.advance(60)

    app.backup_service().run_backup(ORG)

    assert len(_delta_queries(requests)) >= 1, "objects past the cap are read as usual"
    assert_identical(app, emu)


def test_a_first_page_for_another_read_is_not_used(world):
    """The hand-over is guarded: a page read with another cursor (another query) is ignored and the
    object is read as usual, so a stale or misrouted page can never stand in for the delta."""
    from orgvault.services.backup import FirstPage

    app, emu, requests = world
    account = _a_record(emu, "Account")
    emu.org.update("Account", account["Id"], {"Name": "Read by the extract itself"})
    emu.org.clock.advance(60)
    service = app.backup_service()
    plan = service.start_run(ORG, first_pages=True)
    page = service.take_first_page(ORG, plan.run_id, "Account")
    assert page is not None and any(r["Id"] == account["Id"] for r in page.records)
    assert service.take_first_page(ORG, plan.run_id, "Account") is None, "taken once"
    other = FirstPage(cursor={**page.cursor, "soql": page.cursor["soql"] + " "}, records=[])
    requests.log.clear()
    for obj in plan.objects:
        first = other if obj == "Account" else service.take_first_page(ORG, plan.run_id, obj)
        while service.extract_step(ORG, plan.run_id, obj, first_page=first).status.value != "done":
            first = None
    service.finalize_run(ORG, plan.run_id)
    assert_identical(app, emu)  # the update is in the snapshot: not lost to the empty page
    assert [q for q in _delta_queries(requests) if "FROM Account " in q], "Account was read as usual"
