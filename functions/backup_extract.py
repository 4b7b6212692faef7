"""One extract step of one object: work within the time budget, then hand back where it stands.

Event: ``{"org", "run_id", "object"}`` (the Map item) or this handler's previous output.
Returns the same keys plus ``status`` (``done`` | ``more`` | ``wait``) and ``wait_seconds`` (a whole
number of seconds for the Wait state; > 0 only with ``wait``). The cursor itself lives in the catalog
checkpoint, so a retried or repeated step resumes from the last committed chunk.
The budget is ``ORGVAULT_STEP_SECONDS``, shortened to leave a safety margin before the Lambda timeout.
Errors: retryable ones (``SalesforceUnavailable``, ``VaultUnavailable``, ...) are retried by the
workflow; ``ApiBudgetExhausted`` pauses the run.
"""

from __future__ import annotations

import math
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions._runtime import app, backup_service, logger, metrics, text, tracer
from orgvault.constants import METRIC_API_USAGE_PERCENT, METRIC_DIMENSION_ORG

SAFETY_MARGIN_S = 90.0  # time left to seal and record the last chunk and answer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    org = text(event, "org", max_len=64)
    run_id = text(event, "run_id", max_len=128)
    object_name = text(event, "object", max_len=256)
    budget = app().settings.backup.step_seconds
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining_ms):
        budget = max(1.0, min(budget, remaining_ms() / 1000.0 - SAFETY_MARGIN_S))
    service = backup_service(owner=f"extract:{run_id}")
    result = service.extract_step(org, run_id, object_name, time_budget_s=budget)
    usage = service.source(org).api_usage() if result.api_calls else None
    if usage is not None and usage.total:
        metrics.add_dimension(name=METRIC_DIMENSION_ORG, value=org)
        metrics.add_metric(
            name=METRIC_API_USAGE_PERCENT, unit=MetricUnit.Percent, value=100.0 * usage.used / usage.total
        )
    wait = int(math.ceil(result.wait_seconds)) if result.status == "wait" else 0
    logger.info(
        "extract step",
        org=org,
        run_id=run_id,
        object=object_name,
        status=str(result.status),
        records=result.records,
        api_calls=result.api_calls,
    )
    return {
        "org": org,
        "run_id": run_id,
        "object": object_name,
        "status": str(result.status),
        "wait_seconds": max(wait, 1) if result.status == "wait" else 0,
        "records": result.records,
    }
