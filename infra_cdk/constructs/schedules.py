"""Schedules: one EventBridge Scheduler schedule per org (cron and time zone from the context) that
starts the backup state machine with ``{"org": "<name>"}``.

Scheduler invokes its target asynchronously: invocations it cannot deliver after its retries go to a
KMS-encrypted SQS dead-letter queue (alarmed on by monitoring). Its role may start this one state
machine and write to this one queue, nothing else.
"""

from __future__ import annotations

import json

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra_cdk.config import OrgConfig


class Schedules(Construct):
    """``schedules`` (org name → schedule), ``dead_letters`` (queue), ``role``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        orgs: tuple[OrgConfig, ...],
        state_machine: sfn.IStateMachine,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
            description="orgvault schedules: start the backup state machine",
        )
        state_machine.grant_start_execution(self.role)
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="DeadLetters", actions=["sqs:SendMessage"], resources=[self.dead_letters.queue_arn]
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="DeadLettersKey",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"sqs.{Stack.of(self).region}.amazonaws.com"}},
            )
        )
        self.schedules: dict[str, scheduler.CfnSchedule] = {}
        for org in orgs:
            self.schedules[org.name] = scheduler.CfnSchedule(
                self,
                f"Backup-{org.name}",
                description=f"orgvault backup of {org.name}",
                schedule_expression=org.schedule,
                schedule_expression_timezone=org.timezone,
                flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                state="ENABLED",
                target=scheduler.CfnSchedule.TargetProperty(
                    arn=state_machine.state_machine_arn,
                    role_arn=self.role.role_arn,
                    input=json.dumps({"org": org.name}),
                    retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                        maximum_event_age_in_seconds=3600, maximum_retry_attempts=10
                    ),
                    dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(
                        arn=self.dead_letters.queue_arn
                    ),
                ),
            )
