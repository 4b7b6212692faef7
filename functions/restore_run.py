"""Run (or resume) one approved restore job for as long as it takes or until it pauses.

Event: ``{"org": "acme-prod", "job_id": "r2026..."}`` — the job was planned (dry run) and approved
through the API, which recorded it in the org's restore journal and started the restore workflow.
Returns ``{"org", "job_id", "status", "wait_seconds", "counts"}``: ``completed`` ends the workflow,
``paused`` (API allowance used up, Salesforce unavailable) makes it wait ``wait_seconds`` and call
again, ``failed`` ends it as failed (resumable after fixing the cause). The journal makes a repeated or
interrupted call safe: finished batches are skipped, interrupted ones reconciled, nothing is created
twice.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions._runtime import app, logger, metrics, text, tracer

PAUSE_SECONDS = 900  # how long to wait before resuming a paused restore


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from orgvault.cli_restore import make_restore_service
    from orgvault.services.restore_journal import RestoreJournal

    org = text(event, "org", max_len=64)
    job_id = text(event, "job_id", max_len=128)
    wired = app()
    conn = wired.catalog.get_org(org)
    job = RestoreJournal(wired.store, wired.keys, org, conn.key_ref).load(job_id)
    service, _writer = make_restore_service(wired, org, job.request.get("target"))
    report = service.run(job_id=job_id)
    status = str(report.status)
    logger.info("restore step", org=org, job_id=job_id, status=status, counts=report.counts())
    return {
        "org": org,
        "job_id": job_id,
        "status": status,
        "wait_seconds": PAUSE_SECONDS if status == "paused" else 0,
        "counts": report.counts(),
    }
