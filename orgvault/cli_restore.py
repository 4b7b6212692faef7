"""``orgvault browse | history | diff | restore`` — registered into the main CLI by :func:`register`.

Exit codes are the main CLI's: 0 ok, 1 error (also: some records failed to restore), 2 usage,
3 paused (API allowance used up: run ``orgvault restore NAME --resume JOB`` later). Decrypted
records are printed, never written to disk by orgvault.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from orgvault.errors import ConfigError

WHERE_HELP = (
    "filter: FIELD OP VALUE [and ...], OP one of = != < <= > >= ~ (contains) ^ (starts with); "
    "also 'FIELD is null' / 'is not null'. Example: \"Name ~ acme and AnnualRevenue > 1000000\""
)


def register(sub: Any) -> None:
    """Add the browse/history/diff/restore subcommands to the main parser's subparsers. Each sets
    ``run(args, env) -> exit code``."""
    b = sub.add_parser("browse", help="records of an object as they were at a snapshot or a time")
    b.add_argument("name")
    b.add_argument("object")
    when = b.add_mutually_exclusive_group()
    when.add_argument("--snapshot", help="snapshot id (default: the newest)")
    when.add_argument("--at", help="point in time: the newest snapshot taken at or before it (ISO 8601)")
    b.add_argument("--where", action="append", help=WHERE_HELP)
    b.add_argument("--fields", help="comma-separated fields to show (default: all)")
    b.add_argument("--ids", nargs="+", help="only these record ids (found through the id index)")
    b.add_argument("--limit", type=int, default=None, help="at most this many records")
    b.add_argument("--json", action="store_true", help="one JSON document on stdout")
    b.set_defaults(run=cmd_browse)

    h = sub.add_parser("history", help="every version of one record across snapshots, with what changed")
    h.add_argument("name")
    h.add_argument("record_id")
    h.add_argument("--object", help="object name (default: from the id's key prefix)")
    h.add_argument("--json", action="store_true")
    h.set_defaults(run=cmd_history)

    d = sub.add_parser("diff", help="records added, deleted and changed between two snapshots")
    d.add_argument("name")
    d.add_argument("snapshot_a")
    d.add_argument("snapshot_b")
    d.add_argument("object", nargs="?")
    d.add_argument("--limit", type=int, default=20, help="records shown per object and kind (text output)")
    d.add_argument("--json", action="store_true")
    d.set_defaults(run=cmd_diff)

    r = sub.add_parser("restore", help="put backed-up records back (same org, another org, a sandbox)")
    r.add_argument("name", help="the backed-up org")
    r.add_argument("object", nargs="?", help="object to restore (not needed with --resume)")
    when = r.add_mutually_exclusive_group()
    when.add_argument("--snapshot", help="snapshot id (default: the newest)")
    when.add_argument("--at", help="point in time (ISO 8601)")
    r.add_argument("--ids", nargs="+", help="record ids to restore")
    r.add_argument("--where", action="append", help=WHERE_HELP)
    r.add_argument("--with-children", action="store_true", help="also restore their child records and files")
    r.add_argument("--target", help="another connected org to restore into (default: the same org)")
    r.add_argument(
        "--mode", choices=["revert-fields", "recreate-deleted", "upsert"], default="recreate-deleted"
    )
    r.add_argument("--external-id", help="external id field (for --mode upsert)")
    r.add_argument("--fields", help="comma-separated fields to revert (revert-fields; default: all changed)")
    r.add_argument(
        "--skip-missing-fields",
        action="store_true",
        help="restore even though the target lacks some backed-up fields (they are dropped)",
    )
    r.add_argument(
        "--dry-run", action="store_true", help="print exactly what would be written; write nothing"
    )
    r.add_argument("--resume", metavar="JOB", help="resume a paused or interrupted restore job")
    r.add_argument("--list", action="store_true", help="list this org's restore jobs")
    r.add_argument("--json", action="store_true")
    r.set_defaults(run=cmd_restore)


# --- helpers -------------------------------------------------------------------------------------


def _open(args: argparse.Namespace, env: dict[str, str]) -> Any:
    from orgvault.bootstrap import open_app
    from orgvault.cli import _settings

    return open_app(_settings(args, env))


def _snapshots(app: Any) -> Any:
    from orgvault.services.browse import Snapshots

    return Snapshots(app.catalog, app.vault)


def _fields(text: str | None) -> list[str] | None:
    return [f.strip() for f in text.split(",") if f.strip()] if text else None


def _cell(v: Any, width: int = 40) -> str:
    s = "" if v is None else (json.dumps(v) if isinstance(v, dict | list) else str(v))
    s = s.replace("\n", "\\n")
    return s if len(s) <= width else s[: width - 1] + "…"


_FIRST = ("Name", "FirstName", "LastName", "Subject", "Title", "CaseNumber", "StageName", "Email")


def _interesting_first(fields: tuple[str, ...]) -> list[str]:
    """Name-like fields first, system bookkeeping last (for the default columns of browse)."""
    from orgvault.domain.restore_plan import SYSTEM_FIELDS

    first = [f for f in _FIRST if f in fields]
    rest = [f for f in fields if f not in first and f.lower() not in SYSTEM_FIELDS and f != "OwnerId"]
    return first + rest + [f for f in fields if f not in first and f not in rest]


def _print_json(value: Any) -> None:
    from orgvault.cli import print_json

    print_json(value)


# --- commands ------------------------------------------------------------------------------------


def cmd_browse(args: argparse.Namespace, env: dict[str, str]) -> int:
    from orgvault.services.browse import browse

    app = _open(args, env)
    try:
        conn = app.catalog.get_org(args.name)
        snaps = _snapshots(app)
        res = browse(
            snaps,
            args.name,
            args.object,
            snapshot_id=args.snapshot,
            at=args.at,
            where=args.where,
            fields=_fields(args.fields),
            ids=args.ids,
            limit=args.limit,
            key_ref=conn.key_ref,
        )
        records = list(res.records)
    finally:
        app.close()
    if args.json:
        _print_json({"snapshot_id": res.snapshot.snapshot_id, "object": res.object_name, "records": records})
        return 0
    names = list(dict.fromkeys(["Id", *(_fields(args.fields) or _interesting_first(res.fields))]))
    shown = names[:8] if not args.fields else names
    print(
        f"# {res.object_name} at snapshot {res.snapshot.snapshot_id} ({res.snapshot.created_at:%Y-%m-%d %H:%M:%S})"
        f" — {len(records)} records"
        + (
            ""
            if args.fields or len(names) <= 8
            else f"; showing {len(shown)} of {len(names)} fields (use --fields)"
        )
    )
    print(" | ".join(shown))
    for r in records:
        print(" | ".join(_cell(r.get(n)) for n in shown))
    return 0


def cmd_history(args: argparse.Namespace, env: dict[str, str]) -> int:
    from orgvault.services.history import record_history

    app = _open(args, env)
    try:
        conn = app.catalog.get_org(args.name)
        hist = record_history(
            _snapshots(app), args.name, args.record_id, object_name=args.object, key_ref=conn.key_ref
        )
    finally:
        app.close()
    if args.json:
        _print_json(hist)
        return 0
    if not hist.versions:
        print(f"{args.record_id} is in none of the {hist.snapshots_searched} snapshots of {args.name}")
        return 1
    print(
        f"# {hist.object_name} {hist.record_id}: {len(hist.versions)} versions in {hist.snapshots_searched} "
        f"snapshots ({hist.chunks_decrypted} chunks decrypted)"
    )
    for v in hist.versions:
        span = f"{v.snapshot_id}" + (
            f" .. {v.until_snapshot_id}" if v.until_snapshot_id != v.snapshot_id else ""
        )
        print(f"{v.created_at:%Y-%m-%d %H:%M:%S}  {v.state:<8} {span}")
        if v.state in ("created", "restored") and v.record:
            for k, val in v.record.items():
                print(f"    {k} = {_cell(val, 80)}")
        for k, (old, new) in v.changes.items():
            print(f"    {k}: {_cell(old, 60)} -> {_cell(new, 60)}")
    return 0


def cmd_diff(args: argparse.Namespace, env: dict[str, str]) -> int:
    from orgvault.services.diff import diff_snapshots

    app = _open(args, env)
    try:
        conn = app.catalog.get_org(args.name)
        d = diff_snapshots(
            _snapshots(app), args.name, args.snapshot_a, args.snapshot_b, args.object, key_ref=conn.key_ref
        )
    finally:
        app.close()
    if args.json:
        _print_json(
            {
                "older": d.older.snapshot_id,
                "newer": d.newer.snapshot_id,
                "objects": [
                    {
                        "object": o.object_name,
                        "note": o.note,
                        "added": o.added,
                        "deleted": o.deleted,
                        "changed": [
                            {"Id": i, "changes": {k: list(v) for k, v in c.items()}} for i, c in o.changed
                        ],
                    }
                    for o in d.objects
                    if not o.empty
                ],
            }
        )
        return 0
    print(f"# {args.name}: {d.older.snapshot_id} -> {d.newer.snapshot_id}")
    changed_any = False
    for o in d.objects:
        if o.empty:
            continue
        changed_any = True
        print(
            f"{o.object_name}: +{len(o.added)} added, -{len(o.deleted)} deleted, ~{len(o.changed)} changed"
            + (f" ({o.note})" if o.note else "")
        )
        for r in o.added[: args.limit]:
            print(f"  + {r.get('Id')}  {_cell(r.get('Name') or r.get('Subject') or r.get('Title'))}")
        for r in o.deleted[: args.limit]:
            print(f"  - {r.get('Id')}  {_cell(r.get('Name') or r.get('Subject') or r.get('Title'))}")
        for rid, changes in o.changed[: args.limit]:
            print(
                f"  ~ {rid}  "
                + "; ".join(f"{k}: {_cell(a, 30)} -> {_cell(b, 30)}" for k, (a, b) in changes.items())
            )
    if not changed_any:
        print("no differences")
    return 0


def make_restore_service(app: Any, org: str, target: str | None = None, **kw: Any) -> tuple[Any, Any]:
    """The restore service for ``org`` (backed up) writing into ``target`` (default: ``org``)."""
    from orgvault.adapters.salesforce_writer import SalesforceWriter
    from orgvault.services.restore import RestoreService
    from orgvault.services.restore_journal import RestoreJournal

    conn = app.catalog.get_org(org)
    target_conn = app.catalog.get_org(target) if target else conn
    writer = SalesforceWriter(app.source_for(target_conn))
    journal = RestoreJournal(app.store, app.keys, org, conn.key_ref)
    return RestoreService(_snapshots(app), writer, journal, key_ref=conn.key_ref, **kw), writer


def cmd_restore(args: argparse.Namespace, env: dict[str, str]) -> int:
    from orgvault.domain.restore_plan import RestoreMode
    from orgvault.services.restore import RestoreRequest
    from orgvault.services.restore_journal import JobStatus, RestoreJournal

    app = _open(args, env)
    try:
        conn = app.catalog.get_org(args.name)
        if args.list:
            journal = RestoreJournal(app.store, app.keys, args.name, conn.key_ref)
            jobs = [journal.load(j) for j in journal.list_jobs()]
            rows = [
                {
                    "job_id": j.job_id,
                    "status": str(j.status),
                    "object": j.request.get("object_name"),
                    "mode": j.request.get("mode"),
                    "target": j.request.get("target") or args.name,
                    "message": j.message,
                }
                for j in jobs
            ]
            if args.json:
                _print_json(rows)
            for r in [] if args.json else rows:
                print(
                    f"{r['job_id']}  {r['status']:<9} {r['mode']:<16} {r['object']} -> {r['target']}  {r['message']}"
                )
            return 0
        if args.resume:
            journal = RestoreJournal(app.store, app.keys, args.name, conn.key_ref)
            target = journal.load(args.resume).request.get("target")
            svc, writer = make_restore_service(app, args.name, target)
            report = svc.run(job_id=args.resume)
        else:
            if not args.object:
                raise ConfigError("restore needs an OBJECT (or --resume JOB)")
            req = RestoreRequest(
                org=args.name,
                object_name=args.object,
                mode=RestoreMode(args.mode),
                snapshot_id=args.snapshot,
                at=args.at,
                ids=tuple(args.ids or ()),
                where=" and ".join(args.where) if args.where else None,
                with_children=args.with_children,
                target=args.target,
                external_id_field=args.external_id,
                skip_missing_fields=args.skip_missing_fields,
                fields=tuple(_fields(args.fields) or ()),
                dry_run=args.dry_run,
            )
            svc, writer = make_restore_service(app, args.name, args.target)
            report = svc.run(req)
    finally:
        app.close()
    failed = [r for r in report.results if not r.success]
    if args.json:
        _print_json(
            {
                "job_id": report.job_id,
                "status": str(report.status),
                "snapshot_id": report.snapshot_id,
                "mode": str(report.mode),
                "dry_run": report.dry_run,
                "counts": report.counts(),
                "api_calls": report.api_calls,
                "message": report.message,
                "planned": [
                    {
                        "object": p.object_name,
                        "operation": p.operation,
                        "source_id": p.source_id,
                        "target_id": p.target_id,
                        "fields": dict(p.values),
                    }
                    for p in report.planned
                ],
                "results": [
                    {
                        "object": r.object_name,
                        "operation": r.operation,
                        "source_id": r.source_id,
                        "target_id": r.target_id,
                        "success": r.success,
                        "errors": list(r.errors),
                        "note": r.note,
                    }
                    for r in report.results
                ],
                "id_map": report.id_map,
            }
        )
    else:
        if report.dry_run:
            print(
                f"# dry run of a {report.mode} restore from snapshot {report.snapshot_id}: "
                f"{len(report.planned)} writes, nothing written"
            )
            for p in report.planned:
                print(p.line())
        else:
            print(
                f"restore job {report.job_id} {report.status}: "
                + ", ".join(f"{k} {v}" for k, v in report.counts().items())
                + f"; {report.api_calls} API calls"
            )
            for r in failed[:50]:
                print(
                    f"  FAILED {r.operation} {r.object_name} {r.source_id}: {'; '.join(r.errors)}",
                    file=sys.stderr,
                )
            notes = [r for r in report.results if r.note]
            for r in notes[:20]:
                print(f"  note: {r.object_name} {r.source_id}: {r.note}", file=sys.stderr)
        if report.message:
            print(report.message, file=sys.stderr)
    if report.status is JobStatus.PAUSED:
        return 3
    return 1 if failed else 0


Runner = Callable[[argparse.Namespace, dict[str, str]], int]
