"""Restore benchmarks: restore throughput and API calls, and point-in-time lookup by id.

Run: ``.venv/bin/python -m bench.restore_throughput [--records 10000] [--lookup-records 1000000]
[--snapshots 30] [--quick]``. Prints a table and writes ``bench/out/restore.json``.

1. **Restore throughput** against the emulator: an org of ``--records`` Accounts is backed up; then
   (a) a field is blanked on every record and reverted (``revert-fields``, Bulk API 2.0 ingest), and
   (b) every record is deleted and re-created (``recreate-deleted``). Reported: records/s and API
   calls per 10k records restored (including the reads the restore makes: describe, current values).
2. **Point-in-time lookup**: a vault holding ``--snapshots`` snapshots of an object of
   ``--lookup-records`` records (a full base, then incrementals changing 1% each, with deletions) is
   written directly through the real Vault/manifest/catalog code (synthetic rows: the emulator is not
   needed to measure the read path). Then one record is looked up by id at the newest snapshot and
   at a middle one, with cold caches (a new reader: index objects come from the vault) and warm.
   Reported: milliseconds and data chunks decrypted (target < 200 ms, <= 3 chunks).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orgvault.bootstrap import init_local, open_app
from orgvault.domain.chunks import ChunkBuilder, tombstone
from orgvault.domain.manifest import next_manifest, object_update
from orgvault.domain.models import ChunkKind, RunKind, SnapshotRecord
from orgvault.domain.record_index import record_ids
from orgvault.services.browse import Snapshots, write_chunk_index
from orgvault.settings import Settings

OUT = Path(__file__).parent / "out"
ORG = "bench"
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def fake_id(n: int, prefix: str = "001") -> str:
    s = ""
    for _ in range(12):
        n, r = divmod(n, 62)
        s = B62[r] + s
    return prefix + s + "AAA"


def row(i: int, version: int = 0) -> dict[str, Any]:
    return {
        "Id": fake_id(i),
        "Name": f"Customer {i:07d}",
        "Industry": ("Retail", "Energy", "Banking")[i % 3],
        "AnnualRevenue": float(i * 13 % 1000003),
        "NumberOfEmployees": i % 5000,
        "Phone": f"+41 44 {i % 1000000:06d}",
        "BillingCity": ("Zürich", "Genève", "Basel")[i % 3],
        "Description": f"account {i} version {version}",
        "Rating": ("Hot", "Warm", "Cold")[(i + version) % 3],
        "SystemModstamp": f"2026-01-{1 + version % 28:02d}T00:00:00.000+0000",
    }


# --- 2. point-in-time lookup ------------------------------------------------------------------------


def build_vault(home: Path, records: int, snapshots: int, change: float, seed: int = 7) -> tuple[Any, dict]:
    settings = Settings.from_env({}, home=str(home))
    init_local(settings)
    app = open_app(settings)
    key_ref = app.keys.create_org_key(ORG)
    rnd = random.Random(seed)
    fields = tuple((k, "string") for k in row(0))
    parent = None
    parent_sha = None
    live = set(range(records))
    t0 = time.perf_counter()
    written = 0
    for s in range(snapshots):
        run_id = f"2026{s:04d}T000000Z-bench"
        chunks: list[Any] = []
        builder = ChunkBuilder(max_records=50_000)

        def emit(
            enc: Any, kind: ChunkKind, ids: list[str], run_id: str = run_id, chunks: list = chunks
        ) -> None:
            rec = app.vault.write_chunk(ORG, key_ref, run_id, "Account", len(chunks), kind, enc)
            write_chunk_index(app.vault, ORG, key_ref, rec.sha256, ids)  # what the backup would call
            chunks.append(rec)

        if s == 0:
            rows = (row(i) for i in range(records))
        else:
            changed = sorted(rnd.sample(sorted(live), int(records * change)))
            rows = (row(i, s) for i in changed)
        last_ids: list[str] = []
        for r in rows:
            enc = builder.add(r)
            if enc is not None:
                emit(enc, ChunkKind.RECORDS if s == 0 else ChunkKind.DELTA, last_ids)
                last_ids = []
            last_ids.append(r["Id"])
            written += 1
        enc = builder.flush()
        if enc is not None:
            emit(enc, ChunkKind.RECORDS if s == 0 else ChunkKind.DELTA, last_ids)
        if s > 0:  # a few deletions per incremental
            gone = rnd.sample(sorted(live), max(1, int(records * change / 10)))
            live -= set(gone)
            tombs = [tombstone(fake_id(i), "2026-01-02T00:00:00.000+0000") for i in sorted(gone)]
            tb = ChunkBuilder()
            for t in tombs:
                tb.add(t)
            emit(tb.flush(), ChunkKind.TOMBSTONES, record_ids(tombs))
        created = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=s)
        manifest = next_manifest(
            parent,
            org=ORG,
            snapshot_id=run_id,
            created_at=created.isoformat(),
            run_kind=RunKind.FULL if s == 0 else RunKind.INCREMENTAL,
            updates={"Account": object_update(fields=fields, chunks=chunks, full=s == 0, records=len(live))},
            parent_manifest_sha256=parent_sha,
        )
        key, sha = app.vault.write_manifest(key_ref, manifest)
        app.catalog.commit_snapshot(
            SnapshotRecord(
                org=ORG,
                snapshot_id=run_id,
                created_at=created,
                kind=manifest.run_kind,
                manifest_key=key,
                manifest_sha256=sha,
                parent_id=parent.snapshot_id if parent else None,
                objects=1,
                records=len(live),
            ),
            expected_head=parent.snapshot_id if parent else None,
        )
        parent, parent_sha = manifest, sha
    facts = {
        "records": records,
        "snapshots": snapshots,
        "rows_written": written,
        "build_seconds": round(time.perf_counter() - t0, 1),
        "key_ref": key_ref,
        "live": live,
    }
    return app, facts


def bench_lookup(records: int, snapshots: int, change: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ov-bench-lookup-") as tmp:
        app, facts = build_vault(Path(tmp), records, snapshots, change)
        key_ref = facts["key_ref"]
        live = sorted(facts["live"])
        rnd = random.Random(1)
        probes = [fake_id(i) for i in rnd.sample(live, 20)]
        snaps = app.catalog.list_snapshots(ORG)
        t = time.perf_counter()
        warmer = Snapshots(app.catalog, app.vault)
        for snap in snaps:  # what a post-backup step does: chunk indexes + per-object range summaries
            warmer.build_indexes(ORG, key_ref, snap)
        facts["index_build_seconds"] = round(time.perf_counter() - t, 1)
        results = []
        for label, snap in (("newest", snaps[-1]), ("middle", snaps[len(snaps) // 2])):
            cold_ms, warm_ms, chunks = [], [], []
            for rid in probes:
                reader = Snapshots(app.catalog, app.vault, write_indexes=False)  # cold: nothing in memory
                t = time.perf_counter()
                m = reader.manifest(snap)
                lk = reader.lookup(ORG, key_ref, m, "Account", rid)
                cold_ms.append((time.perf_counter() - t) * 1000)
                chunks.append(reader.stats.data_chunks_decrypted)
                assert lk.state in ("live", "deleted"), (rid, lk.state)
                t = time.perf_counter()
                reader.lookup(ORG, key_ref, m, "Account", rid)
                warm_ms.append((time.perf_counter() - t) * 1000)
            results.append(
                {
                    "snapshot": label,
                    "layers": len(reader.manifest(snap).objects["Account"].layers),
                    "cold_ms_median": round(statistics.median(cold_ms), 1),
                    "cold_ms_max": round(max(cold_ms), 1),
                    "warm_ms_median": round(statistics.median(warm_ms), 2),
                    "chunks_decrypted_max": max(chunks),
                    "index_objects_read": reader.stats.index_objects_read,
                }
            )
        app.close()
        facts.pop("live")
        facts.pop("key_ref")
        return {**facts, "lookups": results}


# --- 1. restore throughput ----------------------------------------------------------------------------


def bench_restore(records: int) -> dict[str, Any]:
    import salesforce_emulator
    from bench.common import connect_emulator_org
    from orgvault.domain.restore_plan import RestoreMode
    from orgvault.services.restore import RestoreRequest
    from orgvault.services.restore_journal import JobStatus
    from salesforce_emulator import Org

    server_cls = getattr(salesforce_emulator, "EmulatorServer", None)
    if server_cls is None:
        from salesforce_emulator.server import EmulatorServer as server_cls
    out: dict[str, Any] = {"records": records}
    with tempfile.TemporaryDirectory(prefix="ov-bench-restore-") as tmp:
        org = Org(Path(tmp) / "org")
        with org.transaction():
            ids = [
                org.create(
                    "Account",
                    {
                        "Name": f"Customer {i:06d}",
                        "Rating": ("Hot", "Warm", "Cold")[i % 3],
                        "Industry": "Retail",
                        "Phone": f"+41 {i:06d}",
                    },
                )
                for i in range(records)
            ]
        emu = server_cls.start(org, daily_limit=10_000_000)
        try:
            settings = Settings.from_env({}, home=str(Path(tmp) / "home"))
            init_local(settings)
            app = open_app(settings)
            f = emu.facts
            connect_emulator_org(app, f, ORG)
            snap = app.backup_service().run_backup(ORG).snapshot
            from orgvault.cli_restore import make_restore_service

            with org.transaction():
                for rid in ids:
                    org.update("Account", rid, {"Rating": None})
            svc, writer = make_restore_service(app, ORG)
            writer.bulk_poll_seconds = 0.05
            t = time.perf_counter()
            rep = svc.run(
                RestoreRequest(
                    org=ORG,
                    object_name="Account",
                    mode=RestoreMode.REVERT_FIELDS,
                    snapshot_id=snap.snapshot_id,
                    fields=("Rating",),
                )
            )
            secs = time.perf_counter() - t
            assert rep.status is JobStatus.COMPLETED, rep.message
            ok = sum(1 for r in rep.results if r.success)
            out["revert_fields"] = {
                "records": ok,
                "seconds": round(secs, 2),
                "records_per_s": round(ok / secs),
                "api_calls": rep.api_calls,
                "api_calls_per_10k": round(rep.api_calls * 10_000 / ok, 1),
                "bulk_jobs": writer.bulk_jobs,
            }
            with org.transaction():
                for rid in ids:
                    org.delete("Account", rid)
            svc, writer = make_restore_service(app, ORG)
            writer.bulk_poll_seconds = 0.05
            t = time.perf_counter()
            rep = svc.run(RestoreRequest(org=ORG, object_name="Account", snapshot_id=snap.snapshot_id))
            secs = time.perf_counter() - t
            assert rep.status is JobStatus.COMPLETED, rep.message
            ok = sum(1 for r in rep.results if r.success)
            out["recreate_deleted"] = {
                "records": ok,
                "seconds": round(secs, 2),
                "records_per_s": round(ok / secs),
                "api_calls": rep.api_calls,
                "api_calls_per_10k": round(rep.api_calls * 10_000 / ok, 1),
                "bulk_jobs": writer.bulk_jobs,
            }
            app.close()
        finally:
            emu.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=10_000, help="records restored (throughput)")
    p.add_argument(
        "--lookup-records", type=int, default=1_000_000, help="records of the large object (lookup)"
    )
    p.add_argument("--snapshots", type=int, default=30)
    p.add_argument("--change", type=float, default=0.01, help="share of records changed per incremental")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--skip-restore", action="store_true")
    p.add_argument("--skip-lookup", action="store_true")
    a = p.parse_args(argv)
    if a.quick:
        a.records, a.lookup_records, a.snapshots = 1000, 20_000, 10
    result: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds")}
    if not a.skip_restore:
        result["restore"] = bench_restore(a.records)
    if not a.skip_lookup:
        result["lookup"] = bench_lookup(a.lookup_records, a.snapshots, a.change)
    OUT.mkdir(exist_ok=True)
    path = OUT / "restore.json"
    if path.exists() and (a.skip_restore or a.skip_lookup):  # keep the part not re-measured
        with contextlib.suppress(ValueError):
            result = {**json.loads(path.read_text()), **result}
    path.write_text(json.dumps(result, indent=2))
    print(f"{'measure':<44} {'value':>14}")
    for mode in ("revert_fields", "recreate_deleted"):
        r = result.get("restore", {}).get(mode)
        if r:
            print(f"{mode + ' records/s':<44} {r['records_per_s']:>14,}")
            print(f"{mode + ' API calls per 10k records':<44} {r['api_calls_per_10k']:>14,}")
    lk = result.get("lookup")
    if lk:
        print(f"{'lookup org: records x snapshots':<44} {lk['records']:>7,} x {lk['snapshots']:<4}")
        for r in lk["lookups"]:
            print(
                f"{'lookup at ' + r['snapshot'] + ' (' + str(r['layers']) + ' layers) cold ms median/max':<44} "
                f"{r['cold_ms_median']:>6} / {r['cold_ms_max']:<6}"
            )
            print(f"{'lookup at ' + r['snapshot'] + ' warm ms median':<44} {r['warm_ms_median']:>14}")
            print(
                f"{'lookup at ' + r['snapshot'] + ' data chunks decrypted (max)':<44} {r['chunks_decrypted_max']:>14}"
            )
    print(f"written to {OUT / 'restore.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
