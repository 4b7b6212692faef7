"""The vault end to end on the local adapters: write a full and an incremental snapshot, read them back,
and catch every kind of tampering with verify."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orgvault.adapters.local_catalog import SqliteCatalog
from orgvault.adapters.local_keys import LocalKeyProvider
from orgvault.adapters.local_store import FilesystemObjectStore
from orgvault.domain import layout
from orgvault.domain.chunks import ChunkBuilder, tombstone
from orgvault.domain.envelope import EnvelopeError, Reason, parse_preamble
from orgvault.domain.manifest import Manifest, next_manifest, object_update
from orgvault.domain.models import ChunkKind, ChunkRecord, RunKind, SnapshotRecord
from orgvault.errors import KeyUnavailable, ObjectNotFound
from orgvault.services.snapshot_reader import ProblemKind, SnapshotReader, count_records, verify_snapshot
from orgvault.services.vault import Vault

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, tzinfo=UTC)
FIELDS = (("Id", "id"), ("Name", "string"), ("Body", "base64"))


class Env:
    def __init__(self, root: Path, *, segment_size: int = 96) -> None:
        self.root = root
        self.store = FilesystemObjectStore(root / "vault")
        self.keys = LocalKeyProvider.create_key_file(root / "keys.json")
        self.catalog = SqliteCatalog(root / "catalog.sqlite")
        self.vault = Vault(self.store, self.keys, segment_size=segment_size)

    def path(self, key: str) -> Path:
        return self.root / "vault" / key

    def write_object(
        self,
        org: str,
        run_id: str,
        obj: str,
        kind: ChunkKind,
        records,
        *,
        start: int = 0,
        max_records: int = 10,
    ) -> list[ChunkRecord]:
        builder = ChunkBuilder(max_records=max_records)
        out, seq = [], start
        for rec in records:
            if (c := builder.add(rec)) is not None:
                out.append(self.vault.write_chunk(org, "", run_id, obj, seq, kind, c))
                seq += 1
        if (c := builder.flush()) is not None:
            out.append(self.vault.write_chunk(org, "", run_id, obj, seq, kind, c))
        return out

    def commit(self, manifest: Manifest, parent: SnapshotRecord | None) -> SnapshotRecord:
        key, sha = self.vault.write_manifest("", manifest)
        rec = SnapshotRecord(
            org=manifest.org,
            snapshot_id=manifest.snapshot_id,
            created_at=datetime.fromisoformat(manifest.created_at),
            kind=manifest.run_kind,
            manifest_key=key,
            manifest_sha256=sha,
            parent_id=parent.snapshot_id if parent else None,
            objects=len(manifest.objects),
            records=manifest.records,
        )
        self.catalog.commit_snapshot(rec, expected_head=parent.snapshot_id if parent else None)
        return rec


def accounts(n: int, start: int = 0) -> list[dict]:
    return [{"Id": f"001{i:015d}", "Name": f"Account {i}", "Body": None} for i in range(start, start + n)]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def full_backup(env: Env, org: str = "acme", run: str = "r1") -> tuple[SnapshotRecord, dict[str, dict]]:
    body = b"%PDF-1.4 quarterly report " * 50
    stored = env.vault.write_file_stream(org, "", [body[:100], body[100:]])
    again = env.vault.write_file_stream(org, "", [body])  # same bytes: stored once
    assert stored.written and not again.written and again.content_id == stored.content_id
    contacts = [
        {"Id": f"003{i:015d}", "Name": f"C{i}", "Body": stored.value() if i < 2 else None} for i in range(5)
    ]
    acc_chunks = env.write_object(org, run, "Account", ChunkKind.RECORDS, accounts(25))
    con_chunks = env.write_object(org, run, "Contact", ChunkKind.RECORDS, contacts)
    manifest = next_manifest(
        None,
        org=org,
        snapshot_id=run,
        created_at=T0.isoformat(),
        run_kind=RunKind.FULL,
        updates={
            "Account": object_update(fields=FIELDS, chunks=acc_chunks, full=True, watermark="w1", records=25),
            "Contact": object_update(fields=FIELDS, chunks=con_chunks, full=True, watermark="w1", records=5),
        },
    )
    truth = {"Account": {r["Id"]: r for r in accounts(25)}, "Contact": {r["Id"]: r for r in contacts}}
    return env.commit(manifest, None), truth


def incremental(env: Env, parent: SnapshotRecord, truth: dict[str, dict]) -> SnapshotRecord:
    changed = [{"Id": f"001{i:015d}", "Name": f"Renamed {i}", "Body": None} for i in (3, 12)] + accounts(
        2, start=100
    )
    deleted = [f"001{i:015d}" for i in (0, 7, 20)]
    delta = env.write_object("acme", "r2", "Account", ChunkKind.DELTA, changed)
    tombs = env.write_object(
        "acme",
        "r2",
        "Account",
        ChunkKind.TOMBSTONES,
        [tombstone(d, "2026-03-02T00:00:00.000+0000") for d in deleted],
        start=len(delta),
    )
    parent_manifest = env.vault.read_snapshot_manifest(parent)
    manifest = next_manifest(
        parent_manifest,
        org="acme",
        snapshot_id="r2",
        created_at=(T0 + timedelta(days=1)).isoformat(),
        run_kind=RunKind.INCREMENTAL,
        parent_manifest_sha256=parent.manifest_sha256,
        updates={"Account": object_update(fields=FIELDS, chunks=delta + tombs, full=False, watermark="w2")},
    )
    count = count_records(env.vault, "acme", manifest.objects["Account"])
    manifest = dataclasses.replace(
        manifest,
        objects={
            **manifest.objects,
            "Account": dataclasses.replace(manifest.objects["Account"], records=count),
        },
    )
    for rec in changed:
        truth["Account"][rec["Id"]] = rec
    for d in deleted:
        del truth["Account"][d]
    return env.commit(manifest, parent)


def read_all(env: Env, snap: SnapshotRecord) -> dict[str, dict]:
    reader = SnapshotReader.open(env.vault, snap)
    out = {}
    for obj in reader.objects():
        rows = list(reader.iter_records(obj))
        assert len(rows) == len({r["Id"] for r in rows})  # each Id once
        out[obj] = {r["Id"]: r for r in rows}
    return out


# --- round trips ---------------------------------------------------------------------------------


def test_full_then_incremental_read_back_exactly(env):
    s1, truth1 = full_backup(env)
    frozen1 = json.loads(json.dumps(truth1))
    assert read_all(env, s1) == truth1
    s2 = incremental(env, s1, truth1)
    assert read_all(env, s2) == truth1
    assert read_all(env, s1) == frozen1  # the older snapshot is unchanged: point in time
    assert len(truth1["Account"]) == 24
    report = SnapshotReader.open(env.vault, s2).verify()
    assert report.ok, report.problems
    assert (report.objects, report.records, report.files) == (2, 29, 1)
    assert report.chunks == 3 + 1 + 1 + 1
    assert env.catalog.head_snapshot("acme") == s2


def test_reader_keeps_base_order_for_updated_records(env):
    s1, truth = full_backup(env)
    s2 = incremental(env, s1, truth)
    ids = [r["Id"] for r in SnapshotReader.open(env.vault, s2).iter_records("Account")]
    assert ids[:3] == ["001000000000000001", "001000000000000002", "001000000000000003"]
    assert ids[-2:] == ["001000000000000100", "001000000000000101"]  # new records come last


def test_layout_and_contexts(env):
    s1, _ = full_backup(env)
    keys = list(env.store.list("orgs/acme/"))
    assert all(
        k.startswith(
            (
                "orgs/acme/snapshots/r1/objects/",
                "orgs/acme/files/",
                "orgs/acme/manifests/r1-",
                "orgs/acme/keys/content-id.key",
            )
        )
        for k in keys
    )
    chunk_key = next(k for k in keys if "/objects/Account/000001-records-" in k)
    header, _ = parse_preamble(env.store.get(chunk_key))
    assert dict(header.context) == {
        "org": "acme",
        "snapshot": "r1",
        "object": "Account",
        "seq": "1",
        "v": "1",
    }
    assert header.kind == "chunk" and header.key_ref == "local:acme"


def test_content_ids_are_keyed_per_org(env):
    a = env.vault.content_id("acme", b"same bytes")
    assert a == env.vault.content_id("acme", [b"same ", b"bytes"])
    assert a != env.vault.content_id("beta", b"same bytes")
    assert a != hashlib.sha256(b"same bytes").hexdigest()
    # a fresh Vault over the same store finds the same org content key
    assert Vault(env.store, env.keys).content_id("acme", b"same bytes") == a


def test_chunk_read_as_another_object_or_org_fails(env):
    rec = env.write_object("acme", "r1", "Account", ChunkKind.RECORDS, accounts(3))[0]
    assert len(list(env.vault.read_chunk("acme", "Account", rec))) == 3
    with pytest.raises(EnvelopeError) as info:
        env.vault.read_chunk("acme", "Contact", rec)
    assert info.value.reason == Reason.MISPLACED
    with pytest.raises(EnvelopeError):
        env.vault.read_chunk("beta", "Account", rec)
    with pytest.raises(EnvelopeError):
        env.vault.read_chunk("acme", "Account", dataclasses.replace(rec, seq=4))


def test_forged_header_context_cannot_unwrap(env):
    """Rewriting the header's context to the new place: the wrapped key refuses the new context."""
    rec = env.write_object("acme", "r1", "Account", ChunkKind.RECORDS, accounts(3))[0]
    data = env.store.get(rec.key)
    header, start = parse_preamble(data)
    forged = dataclasses.replace(header, context={**header.context, "object": "Contact"})
    new_key = rec.key.replace("/Account/", "/Contact/")
    env.store.put(new_key, forged.preamble() + data[start:])
    with pytest.raises(KeyUnavailable):
        env.vault.read_chunk(
            "acme", "Contact", dataclasses.replace(rec, key=new_key, object_name="Contact", sha256="")
        )


