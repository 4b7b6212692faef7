"""Start (or resume) a backup run of one org.

Event: ``{"input": {"org": "acme-prod", "full": false}, "owner": "<execution ARN>"}`` (the state machine
wraps its execution input). Returns ``{"org", "run_id", "owner", "objects": [names], "resumed", "kind"}``.
Errors: ``UnknownOrg``, ``RunInProgress`` (another execution holds the org), Salesforce errors.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions._runtime import backup_service, flag, logger, metrics, text, tracer
from orgvault.errors import ConfigError


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    owner = text(event, "owner", max_len=2048)
    run_input = event.get("input")
    if not isinstance(run_input, dict):
        raise ConfigError('the execution input must be a JSON object like {"org": "acme-prod"}')
    org = text(run_input, "org", max_len=64)
    full = flag(run_input, "full")
    plan = backup_service(owner).start_run(org, full=full)
    logger.info(
        "run planned",
        org=org,
        run_id=plan.run_id,
        objects=len(plan.objects),
        unchanged=len(plan.unchanged),  # finished at start by the change probe: no extract step
        resumed=plan.resumed,
    )
    return {
        "org": plan.org,
        "run_id": plan.run_id,
        "owner": owner,
        "objects": list(plan.objects),
        "resumed": plan.resumed,
        "kind": str(plan.kind),
    }
