"""Start workflows from the API in AWS mode: backups (``BackupLauncher``) and approved restores
(``RestoreLauncher``).

Contract: :meth:`StepFunctionsBackupLauncher.start_backup` starts one backup execution with input
``{"org": ..., "full": bool}`` (what ``functions/backup_start.py`` expects) and returns its ARN as
``execution_id``; the run id is assigned inside the workflow (``run_id`` is ``None``).
:meth:`StepFunctionsRestoreLauncher.start_restore` starts the restore workflow with
``{"org": ..., "job_id": ...}`` (what ``functions/restore_run.py`` expects). Throttling and 5xx become
``RetryableError`` (503); a missing state machine is a ``ConfigError``.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from orgvault.errors import ConfigError, RetryableError


class _Starter:
    def __init__(
        self, state_machine_arn: str, what: str, env_name: str, *, client: Any | None = None
    ) -> None:
        if not state_machine_arn:
            raise ConfigError(f"the API needs {env_name} to start {what}s")
        self.arn = state_machine_arn
        self.what = what
        self.env_name = env_name
        if client is None:
            import boto3

            client = boto3.client("stepfunctions")
        self.client = client

    def _start(self, org: str, payload: dict[str, Any]) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        name = f"api-{org[:40]}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
        try:
            out = self.client.start_execution(stateMachineArn=self.arn, name=name, input=json.dumps(payload))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("StateMachineDoesNotExist", "InvalidArn"):
                raise ConfigError(
                    f"the {self.what} state machine does not exist; check {self.env_name}"
                ) from None
            raise RetryableError(
                f"Step Functions refused to start the {self.what} ({code}); retry later"
            ) from None
        except BotoCoreError:
            raise RetryableError("Step Functions could not be reached; retry later") from None
        return str(out["executionArn"])


class StepFunctionsBackupLauncher(_Starter):
    def __init__(self, state_machine_arn: str, *, client: Any | None = None) -> None:
        super().__init__(state_machine_arn, "backup", "ORGVAULT_BACKUP_STATE_MACHINE_ARN", client=client)

    def start_backup(self, org: str, *, full: bool) -> Any:
        from orgvault.api.jobs import BackupStarted

        arn = self._start(org, {"org": org, "full": full})
        return BackupStarted(org=org, run_id=None, execution_id=arn, status="starting")


class StepFunctionsRestoreLauncher(_Starter):
    def __init__(self, state_machine_arn: str, *, client: Any | None = None) -> None:
        super().__init__(state_machine_arn, "restore", "ORGVAULT_RESTORE_STATE_MACHINE_ARN", client=client)

    def start_restore(self, org: str, job_id: str) -> str:
        return self._start(org, {"org": org, "job_id": job_id})