def test_large_file_streams_with_flat_memory(tmp_path):
    env = Env(tmp_path, segment_size=1024 * 1024)
    env.vault = Vault(
        env.store,
        env.keys,
        spool_factory=lambda: tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=1024 * 1024, dir=tmp_path
        ),
    )
    part = os.urandom(1024 * 1024)
    tracemalloc.start()
    try:
        stored = env.vault.write_file_stream("acme", "", (part for _ in range(48)))
        _, peak_write = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        size = env.vault.verify_file("acme", stored.content_id, expected_size=48 * len(part))
        _, peak_read = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == stored.size == 48 * 1024 * 1024
    assert peak_write < 16 * 1024 * 1024 and peak_read < 24 * 1024 * 1024, (peak_write, peak_read)


def test_file_roundtrip_and_dedup_across_runs(env):
    data = os.urandom(300_000)
    a = env.vault.write_file_stream("acme", "", [data])
    b = env.vault.write_file_stream("acme", "", [data[:5], data[5:]])
    assert a.key == b.key and a.written and not b.written and b.stored_bytes == a.stored_bytes
    assert b"".join(env.vault.read_file_stream("acme", a.content_id)) == data
    rec = env.vault.file_record("acme", "ContentVersion/068A/VersionData", a, source_stamp="s")
    env.catalog.put_file(rec)
    assert env.catalog.get_file("acme", rec.source) == rec
    assert layout.FileRef.from_value(a.value()) == layout.FileRef(a.content_id, len(data))


