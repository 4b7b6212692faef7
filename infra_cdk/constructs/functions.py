"""Functions: the Lambda entry points of the workflows (thin handlers in ``functions/``).

Every function runs on arm64 / Python 3.12 with the dependency and orgvault layers, X-Ray tracing,
Powertools settings in its environment, its own KMS-encrypted log group, and its own role whose inline
policy names each resource it may touch:

- ``backup_start``: catalog read/write, the orgs' secrets (log in, plan), vault read and org-key
  ``Decrypt`` with that org's context (the parent manifest, for an incremental plan).
- ``backup_extract``: catalog read/write, vault bucket read/write, the orgs' secrets, and on the org keys
  ``kms:GenerateDataKey`` (+ ``DescribeKey``): it seals chunks but cannot unwrap one. Its only
  ``Decrypt`` is conditioned on ``purpose = content-id`` (the org's file de-duplication HMAC key).
- ``backup_finalize``: catalog read/write, vault read/write, ``GenerateDataKey`` on org keys (the manifest)
  and ``Decrypt`` with each org's context (the parent manifest).
- ``backup_fail``: catalog read/write (marks the run failed and resumable, releases the lock).
- ``restore_run``: catalog, vault read/write (the restore journal), the orgs' secrets (writes to
  Salesforce), ``GenerateDataKey`` and ``Decrypt`` on each org key **only with that org's context**.

The platform key is usable by these roles only *via* S3, DynamoDB and Secrets Manager
(``kms:ViaService``). Reserved concurrency caps each function (the extract cap also bounds the load
put on Salesforce). All invocations are synchronous (Step Functions), so failures surface in the
workflow rather than in a DLQ.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra_cdk import names
from infra_cdk.config import DeploymentConfig
from infra_cdk.constructs.layers import Layers


@dataclass(frozen=True)
class Access:
    """What a function may touch."""

    table: bool = True
    bucket_read: bool = False
    bucket_write: bool = False
    secrets: bool = False
    org_key_encrypt: bool = False
    org_key_decrypt: bool = False
    content_key_decrypt: bool = False  # unwrap only the org's content-id (HMAC) key, no data key


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # module in functions/, also the construct id suffix
    description: str
    access: Access
    timeout_seconds: int = 60
    memory_mb: int = 512


class Functions(Construct):
    """``functions`` (spec name → function) and ``roles``; ``log_groups`` for the dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        layers: Layers,
        table: dynamodb.ITable,
        bucket: s3.IBucket,
        platform_key: kms.IKey,
        org_keys: dict[str, kms.Key],
        secrets: dict[str, secretsmanager.Secret],
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._layers = layers
        self._table = table
        self._bucket = bucket
        self._platform_key = platform_key
        self._org_keys = org_keys
        self._secrets = secrets
        self.functions: dict[str, lambda_.Function] = {}
        self.roles: dict[str, iam.Role] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}
        orgs = max(1, len(config.orgs))
        backup = [
            FunctionSpec(
                "backup_start",
                "orgvault backup: open a run (lock, plan objects)",
                Access(secrets=True, bucket_read=True, org_key_decrypt=True),
                timeout_seconds=300,
            ),
            FunctionSpec(
                "backup_extract",
                "orgvault backup: extract one object for one time budget, hand back a cursor",
                Access(
                    bucket_read=True,
                    bucket_write=True,
                    secrets=True,
                    org_key_encrypt=True,
                    content_key_decrypt=True,
                ),
                timeout_seconds=config.extract_timeout_seconds,
                memory_mb=1769,  # one full vCPU: zstd and AES-GCM are CPU bound
            ),
            FunctionSpec(
                "backup_finalize",
                "orgvault backup: write the manifest and commit the snapshot",
                Access(bucket_read=True, bucket_write=True, org_key_encrypt=True, org_key_decrypt=True),
                timeout_seconds=600,
                memory_mb=1024,
            ),
            FunctionSpec("backup_fail", "orgvault backup: mark a run failed and resumable", Access()),
        ]
        restore = FunctionSpec(
            "restore_run",
            "orgvault restore: run or resume one approved restore job",
            # reads the backup (decrypt with the org's context only), writes the sealed journal
            Access(
                bucket_read=True, bucket_write=True, secrets=True, org_key_encrypt=True, org_key_decrypt=True
            ),
            timeout_seconds=900,
            memory_mb=1769,
        )
        backup.append(restore)
        reserved = {
            "restore_run": orgs + 1,
            "backup_start": orgs + 1,
            "backup_extract": config.map_concurrency * orgs + 1,
            "backup_finalize": orgs + 1,
            "backup_fail": orgs + 1,
        }
        for spec in backup:
            self.add(spec, reserved=reserved.get(spec.name))

    def add(self, spec: FunctionSpec, *, reserved: int | None = None) -> lambda_.Function:
        """Create one function with its role, log group and environment."""
        stack = Stack.of(self)
        ident = "".join(part.title() for part in spec.name.split("_"))
        log_group = logs.LogGroup(
            self,
            f"{ident}Logs",
            retention=logs.RetentionDays.THREE_MONTHS,
            encryption_key=self._platform_key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        role = iam.Role(
            self,
            f"{ident}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"orgvault {spec.name}: least privilege",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnLogGroup",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        self._grant(role, spec.access, stack)
        env = {
            "POWERTOOLS_SERVICE_NAME": names.SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": names.METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_LOGGER_LOG_EVENT": "false",
            names.ENV_MODE: "aws",
            names.ENV_TABLE: self._table.table_name,
            names.ENV_BUCKET: self._bucket.bucket_name,
            names.ENV_VAULT_KMS_KEY: self._platform_key.key_arn,
            names.ENV_LOCK_MODE: str(self._config.lock_mode),
            names.ENV_LOCK_DAYS: str(self._config.lock_days),
            names.ENV_STEP_SECONDS: str(self._config.extract_time_budget_seconds),
            names.ENV_BUDGET_SHARE: str(self._config.api_budget_share),
        }
        fn = lambda_.Function(
            self,
            ident,
            description=spec.description,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler=f"functions.{spec.name}.handler",
            code=self._layers.handler_code,
            layers=[self._layers.dependencies, self._layers.orgvault],
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_seconds),
            tracing=lambda_.Tracing.ACTIVE,
            role=role,
            log_group=log_group,
            environment=env,
            reserved_concurrent_executions=reserved,
        )
        self.functions[spec.name] = fn
        self.roles[spec.name] = role
        self.log_groups[spec.name] = log_group
        return fn

    def _grant(self, role: iam.Role, access: Access, stack: Stack) -> None:
        if access.table:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="Catalog",
                    actions=[
                        "dynamodb:GetItem",
                        "dynamodb:BatchGetItem",
                        "dynamodb:Query",
                        "dynamodb:PutItem",
                        "dynamodb:UpdateItem",
                        "dynamodb:DeleteItem",
                        "dynamodb:BatchWriteItem",
                        "dynamodb:ConditionCheckItem",
                        "dynamodb:DescribeTable",
                    ],
                    resources=[self._table.table_arn],
                )
            )
        bucket_actions: list[str] = []
        if access.bucket_read:
            bucket_actions += ["s3:GetObject", "s3:GetObjectVersion"]
        if access.bucket_write:
            bucket_actions += ["s3:PutObject", "s3:PutObjectRetention", "s3:AbortMultipartUpload"]
        if bucket_actions:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="VaultObjects", actions=bucket_actions, resources=[self._bucket.arn_for_objects("*")]
                )
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="VaultList", actions=["s3:ListBucket"], resources=[self._bucket.bucket_arn]
                )
            )
        if access.secrets and self._secrets:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="OrgSecrets",
                    actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    resources=[s.secret_arn for s in self._secrets.values()],
                )
            )
        # The platform key, only through the services that encrypt with it.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PlatformKeyViaServices",
                actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[self._platform_key.key_arn],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": [
                            f"s3.{stack.region}.amazonaws.com",
                            f"dynamodb.{stack.region}.amazonaws.com",
                            f"secretsmanager.{stack.region}.amazonaws.com",
                        ]
                    }
                },
            )
        )
        org_key_arns = [k.key_arn for k in self._org_keys.values()]
        if org_key_arns and access.org_key_encrypt:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="SealWithOrgKeys",
                    actions=["kms:GenerateDataKey", "kms:DescribeKey"],
                    resources=org_key_arns,
                )
            )
        if org_key_arns and access.content_key_decrypt and not access.org_key_decrypt:
            # File de-duplication needs the org's content-id HMAC key, itself a wrapped data key whose
            # context is {org, purpose: content-id}. Chunk, file and manifest keys carry no "purpose",
            # so this grant opens none of them.
            for org, key in self._org_keys.items():
                role.add_to_policy(
                    iam.PolicyStatement(
                        sid=f"ContentIdKey{''.join(c for c in org.title() if c.isalnum())}",
                        actions=["kms:Decrypt"],
                        resources=[key.key_arn],
                        conditions={
                            "StringEquals": {
                                f"kms:EncryptionContext:{names.ORG_CONTEXT_KEY}": org,
                                "kms:EncryptionContext:purpose": "content-id",
                            }
                        },
                    )
                )
        if org_key_arns and access.org_key_decrypt:
            # One statement per org: decrypt only with that org's encryption context.
            for org, key in self._org_keys.items():
                role.add_to_policy(
                    iam.PolicyStatement(
                        sid=f"OpenWithOrgKey{''.join(c for c in org.title() if c.isalnum())}",
                        actions=["kms:Decrypt", "kms:DescribeKey"],
                        resources=[key.key_arn],
                        conditions={"StringEquals": {f"kms:EncryptionContext:{names.ORG_CONTEXT_KEY}": org}},
                    )
                )
