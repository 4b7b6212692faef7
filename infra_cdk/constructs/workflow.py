"""Workflow: the backup state machine (Step Functions, standard).

Shape::

    Start (plan, lock) ──▶ Objects: Map over $.objects, max concurrency from the context
                              └─ per object: Extract ──▶ Status? ─ done ──▶ ObjectDone
                                               ▲          ├ wait ──▶ WaitForBulk (SecondsPath) ─┐
                                               └──────────┴ more ───────────────────────────────┘
                        ──▶ Finalize (manifest, commit) ──▶ Succeeded
    any error after Start ──▶ MarkFailed (run failed, resumable, lock released) ──▶ BackupFailed

- Every extract step works within the time budget and hands back a cursor; Bulk job polling is a Wait
  state whose duration the step chose (``wait_seconds``), never a sleeping Lambda.
- ``Retry`` matches the retryable error class names of ``orgvault.errors`` (every subclass of
  ``RetryableError`` except ``ApiBudgetExhausted``, which is a checkpoint: it ends the run as failed
  and resumable, and the next scheduled run continues) with exponential backoff and jitter.
- The object fan-out is a *distributed* Map by default: each object runs as a child execution with its
  own 25,000-event history, so an org with thousands of objects and millions of records never hits
  the history limit of one execution. ``distributed=False`` gives an inline Map (same states).

Execution input: ``{"org": "<name>"}`` (the schedule sends it); add ``"resume_run_id"`` to resume a run.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from orgvault import errors


def _subclasses(cls: type) -> list[type]:
    out: list[type] = []
    subs: list[type] = cls.__subclasses__()
    for sub in subs:
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


#: Error names (Lambda ``errorType`` = the exception class name) that are retried with backoff.
RETRYABLE_ERRORS = tuple(
    sorted(
        {errors.RetryableError.__name__}
        | {c.__name__ for c in _subclasses(errors.RetryableError) if c is not errors.ApiBudgetExhausted}
    )
)
LAMBDA_TRANSIENT_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)


def _retry(task: sfn.TaskStateBase, *, attempts: int = 6) -> None:
    task.add_retry(
        errors=list(RETRYABLE_ERRORS),
        interval=Duration.seconds(2),
        backoff_rate=2.0,
        max_attempts=attempts,
        max_delay=Duration.minutes(5),
        jitter_strategy=sfn.JitterType.FULL,
    )


class BackupWorkflow(Construct):
    """``state_machine`` and ``log_group``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        start: lambda_.IFunction,
        extract: lambda_.IFunction,
        finalize: lambda_.IFunction,
        fail: lambda_.IFunction,
        map_concurrency: int,
        key: kms.IKey,
        distributed: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)

        start_task = tasks.LambdaInvoke(
            self,
            "Start",
            lambda_function=start,
            comment="Open (or resume) the org's run: take the lock, plan the objects.",
            payload=sfn.TaskInput.from_object({"input.$": "$", "owner.$": "$$.Execution.Id"}),
            result_selector={
                "org.$": "$.Payload.org",
                "run_id.$": "$.Payload.run_id",
                "owner.$": "$.Payload.owner",
                "objects.$": "$.Payload.objects",
            },
        )
        _retry(start_task)

        extract_task = tasks.LambdaInvoke(
            self,
            "Extract",
            lambda_function=extract,
            comment="Extract one object for one time budget; returns status done|more|wait and the cursor.",
            payload=sfn.TaskInput.from_json_path_at("$"),
            output_path="$.Payload",
        )
        _retry(extract_task, attempts=8)
        wait = sfn.Wait(
            self,
            "WaitForBulk",
            comment="A Bulk job is still running: wait as long as the step asked, then ask again.",
            time=sfn.WaitTime.seconds_path("$.wait_seconds"),
        )
        object_done = sfn.Succeed(self, "ObjectDone")
        choice = (
            sfn.Choice(self, "Status")
            .when(sfn.Condition.string_equals("$.status", "done"), object_done)
            .when(sfn.Condition.string_equals("$.status", "wait"), wait.next(extract_task))
            .otherwise(extract_task)
        )
        per_object = extract_task.next(choice)

        item_selector = {
            "org.$": "$.org",
            "run_id.$": "$.run_id",
            "object.$": "$$.Map.Item.Value",
        }
        objects: sfn.MapBase
        if distributed:
            objects = sfn.DistributedMap(
                self,
                "Objects",
                comment="One child execution per object; bounded concurrency (Salesforce allows few long requests).",
                items_path="$.objects",
                item_selector=item_selector,
                max_concurrency=map_concurrency,
                result_path=sfn.JsonPath.DISCARD,
                map_execution_type=sfn.StateMachineType.STANDARD,
                tolerated_failure_percentage=0,  # one failed object fails the Map → MarkFailed
            )
        else:
            objects = sfn.Map(
                self,
                "Objects",
                items_path="$.objects",
                item_selector=item_selector,
                max_concurrency=map_concurrency,
                result_path=sfn.JsonPath.DISCARD,
            )
        objects.item_processor(per_object)

        finalize_task = tasks.LambdaInvoke(
            self,
            "Finalize",
            lambda_function=finalize,
            comment="Write the manifest and commit the snapshot (conditional on the head).",
            payload=sfn.TaskInput.from_object(
                {"org.$": "$.org", "run_id.$": "$.run_id", "owner.$": "$.owner"}
            ),
            output_path="$.Payload",
        )
        _retry(finalize_task)

        mark_failed = tasks.LambdaInvoke(
            self,
            "MarkFailed",
            lambda_function=fail,
            comment="Record the run as failed and resumable, release the lock.",
            payload=sfn.TaskInput.from_object(
                {
                    "org.$": "$.org",
                    "run_id.$": "$.run_id",
                    "owner.$": "$.owner",
                    "error.$": "$.failure.Error",
                    "cause.$": "$.failure.Cause",
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        _retry(mark_failed)
        failed = sfn.Fail(
            self, "BackupFailed", error="BackupFailed", cause="The run was marked failed and resumable"
        )
        mark_failed.next(failed)
        start_failed = sfn.Fail(self, "StartFailed", error="StartFailed", cause="The run could not be opened")

        start_task.add_catch(start_failed, errors=["States.ALL"], result_path="$.failure")
        objects.add_catch(mark_failed, errors=["States.ALL"], result_path="$.failure")
        finalize_task.add_catch(mark_failed, errors=["States.ALL"], result_path="$.failure")

        definition = start_task.next(objects).next(finalize_task).next(sfn.Succeed(self, "Succeeded"))

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
            comment="orgvault backup of one org",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=Duration.days(3),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )
