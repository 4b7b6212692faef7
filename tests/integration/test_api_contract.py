"""The API against its OpenAPI document: the committed document is the generated one; schemathesis
finds no 5xx and no response breaking the schema; oversized and malformed requests get clear 4xx
answers and change nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from orgvault.api.openapi import render
from tests.integration.test_api_support import TOKENS, build_world, stop_world
from tests.integration.test_backup_support import ORG

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = build_world(tmp_path_factory.mktemp("api-contract"))
    yield w
    stop_world(w)


def test_committed_openapi_document_is_the_generated_one():
    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert committed == render(), (
        "docs/openapi.json is stale: run `python -m orgvault.api.openapi > docs/openapi.json`"
    )
    doc = json.loads(committed)
    assert doc["openapi"].startswith("3.1")
    assert len([op for p in doc["paths"].values() for op in p]) >= 17
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert {"401", "403"} <= set(op["responses"]), f"{path} documents no 401/403"


def _state(w):
    """What a refused request must not change: runs, snapshots, restore jobs, vault files."""
    app = w.app
    files = sorted(p.name for p in (app.settings.vault_dir).rglob("*") if p.is_file())
    return (
        len(app.catalog.list_runs(ORG)),
        len(app.catalog.list_snapshots(ORG)),
        len(w.call("global", "GET", f"/v1/orgs/{ORG}/restores").json()["items"]),
        files,
    )


def test_oversized_and_malformed_requests_get_clear_4xx_and_change_nothing(world):
    w = world
    w.runner.wait(120)
    before = _state(w)
    big = b'{"object": "Account", "ids": ["' + b"x" * (1024 * 1024 + 10) + b'"]}'
    r = w.call(
        "operator", "POST", f"/v1/orgs/{ORG}/restores", data=big, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413 and "limit" in r.json()["message"]

    cases = [
        ("POST", f"/v1/orgs/{ORG}/restores", "{not json", 422, "json"),
        ("POST", f"/v1/orgs/{ORG}/restores", json.dumps({"object": "Account", "mode": "wipe"}), 422, "mode"),
        (
            "POST",
            f"/v1/orgs/{ORG}/restores",
            json.dumps({"object": "Account", "surprise": 1}),
            422,
            "surprise",
        ),
        ("POST", f"/v1/orgs/{ORG}/restores", json.dumps([1, 2]), 422, "body"),
        ("POST", f"/v1/orgs/{ORG}/restores", json.dumps({"object": "Account; drop"}), 422, "object"),
        (
            "POST",
            f"/v1/orgs/{ORG}/restores",
            json.dumps({"object": "Account", "mode": "upsert"}),
            400,
            "external_id_field",
        ),
        (
            "POST",
            f"/v1/orgs/{ORG}/restores",
            json.dumps({"object": "Account", "snapshot_id": "nope-1"}),
            404,
            "nope-1",
        ),
        ("POST", f"/v1/orgs/{ORG}/runs", json.dumps({"full": "yes please"}), 422, "full"),
        ("POST", f"/v1/orgs/{ORG}/verify", json.dumps({"snapshot_id": "../../etc"}), 422, "snapshot_id"),
        ("GET", f"/v1/orgs/{ORG}/runs?limit=100000", None, 422, "limit"),
        ("GET", f"/v1/orgs/{ORG}/runs?next_token=%%%garbage", None, 400, "next_token"),
        ("GET", f"/v1/orgs/{ORG}/objects/Account/records?where=Name%20%3D%3D%3D%20x", None, 400, ""),
        ("GET", f"/v1/orgs/{ORG}/objects/NoSuchThing/records", None, 404, "NoSuchThing"),
        ("GET", f"/v1/orgs/{ORG}/diff?older=x", None, 422, "newer"),
        ("GET", f"/v1/orgs/{ORG}/restores/r19990101T000000-abcdef", None, 404, "r19990101T000000-abcdef"),
        ("POST", f"/v1/orgs/{ORG}/restores/r19990101T000000-abcdef/approve", None, 404, ""),
        ("DELETE", f"/v1/orgs/{ORG}", None, 404, "route"),
    ]
    for method, path, body, status, needle in cases:
        r = w.call("admin", method, path, data=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status, f"{method} {path} {body!r}: {r.status_code} {r.text[:300]}"
        out = r.json()
        assert out["status"] == status and out["error"] and out["message"]
        assert needle.lower() in r.text.lower(), (needle, r.text[:300])
        assert "Traceback" not in r.text and 'File "' not in r.text
        assert TOKENS["admin"] not in r.text
    assert _state(w) == before, "a refused request changed something"


def test_raw_socket_lies_about_length_and_chunked_are_refused(world):
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(world.url)
    for head in (
        b"Content-Length: 99999999\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Content-Length: -5\r\n",
    ):
        with socket.create_connection((u.hostname, u.port), timeout=10) as s:
            s.sendall(
                b"POST /v1/orgs/acme/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + TOKENS["admin"].encode()
                + b"\r\n"
                + head
                + b"\r\n"
            )
            reply = s.recv(4096).decode()
        status = int(reply.split(" ", 2)[1])
        assert 400 <= status < 500, reply[:200]


def test_schemathesis_finds_no_server_errors_and_no_schema_violations(world, tmp_path):
    w = world
    w.runner.wait(120)
    # Point the path/query parameters at real data, so the fuzzing reaches the services, not only 404s.
    r = w.call(
        "global",
        "POST",
        f"/v1/orgs/{ORG}/restores",
        json={
            "object": "Account",
            "mode": "revert-fields",
            "ids": [w.account_id],
            "snapshot_id": w.snapshots[0],
        },
    )
    assert r.status_code == 201, r.text
    params = {
        "path.org": ORG,
        "path.snapshot_id": w.snapshots[1],
        "path.run_id": w.snapshots[0],
        "path.object_name": "Account",
        "path.record_id": w.account_id,
        "path.restore_id": r.json()["restore_id"],
        "query.older": w.snapshots[0],
        "query.newer": w.snapshots[1],
    }
    config = tmp_path / "schemathesis.toml"
    config.write_text("[parameters]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in params.items()))
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        str(ROOT / "docs" / "openapi.json"),
        "--url",
        w.url,
        "-H",
        f"Authorization: Bearer {TOKENS['global']}",
        "--checks",
        "not_a_server_error,response_schema_conformance,status_code_conformance,"
        "content_type_conformance,ignored_auth",
        "--max-examples",
        "4",
        "--seed",
        "1",
        "--workers",
        "1",
        "--phases",
        "examples,fuzzing",
        "--request-timeout",
        "30",
        "--max-time",
        "45",
        "--no-shrink",
    ]
    env = {**os.environ, "NO_COLOR": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert re.search(r"Tested:\s+18\b", out), out[-2500:]  # every operation was exercised


def test_requests_go_to_127_0_0_1_only(world):
    assert world.url.startswith("http://127.0.0.1:")
    assert requests.get(world.url + "/v1/orgs", timeout=10).status_code == 401
