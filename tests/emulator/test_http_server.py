"""Server lifecycle, the CLI's ready line, TLS, the versions list, headers and generic error paths."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from simple_salesforce import Salesforce

from salesforce_emulator.client_session import emulator_session
from salesforce_emulator.server import EmulatorServer

from .conftest import api, auth, conn_threads

FACT_KEYS = {
    "instance_url",
    "login_url",
    "access_token",
    "refresh_token",
    "username",
    "password",
    "client_id",
    "client_secret",
    "org_id",
    "admin_url",
}
ROOT = Path(__file__).resolve().parents[2]


def test_facts_have_the_agreed_keys_and_hide_secrets_in_repr(emu):
    facts = emu.facts.as_dict()
    assert set(facts) == FACT_KEYS
    assert facts["org_id"] == emu.org.org_id
    assert facts["admin_url"] == facts["instance_url"] + "/__emulator"
    assert emu.facts.password not in repr(emu.facts)
    assert emu.facts.access_token not in repr(emu.facts)


def test_versions_list_needs_no_auth_and_has_no_limit_header(emu):
    for path in ("/services/data", "/services/data/"):
        resp = requests.get(emu.facts.instance_url + path, timeout=10)
        assert resp.status_code == 200
        assert "Sforce-Limit-Info" not in resp.headers
        versions = [v["version"] for v in resp.json()]
        assert "59.0" in versions and all(v["url"] == f"/services/data/v{v['version']}" for v in resp.json())


def test_every_rest_response_carries_the_limit_header(emu, session):
    ok = session.get(f"{api(emu)}/sobjects", headers=auth(emu))
    missing = session.get(f"{api(emu)}/sobjects/NoSuchThing__c/describe", headers=auth(emu))
    assert ok.status_code == 200 and missing.status_code == 404
    used_ok = int(ok.headers["Sforce-Limit-Info"].split("=")[1].split("/")[0])
    used_missing = int(missing.headers["Sforce-Limit-Info"].split("=")[1].split("/")[0])
    assert used_missing == used_ok + 1
    assert ok.headers["Sforce-Limit-Info"].endswith("/100000")


def test_any_api_version_is_accepted(emu, session):
    for version in ("51.0", "59.0", "66.0"):
        assert session.get(f"{api(emu, version)}/sobjects", headers=auth(emu)).status_code == 200


def test_unknown_paths_and_methods(emu, session):
    resp = session.get(f"{emu.facts.instance_url}/nothing/here", headers=auth(emu))
    assert resp.status_code == 404 and resp.json()[0]["errorCode"] == "NOT_FOUND"
    resp = session.get(f"{api(emu)}/nonsense", headers=auth(emu))
    assert resp.status_code == 404 and resp.json()[0]["errorCode"] == "NOT_FOUND"
    resp = session.put(f"{api(emu)}/sobjects", headers=auth(emu))
    assert resp.status_code == 405 and resp.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"
    resp = session.post(
        f"{api(emu)}/sobjects/Account",
        headers={**auth(emu), "Content-Type": "application/json"},
        data=b"{not json",
    )
    assert resp.status_code == 400 and resp.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_keep_alive_reuses_one_connection(emu, session):
    for _ in range(5):
        assert session.get(f"{api(emu)}/limits", headers=auth(emu)).status_code == 200
    pool = next(iter(session.adapters["http://"].poolmanager.pools._container.values()))
    assert pool.num_connections == 1


def test_stop_closes_keep_alive_connections_and_joins_threads(shared_org):
    emu = EmulatorServer.start(shared_org)
    s = emulator_session(emu.facts)
    s2 = emulator_session(emu.facts)
    assert s.get(f"{api(emu)}/limits", headers=auth(emu)).status_code == 200
    assert s2.get(f"{api(emu)}/limits", headers=auth(emu)).status_code == 200
    port = emu.port
    assert conn_threads(port) == 3  # accept loop + two open keep-alive connections
    emu.stop()
    emu.stop()  # idempotent
    assert conn_threads(port) == 0
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_tls_with_generated_ca_and_simple_salesforce(shared_org):
    with EmulatorServer.start(shared_org, tls=True) as emu:
        facts = emu.facts.as_dict()
        assert facts["instance_url"].startswith("https://127.0.0.1:")
        assert set(facts) == FACT_KEYS | {"ca_cert"}
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        session.verify = facts["ca_cert"]
        session.mount("https://", emulator_session(emu.facts).adapters["https://"])
        sf = Salesforce(
            username=emu.facts.username, password=emu.facts.password, security_token="", session=session
        )
        assert sf.query("SELECT COUNT() FROM Account")["totalSize"] > 0
        pages = list(sf.bulk2.Account.query("SELECT Id FROM Account", wait=0))
        assert pages and pages[0].startswith('"Id"')
        # the packaged helper does the same in one call
        sf2 = Salesforce(
            username=emu.facts.username,
            password=emu.facts.password,
            security_token="",
            session=emulator_session(emu.facts),
        )
        assert sf2.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1
        # without the CA the certificate is not trusted
        plain = requests.Session()
        plain.trust_env = False
        with pytest.raises(requests.exceptions.SSLError):
            plain.get(f"{facts['instance_url']}/services/data/", timeout=10)


def test_cli_serve_prints_one_json_line_and_stops_on_sigterm(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "salesforce_emulator",
            "serve",
            "--port",
            "0",
            "--scale",
            "200",
            "--seed",
            "3",
            "--state",
            str(tmp_path / "state"),
            "--daily-limit",
            "50",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        facts = json.loads(line)
        assert set(facts) == FACT_KEYS
        resp = requests.get(
            f"{facts['instance_url']}/services/data/v59.0/limits",
            headers={"Authorization": f"Bearer {facts['access_token']}"},
            timeout=10,
        )
        assert resp.status_code == 200
        assert resp.json()["DailyApiRequests"] == {"Max": 50, "Remaining": 49}
        assert resp.headers["Sforce-Limit-Info"] == "api-usage=1/50"
        assert (tmp_path / "state" / "org.sqlite").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out == ""  # exactly one line was printed, nothing after it
    assert facts["password"] not in err and facts["access_token"] not in err


def test_start_with_a_fixed_port(shared_org):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with EmulatorServer.start(shared_org, port=port) as emu:
        assert emu.port == port
        assert requests.get(f"http://127.0.0.1:{port}/services/data/", timeout=10).status_code == 200
    time.sleep(0.05)


def test_cli_fault_flags_build_the_faults():
    from salesforce_emulator.__main__ import _faults, _parser

    args = _parser().parse_args(
        [
            "serve",
            "--session-max-requests",
            "3",
            "--session-ttl",
            "60",
            "--error-rate",
            "0.25",
            "--fault-seed",
            "9",
            "--limit-exceeded",
            "--query-timeout-rows",
            "100",
            "--invalid-locator",
            "--latency",
            "0.5",
            "--drop-after-bytes",
            "10",
            "--bulk-fail",
            "--fault-rule",
            '{"pattern": "/query", "count": 2, "status": 500, "error_code": "UNKNOWN_EXCEPTION"}',
        ]
    )
    faults = _faults(args)
    assert (faults.session_max_requests, faults.session_ttl_seconds, faults.error_rate, faults.seed) == (
        3,
        60,
        0.25,
        9,
    )
    assert faults.limit_exceeded and faults.invalid_locator and faults.bulk_fail
    assert (faults.query_timeout_rows, faults.latency_seconds, faults.drop_after_bytes) == (100, 0.5, 10)
    assert (
        faults.rules[0].pattern == "/query" and faults.rules[0].count == 2 and faults.rules[0].status == 500
    )


def test_concurrent_clients_are_served_in_parallel(emu):
    from concurrent.futures import ThreadPoolExecutor

    expected = emu.org.count(emu.org.compile("SELECT COUNT() FROM Contact"))
    emu.faults.latency_seconds = 0.5  # each call holds its thread: only parallel serving is fast

    def worker(_: int) -> int:
        s = emulator_session(emu.facts)
        body = s.get(
            f"{api(emu)}/query", params={"q": "SELECT COUNT() FROM Contact"}, headers=auth(emu)
        ).json()
        return body["totalSize"]

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    assert results == [expected] * 8
    assert time.monotonic() - started < 8 * 0.5
