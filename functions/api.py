"""The API Lambda: API Gateway REST proxy events → the orgvault API resolver (``orgvault.api.app``).

Environment: the usual ``ORGVAULT_*`` resource names, ``ORGVAULT_BACKUP_STATE_MACHINE_ARN`` (on-demand
backups start the backup workflow), ``ORGVAULT_RESTORE_STATE_MACHINE_ARN`` (approved restores start the
restore workflow; without it they run inside the request) and ``ORGVAULT_IAM_PRINCIPALS`` (JSON
``{"<role ARN>": ["org:acme:operator"]}`` for machine clients on the IAM-authorised ``/iam`` resources).
Audit lines go to stdout (CloudWatch Logs) as one JSON object each.
"""

from __future__ import annotations

import json
import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions._runtime import app, logger, tracer
from orgvault.errors import ConfigError

_api: Any = None


def _build() -> Any:
    from orgvault.adapters.aws_stepfunctions import StepFunctionsBackupLauncher, StepFunctionsRestoreLauncher
    from orgvault.api.app import ApiContext, OrgVaultApi
    from orgvault.api.audit import AuditLog
    from orgvault.api.jobs import InlineRunner

    try:
        iam = json.loads(os.environ.get("ORGVAULT_IAM_PRINCIPALS") or "{}")
    except ValueError:
        raise ConfigError(
            'ORGVAULT_IAM_PRINCIPALS must be JSON like {"arn:...:role/ci": ["org:acme:viewer"]}'
        ) from None
    wired = app()
    restore_arn = os.environ.get("ORGVAULT_RESTORE_STATE_MACHINE_ARN", "")
    ctx = ApiContext(
        app=wired,
        launcher=StepFunctionsBackupLauncher(os.environ.get("ORGVAULT_BACKUP_STATE_MACHINE_ARN", "")),
        restore_launcher=StepFunctionsRestoreLauncher(restore_arn) if restore_arn else None,
        runner=InlineRunner(),
        audit=AuditLog(sink=print),
        iam_principals=iam,
    )
    return OrgVaultApi(ctx)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _api
    if _api is None:
        _api = _build()
    return _api.handle(event, context)
