"""Audit: a CloudTrail trail recording management events (KMS calls included — every decrypt names
its org in the encryption context) and S3 data events (read and write) of the vault bucket, with
log-file validation, KMS-encrypted, delivered to a separate bucket that is itself locked (Object Lock,
versioned, TLS-only, private, access-logged).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra_cdk.config import DeploymentConfig
from infra_cdk.constructs.vault_storage import locked_kms_bucket


class Audit(Construct):
    """``trail``, ``bucket`` (trail files), ``log_group`` (the trail's CloudWatch copy)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        key: kms.IKey,
        vault_bucket: s3.IBucket,
        access_log_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = locked_kms_bucket(
            self,
            "TrailBucket",
            config=config,
            key=key,
            access_log_bucket=access_log_bucket,
            access_log_prefix="trail/",
        )
        self.log_group = logs.LogGroup(
            self,
            "TrailLogs",
            retention=logs.RetentionDays.ONE_YEAR,
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.trail = cloudtrail.Trail(
            self,
            "Trail",
            bucket=self.bucket,
            encryption_key=key,
            enable_file_validation=True,
            include_global_service_events=True,
            is_multi_region_trail=True,
            management_events=cloudtrail.ReadWriteType.ALL,
            send_to_cloud_watch_logs=True,
            cloud_watch_log_group=self.log_group,
        )
        self.trail.add_s3_event_selector(
            [cloudtrail.S3EventSelector(bucket=vault_bucket)],
            read_write_type=cloudtrail.ReadWriteType.ALL,
            include_management_events=True,
        )
