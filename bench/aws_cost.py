"""AWS request accounting of a backup on the AWS adapters, under moto, with the botocore metering hooks.

    .venv/bin/python -m bench.aws_cost [--scale 20000] [--scales 20000,100000] [--change 0.01]

For each scale, one emulator org (served in this process) is backed up by an App wired by
``open_app`` in AWS mode (S3 ObjectStore, DynamoDB Catalog, KMS KeyProvider, Secrets Manager
SecretStore) on moto, driven the way the Step Functions workflow drives the Lambda handlers: one
``start_run``, then per object ``extract_step`` calls (each with a fresh ``BackupService``, catalog
checkpoint re-read, as a Lambda invocation does) until ``done``, then ``finalize_run``. Engine
settings are the production defaults (20,000 records / 8 MiB per chunk). Phases, each metered on its
own (``orgvault.adapters.aws_metering.AwsMeter`` on boto3's default session):

1. **connect** — one-time: the org's KMS key, its Secrets Manager secret, the catalog item;
2. **full** — the first backup;
3. **incremental** — after ``--change`` (1 %) of every object's records is updated (and 0.1 %
   deleted): the daily run;
4. **incremental + reconcile** — the same again, on a run that also reads every Id to find hard
   deletes (the engine does this every ``reconcile_every`` = 7 runs).

Counted: every AWS request by operation (KMS, S3 PUT/GET/HEAD/LIST, DynamoDB, Secrets Manager),
DynamoDB read/write capacity units (``ReturnConsumedCapacity=TOTAL``; moto omits it on
``TransactWriteItems``, which the meter then estimates at 2 WCU per item-KB, as DynamoDB charges),
S3 bytes stored, Step Functions state transitions and Lambda invocations/seconds implied by the
workflow's shape (Start, Map, per object Extract+Status per step, Wait per Bulk poll, ObjectDone,
Finalize, Succeeded). Normalized per 1M records (of the org, for incrementals). Prints a table and
writes ``bench/out/aws_cost.json``.

Caveat: moto runs in this process, so the seconds are not AWS latencies; Lambda seconds here are
this process's wall time per handler call (emulator and moto included).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"
ORG = "bench"
REGION = "us-east-1"
#: Lambda memory per handler, as deployed (infra_cdk/constructs/functions.py).
LAMBDA_MB = {"backup_start": 512, "backup_extract": 1769, "backup_finalize": 1024}


@dataclass
class Workflow:
    """What the Step Functions workflow would have done for one run."""

    transitions: int = 0
    invocations: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LAMBDA_MB, 0))
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LAMBDA_MB, 0.0))
    waits: int = 0
    objects: int = 0
    records_written: int = 0

    def call(self, name: str, fn: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.invocations[name] += 1
            self.seconds[name] += time.perf_counter() - t0

    def gb_seconds(self) -> float:
        return sum(self.seconds[n] * LAMBDA_MB[n] / 1024 for n in LAMBDA_MB)


def drive_run(app: Any, *, step_seconds: float, full: bool = False) -> tuple[Any, Workflow]:
    """One run, shaped as the state machine runs it (see infra_cdk/constructs/workflow.py)."""
    wf = Workflow()
    owner = f"arn:aws:states:{REGION}:123456789012:execution:orgvault-backup:{time.time_ns()}"
    plan = wf.call(
        "backup_start",
        lambda: app.backup_service(owner=owner, owner_alive=lambda _o: None).start_run(ORG, full=full),
    )
    wf.transitions += 2  # Start task, Objects map
    wf.objects = len(plan.objects)
    for obj in plan.objects:
        while True:
            service = app.backup_service(owner=f"extract:{plan.run_id}", owner_alive=lambda _o: None)
            res = wf.call(
                "backup_extract",
                lambda s=service, o=obj: s.extract_step(ORG, plan.run_id, o, time_budget_s=step_seconds),
            )
            wf.records_written += res.records
            wf.transitions += 2  # Extract task, Status choice
            if res.status == "done":
                wf.transitions += 1  # ObjectDone
                break
            if res.status == "wait":
                wf.transitions += 1  # WaitForBulk
                wf.waits += 1
                time.sleep(min(res.wait_seconds, 0.05))  # the emulator's Bulk jobs finish quickly
    snap = wf.call(
        "backup_finalize",
        lambda: app.backup_service(owner=owner, owner_alive=lambda _o: None).finalize_run(ORG, plan.run_id),
    )
    wf.transitions += 2  # Finalize task, Succeeded
    return snap, wf


def bucket_bytes(s3: Any, bucket: str) -> tuple[int, int]:
    usage = bucket_usage(s3, bucket)
    return usage["objects"], usage["bytes"]


def bucket_usage(s3: Any, bucket: str) -> dict[str, Any]:
    """Objects and bytes in the vault bucket, split by kind (record chunks, file bodies, manifests)."""
    kinds = {"chunks": 0, "files": 0, "manifests": 0, "other": 0}
    objects = size = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            objects += 1
            size += int(o["Size"])
            key = o["Key"]
            kind = (
                "chunks"
                if "/snapshots/" in key
                else "files"
                if "/files/" in key
                else "manifests"
                if "/manifests/" in key
                else "other"
            )
            kinds[kind] += int(o["Size"])
    return {"objects": objects, "bytes": size, "bytes_by_kind": kinds}


def table_bytes(dynamodb: Any, table: str) -> tuple[int, int]:
    """(items, bytes) of the catalog table, bytes estimated as DynamoDB sizes items (names + values)."""
    items = size = 0
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = dynamodb.scan(**kwargs)
        for item in page.get("Items", []):
            items += 1
            size += len(json.dumps(item, separators=(",", ":")))
        if "LastEvaluatedKey" not in page:
            return items, size
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def phase_summary(meter: Any, wf: Workflow | None, *, records: int, org_records: int) -> dict[str, Any]:
    snap = meter.snapshot()
    req = snap["requests"]

    def total(prefix: str, ops: tuple[str, ...] | None = None) -> int:
        return sum(
            n
            for k, n in req.items()
            if k.startswith(prefix + ".") and (ops is None or k.split(".", 1)[1] in ops)
        )

    counts = {
        "kms": total("kms"),
        "kms_generate_data_key": req.get("kms.GenerateDataKey", 0),
        "kms_decrypt": req.get("kms.Decrypt", 0),
        "s3_put_class": total(
            "s3",
            (
                "PutObject",
                "CreateMultipartUpload",
                "UploadPart",
                "CompleteMultipartUpload",
                "ListObjectsV2",
                "ListObjects",
                "CopyObject",
            ),
        ),
        "s3_put": total(
            "s3", ("PutObject", "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload")
        ),
        "s3_get_class": total("s3", ("GetObject", "HeadObject")),
        "s3_get": req.get("s3.GetObject", 0),
        "s3_head": req.get("s3.HeadObject", 0),
        "dynamodb_requests": total("dynamodb"),
        "dynamodb_rru": snap["dynamodb"]["read_units"],
        "dynamodb_wru": snap["dynamodb"]["write_units"],
        "secretsmanager": total("secretsmanager"),
    }
    out: dict[str, Any] = {"records": records, "org_records": org_records, "counts": counts, "meter": snap}
    if org_records:
        out["per_1m_org_records"] = {k: v / org_records * 1_000_000 for k, v in counts.items()}
    if wf is not None:
        out["workflow"] = {
            "objects": wf.objects,
            "records_written": wf.records_written,
            "state_transitions": wf.transitions,
            "bulk_waits": wf.waits,
            "lambda_invocations": wf.invocations,
            "lambda_seconds": {k: round(v, 3) for k, v in wf.seconds.items()},
            "lambda_gb_seconds": round(wf.gb_seconds(), 3),
        }
        if org_records:
            out["per_1m_org_records"].update(
                {
                    "state_transitions": wf.transitions / org_records * 1_000_000,
                    "lambda_invocations": sum(wf.invocations.values()) / org_records * 1_000_000,
                    "lambda_gb_seconds": wf.gb_seconds() / org_records * 1_000_000,
                }
            )
    meter.reset()
    return out


def _count(value: Any) -> int:
    """How many things a mutation summary entry names (counts, lists of ids, nested per object)."""
    if isinstance(value, dict):
        return sum(_count(v) for v in value.values())
    if isinstance(value, list | tuple | set):
        return len(value)
    return int(value) if isinstance(value, int | float) else 0


def bench_scale(scale: int, *, change: float, seed: int, step_seconds: float) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from bench.common import connect_emulator_org
    from orgvault.adapters.aws_dynamodb import create_catalog_table
    from orgvault.adapters.aws_metering import AwsMeter
    from orgvault.bootstrap import default_source_factory, open_app
    from orgvault.settings import Settings
    from salesforce_emulator import EmulatorServer, Org, activity

    for k, v in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        os.environ[k] = v
    os.environ.pop("AWS_PROFILE", None)
    work = Path(tempfile.mkdtemp(prefix=f"ovawscost-{scale}-"))
    t0 = time.perf_counter()
    org = Org.generate(work / "org", scale=scale, seed=seed)
    gen_s = time.perf_counter() - t0
    result: dict[str, Any] = {"scale": scale, "generate_seconds": round(gen_s, 1), "change_share": change}
    with EmulatorServer.start(org=org, daily_limit=10_000_000) as emu, mock_aws():
        setup = boto3.Session(region_name=REGION)  # not metered
        s3, ddb = setup.client("s3"), setup.client("dynamodb")
        bucket, table = f"orgvault-bench-{os.getpid()}", "orgvault-catalog"
        s3.create_bucket(Bucket=bucket)
        create_catalog_table(ddb, table)
        meter = AwsMeter()
        boto3.setup_default_session(region_name=REGION)
        meter.attach_default_session()  # every adapter client built by open_app from here on

        def make_app(**backup: Any) -> Any:
            settings = Settings.from_env(
                {
                    "ORGVAULT_MODE": "aws",
                    "ORGVAULT_BUCKET": bucket,
                    "ORGVAULT_TABLE": table,
                    "AWS_DEFAULT_REGION": REGION,
                },
                **backup,
            )
            factory = default_source_factory(settings, sleep=lambda _s: None, bulk_poll_seconds=0.0)
            return open_app(settings, source_factory=factory)

        app = make_app()
        facts = emu.facts
        connect_emulator_org(app, facts, ORG)
        result["connect"] = phase_summary(meter, None, records=0, org_records=0)

        def stored() -> dict[str, int]:
            usage = bucket_usage(s3, bucket)
            kinds = usage["bytes_by_kind"]
            return {
                "record_bytes": kinds["chunks"] + kinds["manifests"] + kinds["other"],
                "file_bytes": kinds["files"],
                "catalog_bytes": table_bytes(ddb, table)[1],
                "s3_objects": usage["objects"],
            }

        def grown(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
            return {k: after[k] - before[k] for k in after}

        before = stored()
        t0 = time.perf_counter()
        full, wf = drive_run(app, step_seconds=step_seconds)
        full_s = time.perf_counter() - t0
        result["full"] = phase_summary(meter, wf, records=full.records, org_records=full.records)
        result["full"].update(seconds=round(full_s, 2), stored_added=grown(before, stored()))

        for phase, reconcile_app in (
            ("incremental", None),
            ("incremental_reconcile", make_app(reconcile_every=1)),
        ):
            org.clock.advance(900)  # past the overlap window: the incremental reads only what changed
            mutated = activity.mutate(
                org,
                seed=seed + (1 if phase == "incremental" else 2),
                update_share=change,
                delete_share=change / 10,
            )
            org.clock.advance(60)
            meter.reset()  # the second app's construction is not part of the run
            before = stored()
            t0 = time.perf_counter()
            snap, wf = drive_run(reconcile_app or app, step_seconds=step_seconds)
            secs = time.perf_counter() - t0
            result[phase] = phase_summary(meter, wf, records=snap.records, org_records=snap.records)
            result[phase].update(
                seconds=round(secs, 2),
                kind=str(snap.kind),
                changed={k: _count(v) for k, v in mutated.items()},
                stored_added=grown(before, stored()),
            )
        items, ddb_bytes = table_bytes(ddb, table)
        result["catalog"] = {"items": items, "bytes_estimate": ddb_bytes}
        result["s3_total"] = bucket_usage(s3, bucket)
        meter.reset()
    return result


def table_text(results: list[dict[str, Any]]) -> str:
    cols = [
        ("kms", "KMS"),
        ("s3_put_class", "S3 PUT*"),
        ("s3_get_class", "S3 GET*"),
        ("dynamodb_wru", "DDB WRU"),
        ("dynamodb_rru", "DDB RRU"),
        ("secretsmanager", "SecretsMgr"),
        ("state_transitions", "SFN trans."),
        ("lambda_invocations", "Lambda inv."),
        ("lambda_gb_seconds", "Lambda GB-s"),
    ]
    lines = [f"{'scale':>8} {'phase':<22} {'records':>8} " + " ".join(f"{h:>11}" for _, h in cols)]
    for r in results:
        for phase in ("full", "incremental", "incremental_reconcile"):
            p = r[phase]
            raw = {
                **p["counts"],
                "state_transitions": p["workflow"]["state_transitions"],
                "lambda_invocations": sum(p["workflow"]["lambda_invocations"].values()),
                "lambda_gb_seconds": p["workflow"]["lambda_gb_seconds"],
            }
            lines.append(
                f"{r['scale']:>8,} {phase:<22} {p['records']:>8,} "
                + " ".join(
                    f"{raw[k]:>11,.1f}" if isinstance(raw[k], float) else f"{raw[k]:>11,}" for k, _ in cols
                )
            )
            per = p["per_1m_org_records"]
            lines.append(
                f"{'':>8} {'  per 1M org records':<22} {'':>8} "
                + " ".join(f"{per[k]:>11,.0f}" for k, _ in cols)
            )
        c = r["connect"]["counts"]
        lines.append(
            f"{'':>8} connect (one-time): KMS {c['kms']}, SecretsMgr {c['secretsmanager']}, "
            f"DDB WRU {c['dynamodb_wru']:.1f}"
        )
        kinds = r["s3_total"]["bytes_by_kind"]
        lines.append(
            f"{'':>8} stored: S3 {r['s3_total']['bytes']:,} B in {r['s3_total']['objects']} objects "
            f"(record chunks {kinds['chunks']:,} B, file bodies {kinds['files']:,} B, manifests "
            f"{kinds['manifests']:,} B); catalog ~{r['catalog']['bytes_estimate']:,} B in "
            f"{r['catalog']['items']} items"
        )
        for phase in ("full", "incremental", "incremental_reconcile"):
            a = r[phase]["stored_added"]
            lines.append(
                f"{'':>8}   added by {phase}: records {a['record_bytes']:,} B, files {a['file_bytes']:,} B, "
                f"catalog {a['catalog_bytes']:,} B, {a['s3_objects']} S3 objects"
            )
    lines.append(
        "* S3 PUT class = PUT/COPY/POST/LIST requests; GET class = GET/HEAD (S3 bills HEAD as GET). "
        "Per 1M: extrapolated linearly from the measured run (fixed per-object costs included, "
        "so an upper bound for larger orgs)."
    )
    return "\n".join(lines)


# --- monthly cost from list prices -------------------------------------------------------------------

#: us-east-1 list prices as of 2026 (check before relying): https://aws.amazon.com/{s3,kms,dynamodb,
#: step-functions,lambda,secrets-manager}/pricing/. Free tiers are ignored (they only lower the bill).
PRICES = {
    "s3_gb_month": 0.023,  # S3 Standard, first 50 TB, per GB-month
    "s3_put_per_1k": 0.005,  # PUT, COPY, POST, LIST per 1,000 requests
    "s3_get_per_1k": 0.0004,  # GET, SELECT and all other requests (HEAD) per 1,000
    "kms_key_month": 1.00,  # per customer managed key per month (+$1 per rotated key version, max +$2)
    "kms_per_10k": 0.03,  # symmetric requests per 10,000
    "ddb_per_m_wru": 0.625,  # on-demand, per million write request units
    "ddb_per_m_rru": 0.125,  # on-demand, per million read request units
    "ddb_gb_month": 0.25,  # Standard table class storage per GB-month (first 25 GB free)
    "sfn_per_1k_transitions": 0.025,  # Standard workflows
    "lambda_gb_s_arm": 0.0000133334,  # arm64, per GB-second (the functions are ARM_64)
    "lambda_per_m_requests": 0.20,
    "secret_month": 0.40,  # per secret per month
    "secrets_per_10k": 0.05,  # API calls per 10,000
    "cw_metric_month": 0.30,  # CloudWatch custom metric per month (first 10,000 metrics)
}
#: Assumptions for what the emulator does not exercise (see monthly_cost).
BULK_WAITS = {"full": 240, "incremental": 60}
STEP_BUDGET_S = 600.0  # infra_cdk config extractTimeBudgetSeconds default


def _per_run(results: list[dict[str, Any]], phase: str, key: str, records: int) -> tuple[float, str]:
    """Counter ``key`` of one ``phase`` run for an org of ``records``: a straight line through the two
    largest measured scales (fixed per-object costs + per-record costs), or, with one scale, linear
    per record (an upper bound). Returns the value and how it was obtained."""

    def value(r: dict[str, Any]) -> float:
        p = r[phase]
        if key in p["counts"]:
            return float(p["counts"][key])
        if key in p.get("stored_added", {}):
            return float(p["stored_added"][key])
        wf = p["workflow"]
        return float(
            {
                "state_transitions": wf["state_transitions"],
                "lambda_invocations": sum(wf["lambda_invocations"].values()),
                "lambda_gb_seconds": wf["lambda_gb_seconds"],
            }[key]
        )

    pts = sorted(((r[phase]["org_records"], value(r)) for r in results), key=lambda t: t[0])
    if len(pts) >= 2 and pts[-1][0] != pts[-2][0]:
        (x1, y1), (x2, y2) = pts[-2], pts[-1]
        slope = max((y2 - y1) / (x2 - x1), 0.0)
        intercept = max(y2 - slope * x2, 0.0)
        est = intercept + slope * records
        return max(est, y2), f"fit {intercept:,.1f} + {slope * 1e6:,.1f}/1M rec"
    x, y = pts[-1]
    return y / x * records, f"linear {y / x * 1e6:,.1f}/1M rec"


def engine_throughput() -> tuple[float, float, str]:
    """(records/s of a full backup, incremental time as a share of the full's, where from): the largest
    scale in ``bench/out/backup.json`` (``bench.backup_throughput``), else conservative defaults."""
    try:
        doc = json.loads((OUT / "backup.json").read_text())
        r = max(doc["results"], key=lambda x: x["scale"])
        return (
            float(r["full"]["records_per_s"]),
            float(r["incremental_1pct"]["time_share_of_full"]),
            f"bench/out/backup.json at scale {r['scale']:,}",
        )
    except (OSError, ValueError, KeyError):
        return 2000.0, 0.25, "defaults: 2,000 rec/s, incremental 25% of a full"


def monthly_cost(
    results: list[dict[str, Any]], *, org_records: int = 10_000_000, days: int = 30, reconcile_every: int = 7
) -> dict[str, Any]:
    """The monthly AWS bill of backing up one org of ``org_records`` daily at the measured change rate:
    month 1 = one full + (days-1) incrementals; a steady month = ``days`` incrementals; every
    ``reconcile_every``-th incremental also reconciles (reads every Id). Returns the lines of the
    arithmetic and the totals."""
    P = PRICES
    n_inc = days - 1
    n_rec = n_inc // reconcile_every
    n_plain = n_inc - n_rec
    lines: list[str] = []
    totals: dict[str, float] = {}

    def runs(key: str) -> tuple[float, float, float, str]:
        f, how_f = _per_run(results, "full", key, org_records)
        i, how_i = _per_run(results, "incremental", key, org_records)
        r, how_r = _per_run(results, "incremental_reconcile", key, org_records)
        return f, i, r, f"full {how_f}; incremental {how_i}; reconciling {how_r}"

    def month(key: str) -> tuple[float, float, str]:
        f, i, r, how = runs(key)
        first = f + n_plain * i + n_rec * r
        steady = (days - days // reconcile_every) * i + (days // reconcile_every) * r
        lines.append(f"- {key}: per run full {f:,.0f}, incremental {i:,.0f}, reconciling {r:,.0f} ({how})")
        lines.append(f"  month 1 = {f:,.0f} + {n_plain} x {i:,.0f} + {n_rec} x {r:,.0f} = {first:,.0f}")
        return first, steady, how

    def cost(name: str, qty: float, unit: float, per: float, what: str) -> float:
        c = qty / per * unit
        amount = f"{qty:,.0f}" if qty >= 100 else f"{qty:,.4f}"
        lines.append(f"  {name}: {amount} {what} / {per:,.0f} x ${unit} = ${c:,.4f}")
        totals[name] = totals.get(name, 0.0) + c
        return c

    big = max(results, key=lambda r: r["full"]["org_records"])
    lines.append(
        f"Org: {org_records:,} records, daily backups at {big['change_share']:.0%} change, "
        f"{days}-day month: month 1 = 1 full + {n_inc} incrementals ({n_rec} reconciling), "
        f"from the bench at scales {', '.join(str(r['scale']) for r in results)}."
    )
    lines.append("Requests per run (measured under moto, scaled to the org size):")
    kms, _, _ = month("kms")
    cost("KMS requests", kms, P["kms_per_10k"], 10_000, "requests")
    put, _, _ = month("s3_put_class")
    cost("S3 PUT-class", put, P["s3_put_per_1k"], 1_000, "requests")
    get, _, _ = month("s3_get_class")
    cost("S3 GET-class", get, P["s3_get_per_1k"], 1_000, "requests")
    wru, _, _ = month("dynamodb_wru")
    cost("DynamoDB WRU", wru, P["ddb_per_m_wru"], 1_000_000, "WRU")
    rru, _, _ = month("dynamodb_rru")
    cost("DynamoDB RRU", rru, P["ddb_per_m_rru"], 1_000_000, "RRU")
    sm, _, _ = month("secretsmanager")
    cost("Secrets Manager calls", sm, P["secrets_per_10k"], 10_000, "calls")
    st, _, _ = month("state_transitions")
    cost("Step Functions", st, P["sfn_per_1k_transitions"], 1_000, "transitions")
    inv, _, _ = month("lambda_invocations")
    cost("Lambda requests", inv, P["lambda_per_m_requests"], 1_000_000, "invocations")
    gbs, _, _ = month("lambda_gb_seconds")
    lines.append(
        f"  (upper bound, not in the total: handler wall time under moto, with the emulator and moto in the "
        f"same process: {gbs:,.0f} GB-s x ${P['lambda_gb_s_arm']} = ${gbs * P['lambda_gb_s_arm']:,.2f})"
    )
    rate, inc_share, source = engine_throughput()
    full_s = org_records / rate
    inc_s = full_s * inc_share
    mem = LAMBDA_MB["backup_extract"] / 1024
    model = (full_s + n_inc * inc_s) * mem
    lines.append(
        f"- Lambda compute from the engine's throughput ({source}): full {org_records:,} / {rate:,.0f} rec/s "
        f"= {full_s:,.0f} s; incremental {inc_share:.1%} of that = {inc_s:,.0f} s; month 1 = ({full_s:,.0f} + "
        f"{n_inc} x {inc_s:,.0f}) s x {mem:.3f} GB = {model:,.0f} GB-s"
    )
    cost("Lambda compute", model, P["lambda_gb_s_arm"], 1, "GB-s")
    # What the emulator cannot show: Bulk API jobs that take minutes (the workflow polls them with
    # WaitForBulk loops, ``bulk_poll_seconds`` = 5 s) and objects that outlast one step's time budget.
    budget = STEP_BUDGET_S
    extra_steps = math.ceil(full_s / budget) + n_inc * math.ceil(inc_s / budget)
    waits = BULK_WAITS["full"] + n_inc * BULK_WAITS["incremental"]
    lines.append(
        f"- Not seen with the emulator: Bulk polling, assumed {BULK_WAITS['full']} WaitForBulk loops in a full "
        f"run and {BULK_WAITS['incremental']} in an incremental (~20 Bulk objects x 5 s polls), 3 transitions "
        f"+ 1 extract invocation (~1 s) each: {BULK_WAITS['full']} + {n_inc} x {BULK_WAITS['incremental']} = "
        f"{waits:,} loops; steps beyond the first for the {budget:.0f} s step budget: "
        f"ceil({full_s:,.0f}/{budget:.0f}) + {n_inc} x ceil({inc_s:,.0f}/{budget:.0f}) = {extra_steps:,}, "
        "2 transitions + 1 invocation each"
    )
    cost(
        "Step Functions (Bulk waits, extra steps)",
        3 * waits + 2 * extra_steps,
        P["sfn_per_1k_transitions"],
        1_000,
        "transitions",
    )
    cost(
        "Lambda requests (Bulk waits, extra steps)",
        waits + extra_steps,
        P["lambda_per_m_requests"],
        1_000_000,
        "invocations",
    )
    cost("Lambda compute (Bulk waits)", waits * 1.0 * mem, P["lambda_gb_s_arm"], 1, "GB-s")

    lines.append(
        "Storage at month-end (nothing expires within the month: Object Lock keeps every delta; "
        "billed as GB-month, so month-end over-states the month's average):"
    )
    rec, _, _ = month("record_bytes")
    gb = rec / 1e9
    cost("S3 storage (records)", gb, P["s3_gb_month"], 1, "GB-month")
    files, _, _ = month("file_bytes")
    lines.append(
        "  (file bodies at the emulator's files-per-record ratio; real orgs vary widely: put your org's "
        "file storage here)"
    )
    cost("S3 storage (files, emulator ratio)", files / 1e9, P["s3_gb_month"], 1, "GB-month")
    cat, _, _ = month("catalog_bytes")
    lines.append("  (DynamoDB's first 25 GB-month are free; priced anyway)")
    cost("DynamoDB storage", cat / 1e9, P["ddb_gb_month"], 1, "GB-month")
    lines.append("Fixed per org:")
    cost("KMS org key", 1, P["kms_key_month"], 1, "key")
    cost("Secrets Manager secret", 1, P["secret_month"], 1, "secret")
    total = sum(totals.values())
    lines.append(f"Total month 1 (the services above): ${total:,.2f}")
    lines.append(
        "Outside that list, per org (CloudWatch, us-east-1): the functions publish 3 custom metrics with an "
        "org dimension (SnapshotCommitted, RunFailed, ApiUsagePercent)"
    )
    cost("CloudWatch custom metrics", 3, P["cw_metric_month"], 1, "metrics")
    total_all = sum(totals.values())
    lines.append(
        f"Total month 1 with CloudWatch metrics: ${total_all:,.2f}. A steady month (30 incrementals, no full): "
        "the full run's requests and Lambda time drop out, storage keeps growing by the incrementals' deltas."
    )
    return {
        "prices": P,
        "org_records": org_records,
        "days": days,
        "lines": lines,
        "items": totals,
        "total": total,
        "total_with_cloudwatch": total_all,
        "assumptions": {"bulk_waits": BULK_WAITS, "step_budget_s": budget},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=20_000, help="emulator org size (records, about)")
    ap.add_argument("--scales", help="comma-separated scales (overrides --scale)")
    ap.add_argument(
        "--change", type=float, default=0.01, help="share of records updated before each incremental"
    )
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--org-records", type=int, default=10_000_000, help="org size for the monthly cost")
    ap.add_argument("--from-json", help="recompute the monthly cost from a saved aws_cost.json (no run)")
    ap.add_argument("--step-seconds", type=float, default=60.0, help="extract step time budget (Lambda)")
    args = ap.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        monthly = monthly_cost(saved["results"], org_records=args.org_records)
        print(table_text(saved["results"]))
        print("\n".join(monthly["lines"]))
        return 0
    scales = [int(x) for x in args.scales.split(",")] if args.scales else [args.scale]
    results = [
        bench_scale(s, change=args.change, seed=args.seed, step_seconds=args.step_seconds) for s in scales
    ]
    OUT.mkdir(exist_ok=True)
    monthly = monthly_cost(results, org_records=args.org_records)
    doc = {
        "command": "python -m bench.aws_cost " + " ".join(sys.argv[1:] if argv is None else argv),
        "region_of_moto": REGION,
        "lambda_memory_mb": LAMBDA_MB,
        "results": results,
        "monthly": monthly,
    }
    (OUT / "aws_cost.json").write_text(json.dumps(doc, indent=2, default=str))
    print(table_text(results))
    print("\nMonthly AWS cost (us-east-1 list prices as of 2026, check before relying):")
    print("\n".join(monthly["lines"]))
    print(f"\nwritten: {OUT / 'aws_cost.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
