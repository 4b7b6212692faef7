"""AWS mode end to end, under moto: one emulator org is backed up (full, then an incremental after a
working day of changes) twice — by an App wired by ``open_app`` in AWS mode (S3 ObjectStore, DynamoDB
Catalog, KMS KeyProvider, Secrets Manager SecretStore; nothing local) and by a local-mode App — and:

* each snapshot equals the org's true state (the same check as the local e2e tests);
* the AWS snapshot holds exactly the records (every field of every record of every object) and file
  bytes of the local snapshot taken at the same moment;
* verify passes on the AWS vault, and catches an S3 chunk with a flipped byte, a deleted file body
  and a chunk copied from another org;
* a data key wrapped by KMS for one org's chunk does not open under another org's (or another
  chunk's) encryption context, nor under another org's key: KMS enforces the context.

The scenario is built once per module (the backups are the slow part); tests that damage the S3
vault put the original bytes back.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orgvault.adapters.aws_dynamodb import DynamoCatalog
from orgvault.adapters.aws_kms import KmsKeyProvider
from orgvault.adapters.aws_metering import AwsMeter
from orgvault.adapters.aws_s3 import S3ObjectStore
from orgvault.adapters.aws_secrets import SecretsManagerSecretStore
from orgvault.bootstrap import App, open_app
from orgvault.domain.envelope import parse_preamble
from orgvault.domain.layout import FileRef, chunk_context, file_key, org_prefix
from orgvault.domain.models import RunKind
from orgvault.errors import OrgVaultError
from orgvault.services.snapshot_reader import SnapshotReader
from orgvault.services.verify import verify_snapshot
from orgvault.settings import Mode, Settings
from tests.contract.factories_aws import REGION, AwsClients, make_bucket, make_table, moto_aws
from tests.integration.test_backup_support import (
    ORG,
    SMALL_CHUNKS,
    assert_identical,
    change_org,
    connect,
    make_app,
    source_factory,
)

BETA = "beta"


@dataclass
class Scenario:
    aws: AwsClients
    bucket: str
    cloud: App  # AWS mode
    local: App  # local mode, same org, same moments
    emu: Any
    meter: AwsMeter
    full_ids: tuple[str, str]  # (aws, local) snapshot ids of the full run
    inc_ids: tuple[str, str]  # (aws, local) snapshot ids of the incremental run
    full_metered: dict[str, Any]


def aws_settings(bucket: str, table: str) -> Settings:
    """Settings as a deployed function sees them: from the environment, mode ``aws``."""
    env = {
        "ORGVAULT_MODE": "aws",
        "ORGVAULT_BUCKET": bucket,
        "ORGVAULT_TABLE": table,
        "AWS_DEFAULT_REGION": REGION,
    }
    return Settings.from_env(env, **SMALL_CHUNKS)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, jwt_private_key: str) -> Iterator[Scenario]:
    from tests.conftest import _start

    emu = _start(jwt_private_key, scale=400, seed=31)
    try:
        with moto_aws() as aws:
            bucket, table = make_bucket(aws.s3), make_table(aws.dynamodb)
            cloud = open_app(aws_settings(bucket, table), source_factory=source_factory())
            meter = AwsMeter()
            for adapter in (cloud.store, cloud.catalog, cloud.keys, cloud.secrets):
                meter.attach(adapter._client)
            local = make_app(Path(tmp_path_factory.mktemp("local")))
            connect(cloud, emu)
            connect(cloud, emu, name=BETA)
            connect(local, emu)

            full_aws = cloud.backup_service().run_backup(ORG)
            full_metered = meter.snapshot()
            full_local = local.backup_service().run_backup(ORG)
            assert full_aws.snapshot.kind is full_local.snapshot.kind is RunKind.FULL
            assert full_aws.records == full_local.records > 300

            change_org(emu.org, seed=13)
            inc_aws = cloud.backup_service().run_backup(ORG)
            inc_local = local.backup_service().run_backup(ORG)
            assert inc_aws.snapshot.kind is inc_local.snapshot.kind is RunKind.INCREMENTAL
            assert inc_aws.snapshot.parent_id == full_aws.snapshot.snapshot_id
            yield Scenario(
                aws=aws,
                bucket=bucket,
                cloud=cloud,
                local=local,
                emu=emu,
                meter=meter,
                full_ids=(full_aws.snapshot.snapshot_id, full_local.snapshot.snapshot_id),
                inc_ids=(inc_aws.snapshot.snapshot_id, inc_local.snapshot.snapshot_id),
                full_metered=full_metered,
            )
            cloud.close()
            local.close()
    finally:
        emu.stop()


# --- helpers ---------------------------------------------------------------------------------------


def snapshot_contents(app: App, org: str, snapshot_id: str) -> dict[str, Any]:
    """Everything a restore would see in a snapshot, independent of the vault that holds it:
    per object its field list and its records by Id, file references replaced by the sha256 and
    size of the file's bytes (content ids are keyed per vault, so they differ between vaults)."""
    reader = SnapshotReader.open(app.vault, app.catalog.get_snapshot(org, snapshot_id))
    out: dict[str, Any] = {}
    for name in reader.objects():
        records: dict[str, dict[str, Any]] = {}
        for rec in reader.iter_records(name):
            row = dict(rec)
            for field, value in rec.items():
                ref = FileRef.from_value(value)
                if ref is not None:
                    body = b"".join(app.vault.read_file_stream(org, ref.content_id, expected_size=ref.size))
                    row[field] = {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
            records[rec["Id"]] = row
        out[name] = {"fields": reader.entry(name).fields, "records": records}
    return out


def diff_contents(a: dict[str, Any], b: dict[str, Any], limit: int = 20) -> list[str]:
    out: list[str] = []
    for name in sorted(a.keys() | b.keys()):
        if name not in a or name not in b:
            out.append(f"{name}: only in {'aws' if name in a else 'local'}")
            continue
        if a[name]["fields"] != b[name]["fields"]:
            out.append(f"{name}: field lists differ")
        ra, rb = a[name]["records"], b[name]["records"]
        for rid in sorted(ra.keys() ^ rb.keys()):
            out.append(f"{name} {rid}: only in {'aws' if rid in ra else 'local'}")
        out += [
            f"{name} {rid}: records differ" for rid in sorted(ra.keys() & rb.keys()) if ra[rid] != rb[rid]
        ]
    return out[:limit]


def head_chunks(app: App, org: str = ORG) -> list[tuple[str, Any]]:
    snap = app.catalog.head_snapshot(org)
    return app.vault.read_snapshot_manifest(snap).chunk_refs()


def s3_bytes(sc: Scenario, key: str) -> bytes:
    return sc.aws.s3.get_object(Bucket=sc.bucket, Key=key)["Body"].read()


def s3_overwrite(sc: Scenario, key: str, data: bytes) -> None:
    """Replace an object behind the adapter's back, as an attacker with s3:PutObject would — with a
    valid S3 SHA-256 checksum, so that only orgvault's own authentication can tell."""
    sc.aws.s3.put_object(Bucket=sc.bucket, Key=key, Body=data, ChecksumAlgorithm="SHA256")


# --- the app really is on AWS ------------------------------------------------------------------------


def test_aws_mode_is_wired_from_aws_adapters_only(scenario: Scenario) -> None:
    cloud = scenario.cloud
    assert isinstance(cloud.store, S3ObjectStore)
    assert isinstance(cloud.catalog, DynamoCatalog)
    assert isinstance(cloud.keys, KmsKeyProvider)
    assert isinstance(cloud.secrets, SecretsManagerSecretStore)
    assert cloud.settings.mode is Mode.AWS
    # the vault's objects are in the bucket, its catalog in the table, the org's key is a KMS key
    keys = [
        o["Key"]
        for page in scenario.aws.s3.get_paginator("list_objects_v2").paginate(Bucket=scenario.bucket)
        for o in page.get("Contents", [])
    ]
    assert any(k.startswith(org_prefix(ORG)) for k in keys) and len(keys) > 10
    key_ref = cloud.catalog.get_org(ORG).key_ref
    assert key_ref.startswith("arn:aws:kms:")
    assert scenario.aws.kms.describe_key(KeyId=key_ref)["KeyMetadata"]["KeyState"] == "Enabled"
    assert cloud.catalog.get_org(BETA).key_ref != key_ref, "one KMS key per connected org"
    secret = scenario.aws.secretsmanager.describe_secret(SecretId=cloud.secrets.name(ORG))
    assert secret["Name"] == f"orgvault/{ORG}/salesforce"
    # the full run went through the AWS APIs (metered by the botocore hooks)
    req = scenario.full_metered["requests"]
    assert req.get("kms.GenerateDataKey", 0) > 0 and req.get("s3.PutObject", 0) > 0
    assert scenario.full_metered["dynamodb"]["write_units"] > 0
    assert req.get("secretsmanager.GetSecretValue", 0) >= 1


# --- same content as local mode, and as the org -------------------------------------------------------


@pytest.mark.parametrize("run", ["full", "incremental"])
def test_aws_snapshot_equals_local_snapshot_and_the_org(scenario: Scenario, run: str) -> None:
    aws_id, local_id = scenario.full_ids if run == "full" else scenario.inc_ids
    aws_view = snapshot_contents(scenario.cloud, ORG, aws_id)
    local_view = snapshot_contents(scenario.local, ORG, local_id)
    assert sum(len(o["records"]) for o in aws_view.values()) > 300
    assert any(
        isinstance(v, dict) and "sha256" in v
        for o in aws_view.values()
        for r in o["records"].values()
        for v in r.values()
    ), "the snapshot holds file bodies"
    differences = diff_contents(aws_view, local_view)
    assert not differences, "AWS and local snapshots differ:\n" + "\n".join(differences)
    aws_snap = scenario.cloud.catalog.get_snapshot(ORG, aws_id)
    local_snap = scenario.local.catalog.get_snapshot(ORG, local_id)
    assert aws_snap.records == local_snap.records
    if run == "incremental":  # the org has not changed since: both equal its true state
        assert_identical(scenario.cloud, scenario.emu, snapshot_id=aws_id)
        assert_identical(scenario.local, scenario.emu, snapshot_id=local_id)


def test_full_snapshot_still_reads_as_it_was(scenario: Scenario) -> None:
    """The incremental did not disturb the full snapshot: it differs from the head where the org
    changed, exactly as the local vault's full snapshot does."""
    aws_full = snapshot_contents(scenario.cloud, ORG, scenario.full_ids[0])
    aws_inc = snapshot_contents(scenario.cloud, ORG, scenario.inc_ids[0])
    assert diff_contents(aws_full, aws_inc), "the org changed between the runs"


# --- verify -----------------------------------------------------------------------------------------


def test_verify_passes_on_the_aws_vault(scenario: Scenario) -> None:
    report = verify_snapshot(scenario.cloud.catalog, scenario.cloud.vault, ORG)
    assert report.ok, report.problems
    assert report.chain_length == 2
    assert report.contents.chunks > 0 and report.contents.files > 0
    local = verify_snapshot(scenario.local.catalog, scenario.local.vault, ORG)
    assert (report.contents.records, report.contents.files) == (local.contents.records, local.contents.files)


def test_tampered_s3_chunk_is_caught_by_verify(scenario: Scenario) -> None:
    name, ref = next((n, r) for n, r in head_chunks(scenario.cloud) if r.kind == "records")
    original = s3_bytes(scenario, ref.key)
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0x01
    s3_overwrite(scenario, ref.key, bytes(damaged))
    try:
        report = verify_snapshot(scenario.cloud.catalog, scenario.cloud.vault, ORG)
        assert not report.ok
        assert name in report.bad_objects
        assert any(p.key == ref.key and p.seq == ref.seq for p in report.problems), report.problems
    finally:
        s3_overwrite(scenario, ref.key, original)
    assert verify_snapshot(scenario.cloud.catalog, scenario.cloud.vault, ORG).ok


def test_deleted_s3_file_body_is_caught_by_verify(scenario: Scenario) -> None:
    reader = SnapshotReader.open(scenario.cloud.vault, scenario.cloud.catalog.head_snapshot(ORG))
    ref = next(
        r
        for name in reader.objects()
        for rec in reader.iter_records(name)
        for r in [FileRef.from_value(v) for v in rec.values()]
        if r is not None
    )
    key = file_key(ORG, ref.content_id)
    original = s3_bytes(scenario, key)
    scenario.aws.s3.delete_object(Bucket=scenario.bucket, Key=key)
    try:
        report = verify_snapshot(scenario.cloud.catalog, scenario.cloud.vault, ORG)
        assert not report.ok
        assert any(ref.content_id in (p.key or "") + p.detail for p in report.problems), report.problems
    finally:
        s3_overwrite(scenario, key, original)
    assert verify_snapshot(scenario.cloud.catalog, scenario.cloud.vault, ORG).ok


def test_chunk_of_another_org_does_not_pass_as_ours(scenario: Scenario) -> None:
    """A chunk of ``acme`` copied over a chunk of ``beta`` (same object) is caught: it is sealed
    for another org (and, on AWS, its data key opens only under acme's key and context)."""
    cloud = scenario.cloud
    if cloud.catalog.head_snapshot(BETA) is None:
        cloud.backup_service().run_backup(BETA)
    acme = {n: r for n, r in reversed(head_chunks(cloud, ORG)) if r.kind == "records"}
    name, beta_ref = next((n, r) for n, r in head_chunks(cloud, BETA) if r.kind == "records" and n in acme)
    original = s3_bytes(scenario, beta_ref.key)
    s3_overwrite(scenario, beta_ref.key, s3_bytes(scenario, acme[name].key))
    try:
        report = verify_snapshot(cloud.catalog, cloud.vault, BETA)
        assert name in report.bad_objects
        assert any(p.key == beta_ref.key for p in report.problems)
        assert verify_snapshot(cloud.catalog, cloud.vault, ORG).ok
    finally:
        s3_overwrite(scenario, beta_ref.key, original)


# --- KMS enforces the encryption context ---------------------------------------------------------------


def test_kms_decrypt_requires_the_chunks_own_context(scenario: Scenario) -> None:
    cloud, kms = scenario.cloud, scenario.aws.kms
    acme_key = cloud.catalog.get_org(ORG).key_ref
    beta_key = cloud.catalog.get_org(BETA).key_ref
    name, ref = next((n, r) for n, r in head_chunks(cloud) if r.kind == "records")
    header, _ = parse_preamble(s3_bytes(scenario, ref.key))
    context = dict(header.context)
    assert context == chunk_context(ORG, ref.run_id, name, ref.seq)  # names org, snapshot, object, chunk

    # the chunk's own context opens its data key, through the adapter and through KMS directly
    plain = cloud.keys.decrypt_data_key(acme_key, header.wrapped_key, context)
    assert len(plain) == 32
    assert kms.decrypt(CiphertextBlob=header.wrapped_key, EncryptionContext=context)["Plaintext"] == plain

    other_contexts = {
        "another org": {**context, "org": BETA},
        "another chunk": {**context, "seq": str(ref.seq + 1)},
        "another object": {**context, "object": "Contact" if name != "Contact" else "Account"},
        "no context": {},
    }
    for why, other in other_contexts.items():
        with pytest.raises(ClientError) as raw:
            kms.decrypt(CiphertextBlob=header.wrapped_key, EncryptionContext=other)
        assert raw.value.response["Error"]["Code"] == "InvalidCiphertextException", why
        with pytest.raises(OrgVaultError):
            cloud.keys.decrypt_data_key(acme_key, header.wrapped_key, other)
    # beta's key does not open acme's data key, even with acme's context
    with pytest.raises(OrgVaultError):
        cloud.keys.decrypt_data_key(beta_key, header.wrapped_key, context)
    with pytest.raises(ClientError):
        kms.decrypt(CiphertextBlob=header.wrapped_key, KeyId=beta_key, EncryptionContext=context)


def test_wrapped_keys_are_never_stored_in_plain(scenario: Scenario) -> None:
    """The plaintext data key of a chunk appears nowhere in the stored object."""
    _, ref = next((n, r) for n, r in head_chunks(scenario.cloud) if r.kind == "records")
    data = s3_bytes(scenario, ref.key)
    header, _ = parse_preamble(data)
    plain = scenario.aws.kms.decrypt(
        CiphertextBlob=header.wrapped_key, EncryptionContext=dict(header.context)
    )["Plaintext"]
    assert plain not in data and base64.b64encode(plain) not in data
