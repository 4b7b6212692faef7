"""Keys: one customer-managed KMS key per connected org, plus one platform key.

Org keys wrap the per-chunk data keys. Their key policy lets the account's principals use the key
only with the org's encryption context (``kms:EncryptionContext:org`` equal to the org name) and
explicitly denies ``Decrypt``/``GenerateDataKey*``/``ReEncrypt*`` under any other context, so a chunk
sealed for one org can never be opened through another org's grant, whatever IAM says.

The platform key encrypts the infrastructure itself (vault bucket SSE-KMS, catalog table, secrets,
queues, topic, log groups, CloudTrail files); AWS services that write with it are allowed by its
policy. Rotation is on for every key; keys are retained when the stack is deleted.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra_cdk.config import OrgConfig
from infra_cdk.names import ORG_CONTEXT_KEY, org_key_alias

_ADMIN_ACTIONS = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
]
CRYPTO_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"]


def org_key_policy(org: str) -> iam.PolicyDocument:
    """The key policy of an org key (a function so tests and docs can show it)."""
    root = iam.AccountRootPrincipal()
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                sid="KeyAdministration",
                principals=[root],
                actions=_ADMIN_ACTIONS,
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="UseOnlyWithTheOrgContext",
                principals=[root],
                actions=CRYPTO_ACTIONS,
                resources=["*"],
                conditions={"StringEquals": {f"kms:EncryptionContext:{ORG_CONTEXT_KEY}": org}},
            ),
            iam.PolicyStatement(
                sid="DenyAnyOtherContext",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=CRYPTO_ACTIONS,
                resources=["*"],
                conditions={"StringNotEquals": {f"kms:EncryptionContext:{ORG_CONTEXT_KEY}": org}},
            ),
        ]
    )


class Keys(Construct):
    """``platform_key`` and ``org_keys`` (org name → key)."""

    def __init__(self, scope: Construct, construct_id: str, *, orgs: tuple[OrgConfig, ...]) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.platform_key = kms.Key(
            self,
            "PlatformKey",
            description="orgvault platform key: vault SSE, catalog, secrets, queues, topic, logs, trail",
            alias="alias/orgvault/platform",
            enable_key_rotation=True,
            pending_window=Duration.days(30),
            removal_policy=RemovalPolicy.RETAIN,
        )
        # Services that encrypt their own resources with the platform key.
        self.platform_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogs",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:*"
                    }
                },
            )
        )
        self.platform_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudTrail",
                principals=[iam.ServicePrincipal("cloudtrail.amazonaws.com")],
                actions=["kms:GenerateDataKey*", "kms:DescribeKey"],
                resources=["*"],
                conditions={
                    "StringLike": {
                        "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:{stack.partition}:cloudtrail:*:{stack.account}:trail/*"
                    }
                },
            )
        )
        self.platform_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventsAndAlarmsPublishToTheTopic",
                principals=[
                    iam.ServicePrincipal("events.amazonaws.com"),
                    iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                ],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        self.org_keys: dict[str, kms.Key] = {}
        for org in orgs:
            self.org_keys[org.name] = kms.Key(
                self,
                f"OrgKey-{org.name}",
                description=f"orgvault data-key wrapping key of org {org.name}",
                alias=org_key_alias(org.name),
                enable_key_rotation=True,
                pending_window=Duration.days(30),
                removal_policy=RemovalPolicy.RETAIN,
                policy=org_key_policy(org.name),
            )
