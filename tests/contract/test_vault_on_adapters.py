"""The vault format on every ObjectStore × KeyProvider adapter: what the services rely on end to end."""

from __future__ import annotations

import os

import pytest

from orgvault.domain.chunks import tombstone
from orgvault.domain.envelope import EnvelopeError, Reason, parse_preamble
from orgvault.domain.manifest import next_manifest, object_update
from orgvault.domain.models import ChunkKind, RunKind
from orgvault.errors import KeyUnavailable
from orgvault.services.snapshot_reader import SnapshotReader
from orgvault.services.vault import Vault


def test_seal_store_and_read_back(object_store, key_provider):
    vault = Vault(object_store, key_provider, segment_size=64 * 1024)
    key_ref = key_provider.create_org_key("acme")
    body = os.urandom(300_000)
    stored = vault.write_file_stream("acme", key_ref, [body[:1000], body[1000:]])
    records = [
        {"Id": f"001{i:015d}", "Name": f"A{i}", "Body": stored.value() if i == 0 else None} for i in range(50)
    ]
    rec = vault.write_chunk("acme", key_ref, "r1", "Account", 0, ChunkKind.RECORDS, records)
    tomb = vault.write_chunk(
        "acme", key_ref, "r1", "Account", 1, ChunkKind.TOMBSTONES, [tombstone(records[1]["Id"])]
    )
    manifest = next_manifest(
        None,
        org="acme",
        snapshot_id="r1",
        created_at="2026-01-01T00:00:00+00:00",
        run_kind=RunKind.FULL,
        updates={"Account": object_update(fields=[("Id", "id")], chunks=[rec, tomb], full=True, records=49)},
    )
    key, sha = vault.write_manifest(key_ref, manifest)
    back = vault.read_manifest("acme", "r1", key, sha)
    assert back == manifest
    reader = SnapshotReader(vault, back)
    assert [r["Id"] for r in reader.iter_records("Account")] == [
        r["Id"] for r in records if r is not records[1]
    ]
    report = reader.verify()
    assert report.ok and report.files == 1 and report.file_bytes == len(body)
    header, _ = parse_preamble(object_store.get(rec.key))
    assert header.key_ref and dict(header.context)["org"] == "acme"
    with pytest.raises((EnvelopeError, KeyUnavailable)) as info:
        vault.read_chunk("acme", "Contact", rec)
    if isinstance(info.value, EnvelopeError):
        assert info.value.reason == Reason.MISPLACED