# --- tampering: verify names what is wrong -------------------------------------------------------


def chunk_keys(env: Env, obj: str, run: str = "r1") -> list[str]:
    return list(env.store.list(f"orgs/acme/snapshots/{run}/objects/{obj}/"))


def problems(env: Env, snap: SnapshotRecord) -> list[tuple[ProblemKind, str | None, str | None]]:
    report = verify_snapshot(env.vault, snap)
    assert not report.ok
    return [(p.kind, p.object_name, p.key) for p in report.problems]


def test_flipped_byte(env):
    s1, _ = full_backup(env)
    key = chunk_keys(env, "Account")[1]
    data = bytearray(env.path(key).read_bytes())
    data[-20] ^= 0x40
    env.path(key).write_bytes(bytes(data))
    assert problems(env, s1) == [(ProblemKind.TAMPERED, "Account", key)]


def test_two_chunks_swapped(env):
    s1, _ = full_backup(env)
    k0, k1 = chunk_keys(env, "Account")[:2]
    d0, d1 = env.path(k0).read_bytes(), env.path(k1).read_bytes()
    env.path(k0).write_bytes(d1)
    env.path(k1).write_bytes(d0)
    assert problems(env, s1) == [
        (ProblemKind.MISPLACED, "Account", k0),
        (ProblemKind.MISPLACED, "Account", k1),
    ]


