"""Restore workflow (Step Functions, standard): runs an approved restore job to its end.

Shape::

    Run (restore_run: run/resume the job) ──▶ Status? ─ completed ──▶ Restored
        ▲                                       ├ paused ──▶ WaitBeforeResume (SecondsPath) ─┐
        └───────────────────────────────────────┴───────────────────────────────────────────┘
                                                └ failed ──▶ RestoreFailed

The job (request, dry-run plan, approval) lives in the org's restore journal; the API plans and approves
it, then starts an execution with ``{"org": ..., "job_id": ...}``. ``Retry`` matches the retryable
error classes and a Lambda time-out: every call resumes from the journal, so an interrupted call
repeats nothing. Restores write one org at a time through sObject Collections or Bulk ingest jobs;
no Map is needed (the service batches internally).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra_cdk.constructs.workflow import RETRYABLE_ERRORS


class RestoreWorkflow(Construct):
    """``state_machine`` and ``log_group``."""

    def __init__(self, scope: Construct, construct_id: str, *, run: lambda_.IFunction, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        run_task = tasks.LambdaInvoke(
            self,
            "Run",
            lambda_function=run,
            comment="Run or resume the restore job until it completes, pauses or fails.",
            payload=sfn.TaskInput.from_object({"org.$": "$.org", "job_id.$": "$.job_id"}),
            output_path="$.Payload",
        )
        run_task.add_retry(
            errors=[*RETRYABLE_ERRORS, "States.Timeout"],
            interval=Duration.seconds(5),
            backoff_rate=2.0,
            max_attempts=6,
            max_delay=Duration.minutes(5),
            jitter_strategy=sfn.JitterType.FULL,
        )
        failed = sfn.Fail(self, "RestoreFailed", error="RestoreFailed", cause="See the restore job's journal")
        run_task.add_catch(failed, errors=["States.ALL"], result_path="$.failure")
        wait = sfn.Wait(self, "WaitBeforeResume", time=sfn.WaitTime.seconds_path("$.wait_seconds"))
        status = (
            sfn.Choice(self, "Status")
            .when(sfn.Condition.string_equals("$.status", "completed"), sfn.Succeed(self, "Restored"))
            .when(sfn.Condition.string_equals("$.status", "paused"), wait.next(run_task))
            .otherwise(failed)
        )
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.THREE_MONTHS,
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment="orgvault restore of one approved job",
            definition_body=sfn.DefinitionBody.from_chainable(run_task.next(status)),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=Duration.days(7),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )
