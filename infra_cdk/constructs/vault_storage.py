"""Vault storage: the S3 bucket holding sealed chunks, files and manifests, and its access-log bucket.

The vault bucket is versioned, Object Lock enabled (default retention mode and days from the context),
blocks all public access, denies any request not made over TLS, logs every access to the log bucket,
encrypts at rest with the platform KMS key (bucket keys on to keep KMS calls down), and moves objects to
cheaper storage classes as they age; noncurrent versions expire after the retention period.
(Chunks are additionally sealed client-side with the org key; SSE-KMS is defence in depth.)
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra_cdk.config import DeploymentConfig


def locked_kms_bucket(
    scope: Construct,
    construct_id: str,
    *,
    config: DeploymentConfig,
    key: kms.IKey,
    access_log_bucket: s3.IBucket,
    access_log_prefix: str,
    **extra: Any,
) -> s3.Bucket:
    """A write-once bucket: SSE-KMS with a bucket key, no public access, TLS 1.2+ only, versioned,
    Object Lock with the configured default retention, access-logged, retained on stack deletion."""
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        versioned=True,
        object_lock_enabled=True,
        object_lock_default_retention=(
            s3.ObjectLockRetention.compliance(Duration.days(config.lock_days))
            if config.lock_mode == "COMPLIANCE"
            else s3.ObjectLockRetention.governance(Duration.days(config.lock_days))
        ),
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        server_access_logs_bucket=access_log_bucket,
        server_access_logs_prefix=access_log_prefix,
        removal_policy=RemovalPolicy.RETAIN,
        **extra,
    )


def locked_log_bucket(scope: Construct, construct_id: str, *, retention_days: int) -> s3.Bucket:
    """A bucket for access logs: SSE-S3 (server access logging cannot write SSE-KMS), TLS-only, private,
    versioned, expiring after ``retention_days``."""
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=RemovalPolicy.RETAIN,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-access-logs",
                expiration=Duration.days(retention_days),
                noncurrent_version_expiration=Duration.days(30),
            )
        ],
    )


class VaultStorage(Construct):
    """``bucket`` (the vault) and ``access_log_bucket``."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_log_bucket = locked_log_bucket(
            self, "AccessLogs", retention_days=max(config.retention_days, 90)
        )
        self.bucket = locked_kms_bucket(
            self,
            "Vault",
            config=config,
            key=key,
            access_log_bucket=self.access_log_bucket,
            access_log_prefix="vault/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="age-to-cheaper-storage",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(config.infrequent_access_after_days),
                        ),
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=Duration.days(config.glacier_after_days),
                        ),
                    ],
                    noncurrent_version_expiration=Duration.days(config.retention_days),
                    abort_incomplete_multipart_upload_after=Duration.days(2),
                )
            ],
        )
