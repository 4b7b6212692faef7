"""Start backup runs through the backup state machine (the API's ``BackupLauncher`` in AWS mode).

Contract: :meth:`StepFunctionsBackupLauncher.start_backup` starts one execution with input
``{"org": ..., "full": bool}`` (the input ``functions/backup_start.py`` expects) and returns its ARN as
``execution_id``; the run id is assigned inside the workflow (``run_id`` is ``None``). Throttling and
5xx become ``RetryableError`` (503); a missing state machine is a ``ConfigError``.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from orgvault.errors import ConfigError, RetryableError


class StepFunctionsBackupLauncher:
    def __init__(self, state_machine_arn: str, *, client: Any | None = None) -> None:
        if not state_machine_arn:
            raise ConfigError("the API needs ORGVAULT_BACKUP_STATE_MACHINE_ARN to start backups")
        self.arn = state_machine_arn
        if client is None:
            import boto3

            client = boto3.client("stepfunctions")
        self.client = client

    def start_backup(self, org: str, *, full: bool) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        from orgvault.api.jobs import BackupStarted

        name = f"api-{org[:40]}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
        try:
            out = self.client.start_execution(stateMachineArn=self.arn, name=name,
                                              input=json.dumps({"org": org, "full": full}))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("StateMachineDoesNotExist", "InvalidArn"):
                raise ConfigError("the backup state machine does not exist; check ORGVAULT_BACKUP_STATE_MACHINE_ARN") from None
            raise RetryableError(f"Step Functions refused to start the backup ({code}); retry later") from None
        except BotoCoreError:
            raise RetryableError("Step Functions could not be reached; retry later") from None
        return BackupStarted(org=org, run_id=None, execution_id=out["executionArn"], status="starting")
