"""Mark a run failed (or paused, when the API allowance ran out) and resumable; release the lock.

Event: ``{"org", "run_id", "owner", "error", "cause"}`` where ``error``/``cause`` are what Step
Functions caught. ``ApiBudgetExhausted`` → the run is PAUSED (not a failure); anything else → FAILED.
Either way the next run of the org resumes from the checkpoints. Returns ``{"org", "run_id", "status"}``
and emits ``RunFailed`` for failures.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions._runtime import backup_service, logger, metrics, optional_text, text, tracer
from orgvault.constants import METRIC_DIMENSION_ORG, METRIC_RUN_FAILED
from orgvault.domain.models import RunStatus

PAUSING_ERRORS = frozenset({"ApiBudgetExhausted"})


def _message(error: str, cause: str) -> str:
    """``cause`` of a Lambda error is a JSON document; keep only its type and message."""
    try:
        doc = json.loads(cause)
        detail = str(doc.get("errorMessage", "")) if isinstance(doc, dict) else ""
    except ValueError:
        detail = cause
    return f"{error}: {detail}"[:500] if detail else error[:500]


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    org = text(event, "org", max_len=64)
    run_id = text(event, "run_id", max_len=128)
    owner = text(event, "owner", max_len=2048)
    error = optional_text(event, "error", "States.Unknown") or "States.Unknown"
    status = RunStatus.PAUSED if error in PAUSING_ERRORS else RunStatus.FAILED
    backup_service(owner).stop_run(
        org, run_id, status=status, message=_message(error, optional_text(event, "cause"))
    )
    if status is RunStatus.FAILED:
        metrics.add_dimension(name=METRIC_DIMENSION_ORG, value=org)
        metrics.add_metric(name=METRIC_RUN_FAILED, unit=MetricUnit.Count, value=1)
    logger.warning("run stopped", org=org, run_id=run_id, status=str(status), error=error)
    return {"org": org, "run_id": run_id, "status": str(status)}
