"""``orgvault demo``: the whole product on one machine, in well under a minute.

Starts the bundled Salesforce emulator in-process with a seeded org, connects it, runs a full
backup, changes the org (updates, deletes, undeletes, a purge, a new field, new files), runs an
incremental, verifies the snapshot, compares it with the org's true state (every record, every
field, every file byte) and prints a summary. Nothing leaves the machine; the vault lives in a
temporary directory unless ``--keep DIR`` is given.

:func:`compare_snapshot_with_org` is also what the integration tests use to prove a snapshot equals
the org.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from orgvault.domain.layout import FileRef
from orgvault.domain.records import canonical_value

DEMO_ORG = "demo"


@dataclass
class Comparison:
    """How a snapshot compares with the org's truth. ``ok`` when nothing differs."""

    objects: int = 0
    records: int = 0
    files: int = 0
    file_bytes: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def add(self, text: str) -> None:
        if len(self.differences) < 200:
            self.differences.append(text)


def _canon(value: Any, ftype: str) -> Any:
    try:
        return canonical_value(value, ftype)
    except ValueError:
        return value


def compare_snapshot_with_org(
    app: Any, org_name: str, emu_org: Any, snapshot_id: str | None = None
) -> Comparison:
    """Compare every object of the snapshot (default: the head) with ``emu_org.true_records``:
    same live Ids, same value for every stored (non-calculated) field, same bytes for every file."""
    from orgvault.services.snapshot_reader import SnapshotReader

    snap = (
        app.catalog.get_snapshot(org_name, snapshot_id)
        if snapshot_id
        else app.catalog.head_snapshot(org_name)
    )
    reader = SnapshotReader.open(app.vault, snap)
    result = Comparison()
    for name in reader.objects():
        entry = reader.entry(name)
        types = dict(entry.fields)
        truth = {r["Id"]: r for r in emu_org.true_records(name)}
        seen: set[str] = set()
        result.objects += 1
        for rec in reader.iter_records(name):
            rid = rec["Id"]
            result.records += 1
            if rid in seen:
                result.add(f"{name} {rid}: appears twice")
            seen.add(rid)
            true = truth.get(rid)
            if true is None:
                result.add(f"{name} {rid}: in the snapshot but not live in the org")
                continue
            for fname, value in rec.items():
                ftype = types.get(fname, "string")
                if ftype.lower() == "base64":
                    ref = FileRef.from_value(value)
                    expected = true.get(fname) if fname in true else emu_org.read_blob(name, rid, fname)
                    if ref is None:
                        if expected:
                            result.add(f"{name} {rid}.{fname}: file missing from the snapshot")
                        continue
                    body = b"".join(
                        app.vault.read_file_stream(org_name, ref.content_id, expected_size=ref.size)
                    )
                    result.files += 1
                    result.file_bytes += len(body)
                    if isinstance(expected, str):
                        expected = base64.b64decode(expected)
                    if body != expected:
                        result.add(
                            f"{name} {rid}.{fname}: file bytes differ ({len(body)} vs {len(expected or b'')})"
                        )
                    continue
                if fname not in true:
                    continue  # calculated fields are not stored in the org's truth
                want = _canon(true[fname], ftype)
                got = _canon(value, ftype)
                if want != got:
                    result.add(f"{name} {rid}.{fname}: snapshot {got!r} != org {want!r}")
            missing = [f for f in true if f not in rec]
            if missing:
                result.add(f"{name} {rid}: fields missing from the snapshot: {', '.join(missing[:5])}")
        for rid in truth.keys() - seen:
            result.add(f"{name} {rid}: live in the org but missing from the snapshot")
    return result


def _mutate(emu_org: Any, seed: int) -> dict[str, Any]:
    """Change the org the way a working day does: a new custom field, updates, deletes, new files;
    later some deleted records are undeleted and some purged from the recycle bin (they vanish
    without a trace: only id reconciliation notices). Returns counts of what changed."""
    from salesforce_emulator import activity

    emu_org.clock.advance(900)  # past the incremental's overlap window
    field = activity.add_custom_field(
        emu_org, "Account", "Demo_Score__c", "double", seed=seed, fill_share=0.3
    )
    first = activity.mutate(emu_org, seed=seed, update_share=0.03, delete_share=0.01, new_files=3)
    emu_org.clock.advance(60)
    second = activity.mutate(emu_org, seed=seed + 1, update_share=0.0, delete_share=0.0, undelete=3, purge=2)
    emu_org.clock.advance(60)

    def count(part: dict[str, Any], key: str) -> int:
        return sum(len(v) for v in part.get(key, {}).values())

    return {
        "new_field": f"{field['sobject']}.{field['field']}",
        "updated": count(first, "updated") + len(field["updated"]),
        "deleted": count(first, "deleted"),
        "undeleted": count(second, "undeleted"),
        "purged": count(second, "purged"),
        "new_files": count(first, "created"),
    }


