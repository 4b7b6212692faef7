"""Monitoring: a KMS-encrypted, TLS-only SNS topic for notifications; alarms on failed runs, on the
age of each org's last good snapshot, on API budget use, on dead letters and on handler errors; an
EventBridge rule forwarding every terminal backup execution status (succeeded, failed, timed out,
aborted) to the topic; and a CloudWatch dashboard.

Custom metrics come from the handlers (Powertools Metrics, EMF, namespace ``OrgVault``, dimensions
``service`` and ``org``): ``SnapshotCommitted`` (1 per committed snapshot), ``RunFailed`` and
``ApiUsagePercent`` (share of the daily allowance used, as last seen by an extract step).
"The last good snapshot is older than N hours" is alarmed as "no ``SnapshotCommitted`` in the last N
hourly periods", missing data counting as breaching.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra_cdk import names
from infra_cdk.config import DeploymentConfig


def org_metric(metric_name: str, org: str, statistic: str, period: Duration) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=names.METRICS_NAMESPACE,
        metric_name=metric_name,
        dimensions_map={"service": names.SERVICE_NAME, names.METRIC_DIMENSION_ORG: org},
        statistic=statistic,
        period=period,
    )


class Monitoring(Construct):
    """``topic``, ``alarms`` (name → alarm), ``rule``, ``dashboard``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        key: kms.IKey,
        state_machine: sfn.IStateMachine,
        functions: dict[str, lambda_.IFunction],
        dead_letters: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self, "Notifications", display_name="orgvault notifications", master_key=key, enforce_ssl=True
        )
        if config.notification_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.notification_email))
        action = cw_actions.SnsAction(self.topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        def alarm(name: str, metric: cloudwatch.IMetric, *, description: str, **kwargs: object) -> None:
            a = cloudwatch.Alarm(self, name, metric=metric, alarm_description=description, **kwargs)  # type: ignore[arg-type]
            a.add_alarm_action(action)
            self.alarms[name] = a

        alarm(
            "BackupRunsFailed",
            state_machine.metric_failed(period=Duration.minutes(5), statistic="Sum"),
            description="A backup run failed; it is resumable: see the execution and the MarkFailed step.",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm(
            "BackupRunsTimedOut",
            state_machine.metric_timed_out(period=Duration.minutes(5), statistic="Sum"),
            description="A backup run timed out.",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm(
            "DeadLetters",
            dead_letters.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
            description="A scheduled backup or a notification could not be delivered (see the dead-letter queue).",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for fn_name, fn in functions.items():
            alarm(
                f"Errors-{fn_name}",
                fn.metric_errors(period=Duration.minutes(15), statistic="Sum"),
                description=f"{fn_name} raised errors repeatedly (retryable ones are retried by the workflow).",
                threshold=3,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        hours = config.snapshot_max_age_hours
        for org in config.orgs:
            alarm(
                f"SnapshotAge-{org.name}",
                org_metric(names.METRIC_SNAPSHOT_COMMITTED, org.name, "Sum", Duration.hours(1)),
                description=f"No good snapshot of {org.name} in the last {hours} hours.",
                threshold=1,
                evaluation_periods=hours,
                datapoints_to_alarm=hours,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            )
            alarm(
                f"ApiBudget-{org.name}",
                org_metric(names.METRIC_API_USAGE_PERCENT, org.name, "Maximum", Duration.minutes(15)),
                description=f"Backups of {org.name} used {int(config.api_budget_share * 100)}% of the daily API allowance.",
                threshold=round(config.api_budget_share * 100, 1),
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )

        self.rule = events.Rule(
            self,
            "RunStatus",
            description="Backup runs that ended (succeeded, failed, timed out, aborted) → notifications",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "stateMachineArn": [state_machine.state_machine_arn],
                    "status": ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"],
                },
            ),
        )
        self.rule.add_target(
            targets.SnsTopic(
                self.topic,
                dead_letter_queue=dead_letters,
                message=events.RuleTargetInput.from_text(
                    f"orgvault backup {events.EventField.from_path('$.detail.name')} "
                    f"ended {events.EventField.from_path('$.detail.status')}"
                ),
            )
        )

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name="orgvault")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Backup runs",
                left=[
                    state_machine.metric_started(statistic="Sum"),
                    state_machine.metric_succeeded(statistic="Sum"),
                    state_machine.metric_failed(statistic="Sum"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Snapshots committed",
                left=[
                    org_metric(names.METRIC_SNAPSHOT_COMMITTED, o.name, "Sum", Duration.hours(1))
                    for o in config.orgs
                ],
            ),
            cloudwatch.GraphWidget(
                title="API allowance used (%)",
                left=[
                    org_metric(names.METRIC_API_USAGE_PERCENT, o.name, "Maximum", Duration.minutes(15))
                    for o in config.orgs
                ],
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Handler errors", left=[fn.metric_errors(statistic="Sum") for fn in functions.values()]
            ),
            cloudwatch.GraphWidget(
                title="Handler duration (p90)",
                left=[fn.metric_duration(statistic="p90") for fn in functions.values()],
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values())),
        )
