"""The same backup engine in AWS mode: S3 vault, DynamoDB catalog, KMS keys, Secrets Manager
credentials (all under moto), wired by ``bootstrap.open_app`` from settings. The snapshot equals the
emulator org, verify passes, and an incremental after changes is again identical."""

from __future__ import annotations

import pytest

from orgvault.bootstrap import open_app
from orgvault.domain.models import RunKind
from orgvault.services.verify import verify_snapshot
from orgvault.settings import AwsSettings, Mode, Settings
from tests.integration.test_backup_support import ORG, assert_identical, change_org, connect, source_factory

pytest.importorskip("moto")


def test_backup_in_aws_mode_under_moto(fresh_emulator):
    from orgvault.adapters.aws_dynamodb import create_catalog_table
    from tests.contract.factories_aws import make_bucket, moto_aws

    emu = fresh_emulator(scale=200, seed=41)
    with moto_aws() as aws:
        bucket = make_bucket(aws.s3)
        create_catalog_table(aws.dynamodb, "orgvault-test")
        settings = Settings.from_env({}, reconcile_every=1, chunk_records=60).with_overrides(
            mode=Mode.AWS, aws=AwsSettings(bucket=bucket, table="orgvault-test")
        )
        app = open_app(settings, source_factory=source_factory())
        connect(app, emu)
        assert type(app.catalog).__name__ == "DynamoCatalog" and type(app.store).__name__ == "S3ObjectStore"
        full = app.backup_service().run_backup(ORG)
        assert full.snapshot.kind is RunKind.FULL
        assert_identical(app, emu)
        change_org(emu.org, seed=41)
        inc = app.backup_service().run_backup(ORG)
        assert inc.snapshot.parent_id == full.snapshot.snapshot_id
        assert_identical(app, emu)
        report = verify_snapshot(app.catalog, app.vault, ORG)
        assert report.ok, report.problems
        keys = aws.s3.list_objects_v2(Bucket=bucket, Prefix=f"orgs/{ORG}/manifests/")["KeyCount"]
        assert keys == 2


def test_aws_settings_from_the_environment_reach_every_s3_put():
    """ORGVAULT_VAULT_KMS_KEY, ORGVAULT_LOCK_MODE and ORGVAULT_LOCK_DAYS (as deployed) → each write
    carries SSE-KMS with that key and an Object Lock retention; the master key stays out."""
    from datetime import UTC, datetime, timedelta

    from tests.contract.factories_aws import make_bucket, moto_aws

    with moto_aws() as aws:
        bucket = make_bucket(aws.s3, object_lock=True)
        kms_arn = aws.kms.create_key(Description="vault SSE")["KeyMetadata"]["Arn"]
        env = {
            "ORGVAULT_MODE": "aws",
            "ORGVAULT_BUCKET": bucket,
            "ORGVAULT_TABLE": "orgvault-test",
            "ORGVAULT_VAULT_KMS_KEY": kms_arn,
            "ORGVAULT_LOCK_MODE": "governance",
            "ORGVAULT_LOCK_DAYS": "7",
            "ORGVAULT_MASTER_KEY": "A" * 43 + "=",
        }
        settings = Settings.from_env(env)
        assert settings.aws.values["ORGVAULT_VAULT_KMS_KEY"] == kms_arn
        assert "ORGVAULT_MASTER_KEY" not in settings.aws.values
        app = open_app(settings)
        app.store.put("orgs/acme/probe", b"sealed bytes")
        head = aws.s3.head_object(Bucket=bucket, Key="orgs/acme/probe")
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == kms_arn
        assert head["ObjectLockMode"] == "GOVERNANCE"
        until = head["ObjectLockRetainUntilDate"]
        assert timedelta(days=6) < until - datetime.now(UTC) <= timedelta(days=7)


def test_bad_lock_settings_are_a_config_error_naming_the_variable():
    from orgvault.errors import ConfigError

    env = {
        "ORGVAULT_MODE": "aws",
        "ORGVAULT_BUCKET": "b",
        "ORGVAULT_TABLE": "t",
        "ORGVAULT_LOCK_MODE": "forever",
    }
    with pytest.raises(ConfigError, match="ORGVAULT_LOCK_MODE"):
        open_app(Settings.from_env(env))
