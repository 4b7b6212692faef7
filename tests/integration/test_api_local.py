"""``orgvault serve`` and local users: the admin token is printed once and stored hashed; users-file
passwords (scrypt) over HTTP Basic; errors from the services map to HTTP statuses without stack traces."""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from orgvault import errors as e
from orgvault.api.errors import STATUS_TABLE, Forbidden, Unauthenticated, status_for
from orgvault.api.local_server import LocalUsers, hash_password, serve, token_hash
from orgvault.cli_api import build_local_api
from orgvault.services.restore import RestoreRefused
from tests.integration.test_api_support import build_world, stop_world
from tests.integration.test_backup_support import ORG, make_app


def _start_serve(home: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "ORGVAULT_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orgvault.cli", "serve", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stderr.readline()
    assert "orgvault API on http://127.0.0.1:" in line, line
    url = line.split(" on ", 1)[1].split("/v1", 1)[0]
    return proc, url


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_serve_prints_the_admin_token_once_and_stores_only_its_hash(tmp_path):
    home = tmp_path / "home"
    subprocess.run(
        [sys.executable, "-m", "orgvault.cli", "--home", str(home), "init"], check=True, capture_output=True
    )
    proc, url = _start_serve(home)
    try:
        assert proc.stderr.readline().startswith("admin token")
        token = proc.stdout.readline().strip()
        assert len(token) >= 40
        assert requests.get(url + "/v1/orgs", timeout=10).status_code == 401
        r = requests.get(url + "/v1/orgs", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200 and r.json() == {"items": [], "next_token": None}
    finally:
        _stop(proc)
    stored = home / "api" / "admin-token.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    text = stored.read_text()
    assert token not in text and json.loads(text)["token_sha256"] == token_hash(token)

    proc, url = _start_serve(home)
    try:
        r = requests.get(url + "/v1/orgs", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200, "the same token works after a restart"
    finally:
        out = _stop(proc)
    assert token not in out, "the token is printed only at the first start"


def test_users_file_basic_auth_with_scrypt_hashes(tmp_path):
    app = make_app(tmp_path / "home")
    users_file = tmp_path / "users.json"
    users_file.write_text(
        json.dumps(
            {
                "users": [
                    {
                        "username": "vera",
                        "password_hash": hash_password("correct horse battery"),
                        "groups": ["org:acme:viewer"],
                    },
                ]
            }
        )
    )
    users, token = LocalUsers.load(tmp_path / "home", users_file, create_admin=False)
    assert token is None and "correct horse" not in users_file.read_text()
    server = serve(build_local_api(app), users, "127.0.0.1", 0)
    try:

        def get(user: str, password: str) -> requests.Response:
            cred = base64.b64encode(f"{user}:{password}".encode()).decode()
            return requests.get(
                server.url + "/v1/orgs/acme", headers={"Authorization": f"Basic {cred}"}, timeout=10
            )

        assert get("vera", "wrong").status_code == 401
        assert get("nobody", "correct horse battery").status_code == 401
        r = get("vera", "correct horse battery")
        assert r.status_code == 404 and "acme" in r.json()["message"]  # signed in, allowed, but no such org
        assert get("vera", "correct horse battery").status_code == 404  # cached check, same answer
        r = requests.get(
            server.url + "/v1/orgs/globex",
            timeout=10,
            headers={"Authorization": "Basic " + base64.b64encode(b"vera:correct horse battery").decode()},
        )
        assert r.status_code == 403
    finally:
        server.shutdown()
        server.server_close()
        app.close()


def test_status_table_maps_the_error_tree():
    assert status_for(Unauthenticated("x")) == 401
    assert status_for(Forbidden("x")) == 403
    assert status_for(e.UnknownOrg("x")) == 404
    assert status_for(e.SnapshotNotFound("x")) == 404
    assert status_for(e.RunInProgress("x")) == 409
    assert status_for(RestoreRefused("x")) == 422
    assert status_for(e.ConfigError("x")) == 400
    assert status_for(e.ApiBudgetExhausted("x")) == 429
    assert status_for(e.SalesforceUnavailable("x")) == 503
    assert status_for(e.CatalogUnavailable("x")) == 503
    assert status_for(e.IntegrityError("x")) == 500
    assert status_for(ValueError("x")) == 500
    # every class in the table is an OrgVaultError, and every leaf of the tree maps somewhere specific
    assert all(issubclass(c, e.OrgVaultError) for c, _ in STATUS_TABLE)


@pytest.fixture
def damaged_world(tmp_path):
    w = build_world(tmp_path, scale=60)
    yield w
    stop_world(w)


def test_a_damaged_vault_is_a_500_with_a_reference_and_no_stack_trace(damaged_world):
    w = damaged_world
    r = w.call(
        "viewer", "GET", f"/v1/orgs/{ORG}/objects/Account/records?snapshot_id={w.snapshots[0]}&limit=1"
    )
    assert r.status_code == 200
    chunks = [c for c in w.app.catalog.list_chunks(ORG, w.snapshots[0], "Account")]
    path = w.app.settings.vault_dir / chunks[0].key
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    os.chmod(path, 0o600)
    path.write_bytes(bytes(data))
    r = w.call("viewer", "GET", f"/v1/orgs/{ORG}/objects/Account/records?snapshot_id={w.snapshots[0]}")
    assert r.status_code == 500, r.text
    body = r.json()
    assert body["error"] in {"IntegrityError", "EnvelopeError"} and "reference" in body["message"]
    assert "failed authentication" in body["message"], "the message says what is wrong"
    assert "Traceback" not in r.text and 'File "' not in r.text
    audit = w.audits()[-1]
    assert (
        audit["action"] == "records.browse"
        and audit["outcome"] == "error"
        and audit["error"] == body["error"]
    )