def test_chunk_copied_from_another_object(env):
    s1, _ = full_backup(env)
    target = chunk_keys(env, "Account")[0]
    shutil.copyfile(env.path(chunk_keys(env, "Contact")[0]), env.path(target))
    assert problems(env, s1) == [(ProblemKind.MISPLACED, "Account", target)]


def test_chunk_copied_from_another_org(env):
    s1, _ = full_backup(env)
    full_backup(env, org="beta")
    target = chunk_keys(env, "Account")[0]
    source = next(iter(env.store.list("orgs/beta/snapshots/r1/objects/Account/000000-")))
    shutil.copyfile(env.path(source), env.path(target))
    report = verify_snapshot(env.vault, s1)
    assert [(p.kind, p.key) for p in report.problems] == [(ProblemKind.MISPLACED, target)]
    assert '"org":"beta"' in report.problems[0].detail


def test_replaced_by_an_authentic_retry_orphan(env):
    """A retried write left an orphan for the same place; putting it in place of the recorded chunk is caught."""
    s1, _ = full_backup(env)
    target = chunk_keys(env, "Account")[0]
    orphan = env.vault.write_chunk("acme", "", "r1", "Account", 0, ChunkKind.RECORDS, accounts(10))
    shutil.copyfile(env.path(orphan.key), env.path(target))
    assert problems(env, s1) == [(ProblemKind.HASH_MISMATCH, "Account", target)]


