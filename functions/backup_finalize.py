"""Finalize a run: write the manifest, commit the snapshot, release the lock.

Event: ``{"org", "run_id", "owner"}``. Returns ``{"org", "run_id", "snapshot_id", "kind", "objects",
"records"}`` and emits the ``SnapshotCommitted`` metric (the "age of the last good snapshot" alarm
watches it). Repeating it is safe. Errors: ``ConcurrentCommit`` (retried), ``PermanentError`` if
objects are unfinished.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions._runtime import backup_service, logger, metrics, text, tracer
from orgvault.constants import METRIC_DIMENSION_ORG, METRIC_SNAPSHOT_COMMITTED


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    org = text(event, "org", max_len=64)
    run_id = text(event, "run_id", max_len=128)
    owner = text(event, "owner", max_len=2048)
    snap = backup_service(owner).finalize_run(org, run_id)
    metrics.add_dimension(name=METRIC_DIMENSION_ORG, value=org)
    metrics.add_metric(name=METRIC_SNAPSHOT_COMMITTED, unit=MetricUnit.Count, value=1)
    logger.info("snapshot committed", org=org, snapshot_id=snap.snapshot_id, records=snap.records)
    return {
        "org": org,
        "run_id": run_id,
        "snapshot_id": snap.snapshot_id,
        "kind": str(snap.kind),
        "objects": snap.objects,
        "records": snap.records,
    }