def run_demo(
    *,
    scale: int = 3000,
    keep: str | None = None,
    progress: Any = None,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    seed: int = 7,
) -> dict[str, Any]:
    """Run the demo end to end and return its summary (``ok``: verify passed and the snapshot
    equals the org's true state)."""
    from orgvault.bootstrap import init_local, open_app
    from orgvault.services.orgs import connect_org
    from orgvault.services.verify import verify_snapshot
    from orgvault.settings import Settings
    from salesforce_emulator import EmulatorServer, Org

    out = out or sys.stderr
    t_start = time.monotonic()
    home = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="orgvault-demo-"))
    env = dict(env or os.environ)
    env.pop("ORGVAULT_MASTER_KEY", None)
    # The product's defaults: the purges of the demo are caught by the incremental's count check,
    # which reconciles the ids of just the objects whose counts disagree.
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("ORGVAULT_")}, home=str(home))

    def say(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    summary: dict[str, Any] = {"vault": str(home), "scale": scale}
    try:
        init_local(settings)
        say(f"● generating an emulator org of about {scale:,} records …")
        t0 = time.monotonic()
        emu_org = Org.generate(home / "emulator-org", scale=scale, seed=seed)
        summary["generate_seconds"] = round(time.monotonic() - t0, 2)
        with EmulatorServer.start(org=emu_org) as emu:
            facts = emu.facts
            app = open_app(settings)
            try:
                connect_org(
                    catalog=app.catalog,
                    keys=app.keys,
                    secrets=app.secrets,
                    name=DEMO_ORG,
                    instance_url=facts.instance_url,
                    login_url=facts.login_url,
                    auth_method="password",
                    credentials={"username": facts.username, "password": facts.password},
                    test_login=app.make_source,
                    replace_existing=True,
                )
                say(f"● connected org {DEMO_ORG!r} ({facts.org_id}) at {facts.instance_url}")
                say("● full backup")
                full = app.backup_service().run_backup(DEMO_ORG, progress=progress)
                say(_line(full))
                say("● changing the org: updates, deletes, undeletes, a purge, a new field, new files")
                summary["changes"] = _mutate(emu_org, seed + 1)
                say("  " + ", ".join(f"{k}: {v}" for k, v in summary["changes"].items()))
                say("● incremental backup")
                inc = app.backup_service().run_backup(DEMO_ORG, progress=progress)
                say(_line(inc))
                reconciled = {
                    cp.object_name: str(cp.cursor["reconcile_reason"])
                    for cp in app.catalog.list_checkpoints(DEMO_ORG, inc.run.run_id)
                    if cp.cursor.get("reconcile_reason")
                }
                for name, reason in reconciled.items():
                    say(f"  {name}: {reason} → ids reconciled with the org (how purges are caught)")
                say("● verify")
                report = verify_snapshot(app.catalog, app.vault, DEMO_ORG)
                say("  " + report.summary())
                say("● compare the snapshot with the org's true state")
                cmp = compare_snapshot_with_org(app, DEMO_ORG, emu_org)
                say(
                    f"  {cmp.objects} objects, {cmp.records:,} records, {cmp.files} files "
                    f"({cmp.file_bytes:,} bytes): "
                    + ("identical" if cmp.ok else f"{len(cmp.differences)} differences")
                )
                for d in cmp.differences[:10]:
                    say(f"    {d}")
                say("● restore: delete an account with its contacts and put it back; revert a blanked field")
                from orgvault.services.restore_demo import demo_restore

                summary["restore"] = demo_restore(app, DEMO_ORG, emu_org, say)
            finally:
                app.close()
        summary.update(
            {
                "full": _result_dict(full),
                "incremental": {**_result_dict(inc), "reconciled": reconciled},
                "verify_ok": report.ok,
                "verify": report.to_json(),
                "identical_to_org": cmp.ok,
                "differences": cmp.differences[:50],
                "objects": cmp.objects,
                "records": cmp.records,
                "files": cmp.files,
                "file_bytes": cmp.file_bytes,
                "seconds": round(time.monotonic() - t_start, 2),
            }
        )
        summary["ok"] = report.ok and cmp.ok and summary.get("restore", {}).get("ok", True)
        _print_summary(summary, say)
        return summary
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


def _result_dict(r: Any) -> dict[str, Any]:
    return {
        "snapshot_id": r.snapshot.snapshot_id,
        "kind": r.snapshot.kind.value,
        "objects": r.objects,
        "records": r.records,
        "records_read": r.records_read,
        "files_downloaded": r.files,
        "plain_bytes": r.plain_bytes,
        "stored_bytes": r.stored_bytes,
        "api_calls": r.api_calls,
        "seconds": round(r.seconds, 2),
        "skipped": len(r.skipped),
    }


def _line(r: Any) -> str:
    from orgvault.cli import human_bytes

    return (
        f"  snapshot {r.snapshot.snapshot_id}: {r.objects} objects, {r.records:,} records "
        f"({r.records_read:,} read), {r.files} files downloaded, {human_bytes(r.plain_bytes)} → "
        f"{human_bytes(r.stored_bytes)} stored, {r.api_calls} API calls, {r.seconds:.1f} s"
    )


def _print_summary(s: dict[str, Any], say: Any) -> None:
    from orgvault.cli import human_bytes

    f, i = s["full"], s["incremental"]
    say("")
    say("summary")
    say(f"  objects backed up        {s['objects']}")
    say(f"  records in the snapshot  {s['records']:,}")
    say(f"  files                    {s['files']} ({human_bytes(s['file_bytes'])})")
    say(
        f"  full backup              {f['records_read']:,} records read, {human_bytes(f['plain_bytes'])} → "
        f"{human_bytes(f['stored_bytes'])} stored, {f['api_calls']} API calls, {f['seconds']} s"
    )
    say(
        f"  incremental              {i['records_read']:,} records read, {human_bytes(i['plain_bytes'])} → "
        f"{human_bytes(i['stored_bytes'])} stored, {i['api_calls']} API calls, {i['seconds']} s"
    )
    say(f"  verify                   {'OK' if s['verify_ok'] else 'FAILED'}")
    say(f"  equals the org's truth   {'yes' if s['identical_to_org'] else 'NO'}")
    say(f"  total time               {s['seconds']} s   (vault: {s['vault']})")