def test_truncated_chunk(env):
    s1, _ = full_backup(env)
    key = chunk_keys(env, "Account")[0]
    data = env.path(key).read_bytes()
    _, start = parse_preamble(data)
    segments = -(-(len(data) - start) // (96 + 16))
    assert segments >= 2
    env.path(key).write_bytes(data[: start + (segments - 1) * (96 + 16)])  # cut at a segment boundary
    assert problems(env, s1) == [(ProblemKind.TRUNCATED, "Account", key)]
    env.path(key).write_bytes(data[: len(data) // 2])  # cut anywhere
    assert [k for k, *_ in problems(env, s1)][0] in (ProblemKind.TRUNCATED, ProblemKind.TAMPERED)


def test_missing_chunk(env):
    s1, _ = full_backup(env)
    key = chunk_keys(env, "Contact")[0]
    env.path(key).unlink()
    assert problems(env, s1) == [(ProblemKind.MISSING, "Contact", key)]


def test_manifest_rolled_back(env):
    s1, truth = full_backup(env)
    s2 = incremental(env, s1, truth)
    shutil.copyfile(env.path(s1.manifest_key), env.path(s2.manifest_key))
    report = verify_snapshot(env.vault, s2)
    assert [(p.kind, p.key) for p in report.problems] == [(ProblemKind.MANIFEST, s2.manifest_key)]
    assert "rolled back" in report.problems[0].detail


def test_manifest_swapped_for_an_authentic_one_with_the_same_hash_record(env):
    """Even with a catalog pointing at another snapshot's manifest (hash and all), the context check refuses."""
    s1, truth = full_backup(env)
    s2 = incremental(env, s1, truth)
    lie = dataclasses.replace(s2, manifest_key=s1.manifest_key, manifest_sha256=s1.manifest_sha256)
    report = verify_snapshot(env.vault, lie)
    assert report.problems[0].kind == ProblemKind.MANIFEST and "misplaced" in report.problems[0].detail


def test_count_mismatch(env):
    s1, _ = full_backup(env)
    manifest = env.vault.read_snapshot_manifest(s1)
    wrong = dataclasses.replace(
        manifest,
        objects={**manifest.objects, "Account": dataclasses.replace(manifest.objects["Account"], records=26)},
    )
    report = SnapshotReader(env.vault, wrong).verify()
    assert [(p.kind, p.object_name) for p in report.problems] == [(ProblemKind.COUNT_MISMATCH, "Account")]


def test_file_tampered_or_missing(env):
    s1, _ = full_backup(env)
    (file_key,) = list(env.store.list("orgs/acme/files/"))
    data = bytearray(env.path(file_key).read_bytes())
    data[-1] ^= 1
    env.path(file_key).write_bytes(bytes(data))
    assert [k for k, *_ in problems(env, s1)] == [ProblemKind.FILE_BAD]
    env.path(file_key).unlink()
    assert [k for k, *_ in problems(env, s1)] == [ProblemKind.FILE_MISSING]


def test_file_body_swapped_for_another_file(env):
    s1, _ = full_backup(env)
    (file_key,) = list(env.store.list("orgs/acme/files/"))
    other = env.vault.write_file_stream("acme", "", [b"another body"])
    shutil.copyfile(env.path(other.key), env.path(file_key))
    assert [k for k, *_ in problems(env, s1)] == [ProblemKind.FILE_BAD]


def test_iter_records_raises_on_a_bad_chunk(env):
    s1, _ = full_backup(env)
    env.path(chunk_keys(env, "Account")[2]).unlink()
    with pytest.raises(ObjectNotFound):
        list(SnapshotReader.open(env.vault, s1).iter_records("Account"))


# --- the standalone decrypt example --------------------------------------------------------------


def test_standalone_decrypt_example_reads_a_real_chunk(env):
    records = accounts(4) + [{"Id": "001X", "Name": "Zoë ✓", "Body": {"$file": "ab" * 32, "size": 3}}]
    rec = env.vault.write_chunk("acme", "", "r1", "Account", 0, ChunkKind.RECORDS, records)
    header, _ = parse_preamble(env.store.get(rec.key))
    assert header.segment_size == 96  # several segments
    data_key = env.keys.decrypt_data_key(header.key_ref, header.wrapped_key, dict(header.context))
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "docs/examples/decrypt_chunk.py"),
            str(env.path(rec.key)),
            data_key.hex(),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert [json.loads(line) for line in out.stdout.splitlines()] == records
    assert len((ROOT / "docs/examples/decrypt_chunk.py").read_text().splitlines()) <= 40


def test_layers_apply_in_order_delete_then_undelete(env):
    """Base with its own tombstones, then a delta deleting and updating, then a delta undeleting."""
    base = env.write_object("acme", "r1", "Account", ChunkKind.RECORDS, accounts(6))
    base_tombs = env.write_object(
        "acme",
        "r1",
        "Account",
        ChunkKind.TOMBSTONES,
        [tombstone(accounts(1, start=5)[0]["Id"])],
        start=len(base),
    )
    m1 = next_manifest(
        None,
        org="acme",
        snapshot_id="r1",
        created_at=T0.isoformat(),
        run_kind=RunKind.FULL,
        updates={"Account": object_update(fields=FIELDS, chunks=base + base_tombs, full=True, records=5)},
    )
    s1 = env.commit(m1, None)
    one = accounts(1, start=1)[0]["Id"]
    d2 = env.write_object("acme", "r2", "Account", ChunkKind.TOMBSTONES, [tombstone(one)])
    upd = env.write_object(
        "acme",
        "r2",
        "Account",
        ChunkKind.DELTA,
        [{"Id": accounts(1)[0]["Id"], "Name": "v2", "Body": None}],
        start=1,
    )
    m2 = next_manifest(
        m1,
        org="acme",
        snapshot_id="r2",
        created_at=(T0 + timedelta(days=1)).isoformat(),
        run_kind=RunKind.INCREMENTAL,
        parent_manifest_sha256=s1.manifest_sha256,
        updates={"Account": object_update(fields=FIELDS, chunks=d2 + upd, full=False, records=4)},
    )
    s2 = env.commit(m2, s1)
    back = env.write_object(
        "acme", "r3", "Account", ChunkKind.DELTA, [{"Id": one, "Name": "undeleted", "Body": None}]
    )
    m3 = next_manifest(
        m2,
        org="acme",
        snapshot_id="r3",
        created_at=(T0 + timedelta(days=2)).isoformat(),
        run_kind=RunKind.INCREMENTAL,
        parent_manifest_sha256=s2.manifest_sha256,
        updates={"Account": object_update(fields=FIELDS, chunks=back, full=False, records=5)},
    )
    s3 = env.commit(m3, s2)
    names = {
        sid: {r["Id"][-1]: r["Name"] for r in read_all(env, s)["Account"].values()}
        for sid, s in (("r1", s1), ("r2", s2), ("r3", s3))
    }
    assert names["r1"] == {
        "0": "Account 0",
        "1": "Account 1",
        "2": "Account 2",
        "3": "Account 3",
        "4": "Account 4",
    }
    assert names["r2"] == {"0": "v2", "2": "Account 2", "3": "Account 3", "4": "Account 4"}
    assert names["r3"] == {"0": "v2", "1": "undeleted", "2": "Account 2", "3": "Account 3", "4": "Account 4"}
    for s in (s1, s2, s3):
        assert verify_snapshot(env.vault, s).ok


@st.composite
def histories(draw):
    """A base layer and up to 3 delta layers, each a list of chunks that upsert or delete ids 0..15."""
    base = draw(st.sets(st.integers(0, 15), max_size=12))
    layers = []
    for _ in range(draw(st.integers(0, 3))):
        chunks = []
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from([ChunkKind.DELTA, ChunkKind.TOMBSTONES]))
            ids = draw(st.lists(st.integers(0, 15), min_size=1, max_size=5, unique=True))
            chunks.append((kind, ids))
        layers.append(chunks)
    return sorted(base), layers


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories())
def test_reading_any_history_equals_applying_it_in_order(tmp_path_factory, history):
    env = Env(tmp_path_factory.mktemp("h"))
    base_ids, layers = history

    def rec(i: int, version: int) -> dict:
        return {"Id": f"001{i:015d}", "Name": f"v{version}", "Body": None}

    model = {rec(i, 0)["Id"]: rec(i, 0) for i in base_ids}
    base = env.write_object(
        "acme", "r0", "Account", ChunkKind.RECORDS, [rec(i, 0) for i in base_ids], max_records=3
    )
    manifest = next_manifest(
        None,
        org="acme",
        snapshot_id="r0",
        created_at=T0.isoformat(),
        run_kind=RunKind.FULL,
        updates={"Account": object_update(fields=FIELDS, chunks=base, full=True, records=len(model))},
    )
    for n, chunks in enumerate(layers, start=1):
        run, written, seq = f"r{n}", [], 0
        for kind, ids in chunks:
            if kind == ChunkKind.TOMBSTONES:
                rows = [tombstone(f"001{i:015d}") for i in ids]
                for i in ids:
                    model.pop(f"001{i:015d}", None)
            else:
                rows = [rec(i, n) for i in ids]
                model.update({r["Id"]: r for r in rows})
            out = env.write_object("acme", run, "Account", kind, rows, start=seq, max_records=2)
            written += out
            seq += len(out)
        manifest = next_manifest(
            manifest,
            org="acme",
            snapshot_id=run,
            created_at=(T0 + timedelta(days=n)).isoformat(),
            run_kind=RunKind.INCREMENTAL,
            parent_manifest_sha256="00" * 32,
            updates={"Account": object_update(fields=FIELDS, chunks=written, full=False, records=len(model))},
        )
    reader = SnapshotReader(env.vault, manifest)
    got = list(reader.iter_records("Account"))
    assert {r["Id"]: r for r in got} == model and len(got) == len(model)
    assert reader.verify().ok
