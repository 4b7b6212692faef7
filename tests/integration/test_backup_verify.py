"""Tampering is caught by verify, one test per attack; each names the bad object and chunk.

A golden vault (org ``acme``: full + incremental; org ``beta``: full) is built once per module and
copied for every test, which then damages its copy the way an attacker or a failing disk would."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from orgvault.services.verify import verify_snapshot
from tests.integration.test_backup_support import ORG, change_org, connect, make_app

BETA = "beta"


@pytest.fixture(scope="module")
def golden(tmp_path_factory, jwt_private_key):
    from tests.conftest import _start

    emu = _start(jwt_private_key, scale=250, seed=21)
    home = tmp_path_factory.mktemp("golden")
    try:
        app = make_app(home, chunk_records=40)
        connect(app, emu)
        connect(app, emu, name=BETA)
        app.backup_service().run_backup(ORG)
        app.backup_service().run_backup(BETA)
        change_org(emu.org, seed=2)
        app.backup_service().run_backup(ORG)
        app.close()
    finally:
        emu.stop()
    return home


@pytest.fixture
def vault(golden, tmp_path):
    home = tmp_path / "copy"
    shutil.copytree(golden, home)
    app = make_app(home)
    yield home, app
    app.close()


def _writable(path: Path) -> Path:
    os.chmod(path, 0o644)
    return path


def _head_chunks(app, org=ORG):
    snap = app.catalog.head_snapshot(org)
    manifest = app.vault.read_snapshot_manifest(snap)
    return snap, manifest, manifest.chunk_refs()


def _object_with_two_chunks(refs):
    by_obj: dict[str, list] = {}
    for name, ref in refs:
        if ref.kind in ("records", "delta"):
            by_obj.setdefault(name, []).append(ref)
    name = next(n for n, rs in sorted(by_obj.items()) if len(rs) >= 2)
    return name, by_obj[name]


def _verify(app, org=ORG, snapshot_id=None):
    return verify_snapshot(app.catalog, app.vault, org, snapshot_id)


def test_intact_vault_verifies(vault):
    _, app = vault
    for org in (ORG, BETA):
        report = _verify(app, org)
        assert report.ok, report.problems
        assert report.contents.chunks > 0 and report.contents.files > 0
    assert _verify(app, ORG).chain_length == 2


def test_flipped_byte_names_object_and_chunk(vault):
    home, app = vault
    _, _, refs = _head_chunks(app)
    name, chunks = _object_with_two_chunks(refs)
    path = _writable(home / "vault" / chunks[1].key)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    report = _verify(app)
    assert not report.ok
    assert name in report.bad_objects
    assert any(p.key == chunks[1].key and p.seq == chunks[1].seq for p in report.problems)


def test_two_chunks_swapped(vault):
    home, app = vault
    _, _, refs = _head_chunks(app)
    name, chunks = _object_with_two_chunks(refs)
    a, b = _writable(home / "vault" / chunks[0].key), _writable(home / "vault" / chunks[1].key)
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    report = _verify(app)
    assert not report.ok
    bad_keys = {p.key for p in report.problems}
    assert {chunks[0].key, chunks[1].key} <= bad_keys
    assert all(p.object_name == name for p in report.problems if p.key in bad_keys)


def test_chunk_copied_from_another_object(vault):
    home, app = vault
    _, _, refs = _head_chunks(app)
    by_obj = {}
    for n, r in refs:
        if r.kind == "records":
            by_obj.setdefault(n, r)
    (n1, r1), (n2, r2) = list(sorted(by_obj.items()))[:2]
    _writable(home / "vault" / r2.key).write_bytes((home / "vault" / r1.key).read_bytes())
    report = _verify(app)
    assert n2 in report.bad_objects
    assert any(p.key == r2.key and str(p.kind) in ("misplaced", "hash-mismatch") for p in report.problems)


def test_chunk_copied_from_another_org(vault):
    home, app = vault
    _, _, acme_refs = _head_chunks(app, ORG)
    _, _, beta_refs = _head_chunks(app, BETA)
    acme_first = {n: r for n, r in reversed(acme_refs) if r.kind == "records"}
    name, beta_ref = next((n, r) for n, r in beta_refs if r.kind == "records" and n in acme_first)
    _writable(home / "vault" / beta_ref.key).write_bytes((home / "vault" / acme_first[name].key).read_bytes())
    report = _verify(app, BETA)
    assert name in report.bad_objects
    assert any(p.key == beta_ref.key and str(p.kind) == "misplaced" for p in report.problems)
    assert _verify(app, ORG).ok


def test_truncated_chunk(vault):
    home, app = vault
    _, _, refs = _head_chunks(app)
    name, chunks = _object_with_two_chunks(refs)
    path = _writable(home / "vault" / chunks[0].key)
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    report = _verify(app)
    assert name in report.bad_objects
    assert any(p.key == chunks[0].key and str(p.kind) in ("truncated", "tampered") for p in report.problems)


def test_missing_chunk(vault):
    home, app = vault
    _, _, refs = _head_chunks(app)
    name, chunks = _object_with_two_chunks(refs)
    (home / "vault" / chunks[1].key).unlink()
    report = _verify(app)
    assert name in report.bad_objects
    assert any(p.key == chunks[1].key and str(p.kind) == "missing" for p in report.problems)


def test_manifest_file_rolled_back_to_the_parent(vault):
    home, app = vault
    head = app.catalog.head_snapshot(ORG)
    parent = app.catalog.get_snapshot(ORG, head.parent_id)
    _writable(home / "vault" / head.manifest_key).write_bytes(
        (home / "vault" / parent.manifest_key).read_bytes()
    )
    report = _verify(app)
    assert not report.ok
    assert any(str(p.kind) == "manifest" and p.key == head.manifest_key for p in report.problems)


def test_catalog_pointed_at_an_older_manifest(vault):
    home, app = vault
    head = app.catalog.head_snapshot(ORG)
    parent = app.catalog.get_snapshot(ORG, head.parent_id)
    app.close()
    db = sqlite3.connect(home / "catalog.sqlite")
    row = db.execute(
        "SELECT data FROM snapshots WHERE org=? AND snapshot_id=?", (ORG, head.snapshot_id)
    ).fetchone()
    data = json.loads(row[0])
    data["manifest_key"], data["manifest_sha256"] = parent.manifest_key, parent.manifest_sha256
    db.execute(
        "UPDATE snapshots SET data=? WHERE org=? AND snapshot_id=?", (json.dumps(data), ORG, head.snapshot_id)
    )
    db.commit()
    db.close()
    app2 = make_app(home)
    try:
        report = _verify(app2)
        assert not report.ok
        assert any(str(p.kind) == "manifest" for p in report.problems)
    finally:
        app2.close()


def test_flipped_byte_in_a_file_body(vault):
    home, app = vault
    files = sorted((home / "vault" / "orgs" / BETA).rglob("*.ovf"))
    path = _writable(files[0])
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x80
    path.write_bytes(bytes(data))
    report = _verify(app, BETA)
    assert not report.ok
    assert any(str(p.kind) in ("file-bad", "file-missing") for p in report.problems)
