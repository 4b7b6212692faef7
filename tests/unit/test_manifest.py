"""Manifests: building the next one from the parent, serialization, version check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orgvault.domain.manifest import (
    ChunkRef,
    LayerKind,
    Manifest,
    manifest_from_bytes,
    next_manifest,
    object_update,
    with_counts,
)
from orgvault.domain.models import ChunkKind, ChunkRecord, RunKind
from orgvault.errors import IntegrityError, UnknownFormatVersion

FIELDS = (("Id", "id"), ("Name", "string"), ("SystemModstamp", "datetime"))


def ref(run: str, seq: int, kind: ChunkKind = ChunkKind.RECORDS, records: int = 10) -> ChunkRef:
    return ChunkRef(
        f"orgs/acme/snapshots/{run}/objects/Account/{seq:06d}-{kind}-aa.ovc",
        run,
        seq,
        kind,
        records,
        "ab" * 32,
    )


def full(run: str = "r1") -> Manifest:
    return next_manifest(
        None,
        org="acme",
        snapshot_id=run,
        created_at="2026-01-01T00:00:00+00:00",
        run_kind=RunKind.FULL,
        salesforce_org_id="00D000000000001",
        updates={
            "Account": object_update(
                fields=FIELDS, chunks=[ref(run, 1), ref(run, 0)], full=True, watermark="w1"
            ),
            "Contact": object_update(fields=FIELDS, chunks=[], full=True, watermark=None, records=0),
        },
    )


def test_full_manifest_has_one_base_layer_per_object():
    m = full()
    acc = m.objects["Account"]
    assert [layer.kind for layer in acc.layers] == [LayerKind.BASE]
    assert [c.seq for c in acc.layers[0].chunks] == [0, 1]  # sorted by seq
    assert acc.records == 20 and acc.watermark == "w1"
    assert m.parent_snapshot_id is None and m.parent_manifest_sha256 is None
    assert m.records == 20


def test_incremental_adds_a_delta_layer_and_chains_the_parent():
    parent = full()
    m = next_manifest(
        parent,
        org="acme",
        snapshot_id="r2",
        created_at="2026-01-02T00:00:00+00:00",
        run_kind=RunKind.INCREMENTAL,
        parent_manifest_sha256="ff" * 32,
        updates={
            "Account": object_update(
                fields=FIELDS,
                chunks=[ref("r2", 0, ChunkKind.DELTA, 3), ref("r2", 1, ChunkKind.TOMBSTONES, 2)],
                full=False,
                watermark="w2",
                records=19,
            )
        },
    )
    acc = m.objects["Account"]
    assert [(layer.kind, layer.run_id) for layer in acc.layers] == [
        (LayerKind.BASE, "r1"),
        (LayerKind.DELTA, "r2"),
    ]
    assert acc.records == 19 and acc.watermark == "w2"
    assert m.objects["Contact"] == parent.objects["Contact"]  # untouched objects carried over
    assert (m.parent_snapshot_id, m.parent_manifest_sha256) == ("r1", "ff" * 32)
    assert m.salesforce_org_id == "00D000000000001"
    assert len(m.chunk_refs()) == 4


def test_incremental_without_changes_adds_no_layer_but_moves_watermark():
    parent = full()
    m = next_manifest(
        parent,
        org="acme",
        snapshot_id="r2",
        created_at="t",
        run_kind=RunKind.INCREMENTAL,
        parent_manifest_sha256="ff" * 32,
        updates={"Account": object_update(fields=(), chunks=[], full=False, watermark="w9")},
    )
    assert m.objects["Account"].layers == parent.objects["Account"].layers
    assert m.objects["Account"].watermark == "w9" and m.objects["Account"].fields == FIELDS
    assert m.objects["Account"].records == 20


def test_estimated_count_without_explicit_records():
    parent = full()
    m = next_manifest(
        parent,
        org="acme",
        snapshot_id="r2",
        created_at="t",
        run_kind=RunKind.INCREMENTAL,
        parent_manifest_sha256="ff" * 32,
        updates={
            "Account": object_update(
                fields=FIELDS, chunks=[ref("r2", 0, ChunkKind.TOMBSTONES, 5)], full=False
            )
        },
    )
    assert m.objects["Account"].records == 15
    assert with_counts(m, {"Account": 14}).objects["Account"].records == 14


def test_full_reread_replaces_layers():
    parent = full()
    m = next_manifest(
        parent,
        org="acme",
        snapshot_id="r3",
        created_at="t",
        run_kind=RunKind.INCREMENTAL,
        parent_manifest_sha256="ff" * 32,
        updates={
            "Account": object_update(
                fields=FIELDS + (("New__c", "string"),), chunks=[ref("r3", 0)], full=True, fields_hash="h2"
            )
        },
    )
    acc = m.objects["Account"]
    assert [(layer.kind, layer.run_id) for layer in acc.layers] == [(LayerKind.BASE, "r3")]
    assert acc.fields[-1] == ("New__c", "string") and acc.fields_hash == "h2"


def test_removed_objects_and_guards():
    parent = full()
    m = next_manifest(
        parent,
        org="acme",
        snapshot_id="r2",
        created_at="t",
        run_kind=RunKind.INCREMENTAL,
        parent_manifest_sha256="ff" * 32,
        updates={},
        removed=["Contact"],
    )
    assert list(m.objects) == ["Account"]
    with pytest.raises(ValueError):
        next_manifest(
            parent,
            org="beta",
            snapshot_id="r2",
            created_at="t",
            run_kind=RunKind.INCREMENTAL,
            parent_manifest_sha256="ff" * 32,
            updates={},
        )
    with pytest.raises(ValueError):  # the hash chain is mandatory
        next_manifest(
            parent, org="acme", snapshot_id="r2", created_at="t", run_kind=RunKind.INCREMENTAL, updates={}
        )
    with pytest.raises(ValueError):  # an incremental needs a base
        next_manifest(
            parent,
            org="acme",
            snapshot_id="r2",
            created_at="t",
            run_kind=RunKind.INCREMENTAL,
            parent_manifest_sha256="ff" * 32,
            updates={"Lead": object_update(fields=FIELDS, chunks=[ref("r2", 0)], full=False)},
        )
    with pytest.raises(IntegrityError):
        object_update(fields=FIELDS, chunks=[ref("r2", 0), ref("r2", 0)], full=True)


def test_catalog_chunk_records_are_accepted():
    rec = ChunkRecord(
        "acme", "r1", "Account", 0, ChunkKind.RECORDS, "k", 7, 100, 50, "cd" * 32, "001A", "001B"
    )
    up = object_update(fields=FIELDS, chunks=[rec], full=True)
    assert up.chunks == (ChunkRef("k", "r1", 0, ChunkKind.RECORDS, 7, "cd" * 32, "001A", "001B"),)


def test_serialization_roundtrip_is_canonical():
    m = full()
    data = m.to_bytes()
    back = manifest_from_bytes(data)
    assert back == m and back.to_bytes() == data
    obj = json.loads(data)
    assert obj["format"] == "orgvault-manifest" and obj["version"] == 1
    assert list(obj["objects"]) == ["Account", "Contact"]
    assert set(obj["objects"]["Account"]["layers"][0]["chunks"][0]) == {
        "key",
        "run_id",
        "seq",
        "kind",
        "records",
        "sha256",
        "first_id",
        "last_id",
    }


def test_version_and_shape_checks():
    obj = json.loads(full().to_bytes())
    with pytest.raises(UnknownFormatVersion):
        manifest_from_bytes(json.dumps({**obj, "version": 2}).encode())
    for bad in (
        b"nope",
        b"[]",
        json.dumps({**obj, "format": "x"}).encode(),
        json.dumps({k: v for k, v in obj.items() if k != "objects"}).encode(),
    ):
        with pytest.raises(IntegrityError):
            manifest_from_bytes(bad)


def test_known_manifest_v1_still_parses_and_reencodes_identically():
    data = (Path(__file__).parent / "fixtures" / "manifest_v1.json").read_bytes()
    m = manifest_from_bytes(data)
    assert (m.org, m.snapshot_id, m.parent_snapshot_id, m.run_kind) == (
        "acme",
        "r2",
        "r1",
        RunKind.INCREMENTAL,
    )
    acc = m.objects["Account"]
    assert [(layer.kind, layer.run_id, [c.kind for c in layer.chunks]) for layer in acc.layers] == [
        (LayerKind.BASE, "r1", [ChunkKind.RECORDS]),
        (LayerKind.DELTA, "r2", [ChunkKind.DELTA, ChunkKind.TOMBSTONES]),
    ]
    assert (acc.records, acc.watermark, acc.fields_hash, acc.strategy) == (
        8,
        "2026-01-02T00:00:00.000+0000",
        "h1",
        "bulk",
    )
    assert m.to_bytes() == data
