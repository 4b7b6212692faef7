"""Every injected fault, as a client sees it."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from salesforce_emulator.faults import FaultRule, Faults
from salesforce_emulator.limits import LongRunningGate
from salesforce_emulator.server import EmulatorServer

from .conftest import PAGE_SOQL, api, auth


def test_random_503s_follow_the_rate_and_the_seed(emu, session):
    def run() -> list[int]:
        emu.faults.update(error_rate=0.3, seed=42)
        return [session.get(f"{api(emu)}/limits", headers=auth(emu)).status_code for _ in range(60)]

    first, second = run(), run()
    assert first == second  # seeded: the same sequence again
    emu.faults.seed = 42  # setting the attribute restarts the sequence too
    assert [session.get(f"{api(emu)}/limits", headers=auth(emu)).status_code for _ in range(60)] == first
    assert set(first) == {200, 503} and 5 <= first.count(503) <= 35
    resp = next(
        r
        for r in (session.get(f"{api(emu)}/limits", headers=auth(emu)) for _ in range(200))
        if r.status_code == 503
    )
    assert resp.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"


def test_daily_allowance_runs_out_with_403(emu, sf):
    emu.usage.reset(total=emu.usage.used + 3)
    for _ in range(3):
        sf.query("SELECT COUNT() FROM Account")
    with pytest.raises(SalesforceRefusedRequest) as exc:
        sf.query("SELECT COUNT() FROM Account")
    assert exc.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    resp = sf.session.get(f"{api(emu)}/limits", headers={"Authorization": f"Bearer {sf.session_id}"})
    assert resp.headers["Sforce-Limit-Info"] == f"api-usage={emu.usage.total}/{emu.usage.total}"


def test_forced_limit_exceeded(emu, sf):
    emu.faults.limit_exceeded = True
    with pytest.raises(SalesforceRefusedRequest):
        sf.limits()


def test_query_timeout_for_unfiltered_large_queries(emu, sf):
    emu.faults.query_timeout_rows = 10
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id FROM Account")
    assert exc.value.content[0]["errorCode"] == "QUERY_TIMEOUT"
    assert sf.query("SELECT Id FROM Account WHERE Name = 'x'")["done"]  # filtered: fine
    resp = sf.session.post(
        f"{api(emu)}/jobs/query",
        json={"operation": "query", "query": "SELECT Id FROM Account"},
        headers={"Authorization": f"Bearer {sf.session_id}"},
    )
    assert resp.status_code == 400 and resp.json()[0]["errorCode"] == "QUERY_TIMEOUT"


def test_forced_invalid_query_locator(emu, sf, paging_leads):
    first = sf.query(PAGE_SOQL)
    assert not first["done"]
    emu.faults.invalid_locator = True
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert exc.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    emu.faults.invalid_locator = False
    assert sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)["records"]


def test_latency(emu, session):
    emu.faults.latency_seconds = 0.3
    started = time.monotonic()
    assert session.get(f"{api(emu)}/limits", headers=auth(emu)).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_connection_dropped_mid_body(emu, session):
    emu.faults.drop_after_bytes = 20
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # what clients see: IncompleteRead
        session.get(f"{api(emu)}/sobjects", headers=auth(emu))
    emu.faults.drop_after_bytes = None
    assert session.get(f"{api(emu)}/sobjects", headers=auth(emu)).status_code == 200


def test_streamed_bulk_results_dropped_mid_body(emu, session):
    job = session.post(
        f"{api(emu)}/jobs/query",
        json={"operation": "query", "query": "SELECT Id FROM Account"},
        headers=auth(emu),
    ).json()
    session.get(f"{api(emu)}/jobs/query/{job['id']}", headers=auth(emu))
    emu.faults.add_rule(pattern=r"/results$", action="drop", drop_after_bytes=100)
    with pytest.raises(requests.exceptions.RequestException):
        session.get(
            f"{api(emu)}/jobs/query/{job['id']}/results", headers={**auth(emu), "Accept-Encoding": "identity"}
        )
    ok = session.get(f"{api(emu)}/jobs/query/{job['id']}/results", headers=auth(emu))
    assert ok.status_code == 200  # the rule was used up


def test_rules_fail_the_next_n_matching_requests(emu, sf):
    emu.faults.add_rule(
        FaultRule(pattern=r"/query/?$", count=2, status=500, error_code="UNKNOWN_EXCEPTION", message="boom")
    )
    for _ in range(2):
        with pytest.raises(SalesforceGeneralError) as exc:
            sf.query("SELECT COUNT() FROM Account")
        assert exc.value.status == 500
    assert sf.query("SELECT COUNT() FROM Account")["done"]
    assert sf.limits()  # other paths never matched


def test_rule_with_method_and_delay(emu, session):
    emu.faults.add_rule(pattern=r"/limits", method="POST", count=-1)
    assert session.get(f"{api(emu)}/limits", headers=auth(emu)).status_code == 200
    emu.faults.clear()
    emu.faults.add_rule(pattern=r"/limits", action="delay", delay_seconds=0.2)
    started = time.monotonic()
    assert session.get(f"{api(emu)}/limits", headers=auth(emu)).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_faults_set_at_start(shared_org):
    with EmulatorServer.start(shared_org, faults=Faults(limit_exceeded=True)) as emu:
        resp = requests.get(f"{api(emu)}/limits", headers=auth(emu), timeout=10)
        assert resp.status_code == 403


def test_faults_through_the_admin_api(emu, session):
    admin = emu.facts.admin_url
    resp = session.post(f"{admin}/faults", json={"error_rate": 1.0}, headers=auth(emu))
    assert resp.status_code == 200 and resp.json()["error_rate"] == 1.0
    assert session.get(f"{api(emu)}/limits", headers=auth(emu)).status_code == 503
    session.delete(f"{admin}/faults", headers=auth(emu))
    assert session.get(f"{api(emu)}/limits", headers=auth(emu)).status_code == 200
    session.post(
        f"{admin}/faults/rules",
        json={
            "pattern": "/limits",
            "count": 1,
            "status": 401,
            "error_code": "INVALID_SESSION_ID",
            "message": "expired",
        },
        headers=auth(emu),
    )
    assert session.get(f"{api(emu)}/limits", headers=auth(emu)).status_code == 401
    assert session.get(f"{api(emu)}/limits", headers=auth(emu)).status_code == 200
    bad = session.post(f"{admin}/faults", json={"no_such_knob": 1}, headers=auth(emu))
    assert bad.status_code == 400


def test_long_running_gate_counts_only_requests_past_the_threshold():
    now = [0.0]
    gate = LongRunningGate(cap=2, threshold_seconds=20, clock=lambda: now[0])
    a, b = gate.enter(), gate.enter()
    now[0] = 5.0
    c = gate.enter()  # three in flight, none long-running yet: admitted
    assert None not in (a, b, c) and gate.in_flight() == 3
    now[0] = 21.0  # a and b have run 21 s: the cap of 2 long-running requests is reached
    assert gate.long_running() == 2 and gate.enter() is None
    gate.leave(a)
    d = gate.enter()
    assert d is not None
    assert LongRunningGate(cap=None, threshold_seconds=0).enter() is not None
    defaults = LongRunningGate()
    assert (defaults.cap, defaults.threshold_seconds) == (25, 20.0)


def test_concurrent_long_running_requests_are_capped(shared_org):
    with EmulatorServer.start(shared_org, max_long_running=2, long_running_seconds=0.2) as emu:
        url = f"{api(emu)}/limits"
        emu.faults.latency_seconds = 3.0
        results: list[int] = []

        def slow() -> None:
            results.append(requests.get(url, headers=auth(emu), timeout=30).status_code)

        threads = [threading.Thread(target=slow) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while emu.gate.in_flight() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # both have now been in flight longer than the threshold
        emu.faults.latency_seconds = 0.0
        refused = requests.get(url, headers=auth(emu), timeout=30)
        assert refused.status_code == 403
        assert refused.json()[0]["message"] == "ConcurrentPerOrgLongTxn Limit exceeded."
        assert refused.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
        assert "Sforce-Limit-Info" in refused.headers
        for t in threads:
            t.join()
        assert results == [200, 200]
        # released once the replies were sent (the server thread leaves the gate just after the
        # client has the last byte, so give it a moment rather than racing it)
        deadline = time.monotonic() + 5
        while emu.gate.in_flight() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert emu.gate.in_flight() == 0
        assert requests.get(url, headers=auth(emu), timeout=30).status_code == 200


def test_a_composite_rule_fails_just_the_matching_sub_request(emu, sf):
    """A rule with ``composite`` set fails a matching Composite sub-request with its error (the
    others answer normally); a rule without it leaves sub-requests alone."""
    subs = [
        {"method": "GET", "url": f"/services/data/v59.0/sobjects/{name}/describe", "referenceId": name}
        for name in ("Account", "Contact", "Lead")
    ]

    def statuses() -> list[tuple[int, str]]:
        out = sf.restful("composite", method="POST", json={"compositeRequest": subs})["compositeResponse"]
        return [
            (r["httpStatusCode"], r["body"][0]["errorCode"] if r["httpStatusCode"] >= 400 else "")
            for r in out
        ]

    emu.faults.rules.append(FaultRule(pattern=r"/sobjects/Contact/describe$", count=1, status=404))
    assert statuses() == [(200, ""), (200, ""), (200, "")]  # not a composite rule
    emu.faults.rules.clear()
    emu.faults.rules.append(
        FaultRule(
            pattern=r"/sobjects/Contact/describe$",
            count=1,
            status=404,
            error_code="NOT_FOUND",
            composite=True,
        )
    )
    assert statuses() == [(200, ""), (404, "NOT_FOUND"), (200, "")]
    assert statuses() == [(200, ""), (200, ""), (200, "")]  # its one use is spent
