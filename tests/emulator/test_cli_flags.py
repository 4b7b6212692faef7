"""``serve`` flags: every ServerOptions field has one, and they reach the running server."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from salesforce_emulator.__main__ import _parser, _server_options
from salesforce_emulator.server import ServerOptions

ROOT = Path(__file__).resolve().parents[2]


def test_every_server_option_has_a_flag():
    options = _server_options(_parser().parse_args(["serve"]))
    # jwt_public_key is a shortcut for credentials.jwt_public_key (--jwt-cert)
    missing = {f.name for f in dataclasses.fields(ServerOptions)} - set(options) - {"jwt_public_key"}
    assert missing == set()
    ServerOptions(**options)  # and the defaults are accepted as they are
    assert options["long_text_fields"] == ServerOptions().long_text_fields
    assert options["max_long_running"] == ServerOptions().max_long_running
    assert options["max_content_version_bytes"] == ServerOptions().max_content_version_bytes


def test_flags_set_the_options(tmp_path):
    (tmp_path / "creds.json").write_text(json.dumps({"username": "ops@example.org", "client_secret": "s3"}))
    (tmp_path / "token").write_text("00Dtoken!abc\n")
    args = _parser().parse_args(
        [
            "serve",
            "--default-batch-size", "500",
            "--long-text-fields", "0",
            "--long-text-batch-size", "100",
            "--max-long-running", "3",
            "--long-running-seconds", "1.5",
            "--max-content-version-bytes", "1000",
            "--max-blob-bytes", "900",
            "--max-json-body-bytes", "800",
            "--max-base64-chars", "700",
            "--credentials-file", str(tmp_path / "creds.json"),
            "--access-token-file", str(tmp_path / "token"),
            "--admin-token-file", str(tmp_path / "token"),
        ]
    )  # fmt: skip
    o = _server_options(args)
    assert (o["default_batch_size"], o["long_text_fields"], o["long_text_batch_size"]) == (500, None, 100)
    assert (o["max_long_running"], o["long_running_seconds"]) == (3, 1.5)
    assert (o["max_content_version_bytes"], o["max_blob_bytes"]) == (1000, 900)
    assert (o["max_json_body_bytes"], o["max_base64_chars"]) == (800, 700)
    assert o["credentials"].username == "ops@example.org" and o["credentials"].client_secret == "s3"
    assert o["access_token"] == o["admin_token"] == "00Dtoken!abc"
    assert (
        _server_options(_parser().parse_args(["serve", "--max-long-running", "0"]))["max_long_running"]
        is None
    )


def test_serve_applies_the_flags(tmp_path):
    (tmp_path / "token").write_text("00Dflagtoken!xyz")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "salesforce_emulator", "serve", "--scale", "100",
            "--access-token-file", str(tmp_path / "token"),
            "--max-json-body-bytes", "300",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        facts = json.loads(proc.stdout.readline())
        assert facts["access_token"] == "00Dflagtoken!xyz"
        headers = {"Authorization": "Bearer 00Dflagtoken!xyz"}
        url = f"{facts['instance_url']}/services/data/v59.0/sobjects/Account"
        small = requests.post(url, json={"Name": "fits"}, headers=headers, timeout=10)
        assert small.status_code == 201, small.text
        big = requests.post(url, json={"Name": "x", "Description": "d" * 400}, headers=headers, timeout=10)
        assert big.status_code == 400 and big.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "00Dflagtoken" not in err
