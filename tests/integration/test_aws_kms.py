"""KmsKeyProvider under moto: per-org keys and aliases, encryption-context binding, configured and
BYOK keys, rotation without rewrite, crypto-shredding behind a confirmation, error translation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from orgvault.adapters.aws_kms import KmsKeyProvider
from orgvault.errors import ConfigError, KeyServiceUnavailable, KeyUnavailable, RetryableError
from tests.contract.factories_aws import REGION, moto_aws

CTX = {"org": "acme", "snapshot": "20260101T000000Z-1", "object": "Account", "chunk": "3", "v": "1"}


@pytest.fixture()
def aws():
    with moto_aws() as clients:
        yield clients


@pytest.fixture()
def keys(aws):
    return KmsKeyProvider(client=aws.kms, sts_client=aws.sts)


def test_one_key_per_org_behind_alias_idempotent(aws, keys):
    a = keys.create_org_key("acme")
    assert a.startswith("arn:aws:kms:")
    assert keys.create_org_key("acme") == a
    b = keys.create_org_key("globex")
    assert b != a
    assert aws.kms.describe_key(KeyId="alias/orgvault/acme")["KeyMetadata"]["Arn"] == a
    assert aws.kms.get_key_rotation_status(KeyId=a)["KeyRotationEnabled"] is True


def test_data_key_round_trip_and_context_binding(keys):
    ref = keys.create_org_key("acme")
    dk = keys.generate_data_key(ref, CTX)
    assert len(dk.plaintext) == 32 and dk.wrapped != dk.plaintext and dk.key_ref == ref
    assert keys.decrypt_data_key(ref, dk.wrapped, CTX) == dk.plaintext
    moved = {**CTX, "object": "Contact"}
    with pytest.raises(KeyUnavailable) as info:
        keys.decrypt_data_key(ref, dk.wrapped, moved)
    message = str(info.value)
    assert "context" in message and "Contact" in message
    assert dk.plaintext.hex() not in message


def test_wrapped_key_of_another_org_does_not_open(keys):
    acme, globex = keys.create_org_key("acme"), keys.create_org_key("globex")
    dk = keys.generate_data_key(acme, CTX)
    with pytest.raises(KeyUnavailable):
        keys.decrypt_data_key(globex, dk.wrapped, CTX)


def test_configured_existing_key_is_used_as_is(aws):
    arn = aws.kms.create_key(Description="customer managed")["KeyMetadata"]["Arn"]
    keys = KmsKeyProvider(client=aws.kms, org_keys={"acme": arn})
    assert keys.create_org_key("acme") == arn
    dk = keys.generate_data_key(arn, CTX)
    assert keys.decrypt_data_key(arn, dk.wrapped, CTX) == dk.plaintext
    # no alias was created for a configured key
    assert not [a for a in aws.kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/orgvault/acme"]


def test_configured_key_must_be_symmetric_and_enabled(aws):
    asym = aws.kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_2048")["KeyMetadata"]["Arn"]
    with pytest.raises(ConfigError, match="symmetric"):
        KmsKeyProvider(client=aws.kms, org_keys={"acme": asym}).create_org_key("acme")
    meta = aws.kms.create_key()["KeyMetadata"]
    off = meta["Arn"]
    aws.kms.disable_key(KeyId=meta["KeyId"])
    with pytest.raises(KeyUnavailable, match="Disabled"):
        KmsKeyProvider(client=aws.kms, org_keys={"acme": off}).create_org_key("acme")


def test_byok_external_key_behind_alias(aws, keys):
    arn = keys.create_external_key("acme")
    meta = aws.kms.describe_key(KeyId="alias/orgvault/acme")["KeyMetadata"]
    assert meta["Arn"] == arn and meta["Origin"] == "EXTERNAL"
    assert keys.create_org_key("acme") == arn  # the alias now names the org's key
    assert aws.kms.get_key_rotation_status(KeyId=arn)["KeyRotationEnabled"] is False


def test_rotation_needs_no_rewrite(keys):
    ref = keys.create_org_key("acme")
    old = keys.generate_data_key(ref, CTX)
    keys.rotate_now("acme")
    new = keys.generate_data_key(ref, CTX)
    assert keys.decrypt_data_key(ref, old.wrapped, CTX) == old.plaintext
    assert keys.decrypt_data_key(ref, new.wrapped, CTX) == new.plaintext
    status = keys.rotation_status("acme")
    assert status.automatic and status.on_demand_rotations == 1 and ref.endswith(status.key_ref)


def test_shred_requires_exact_confirmation(aws, keys):
    ref = keys.create_org_key("acme")
    with pytest.raises(ConfigError, match="shred acme"):
        keys.schedule_shred("acme", confirm="yes")
    with pytest.raises(ConfigError):
        keys.schedule_shred("acme", confirm="shred globex")
    assert aws.kms.describe_key(KeyId=ref)["KeyMetadata"]["KeyState"] == "Enabled"
    when = keys.schedule_shred("acme", confirm=KmsKeyProvider.shred_confirmation("acme"), pending_days=7)
    assert timedelta(days=6) < when - datetime.now(UTC) <= timedelta(days=7, minutes=1)
    assert aws.kms.describe_key(KeyId=ref)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    keys.cancel_shred("acme")
    assert aws.kms.describe_key(KeyId=ref)["KeyMetadata"]["KeyState"] == "Enabled"


def test_missing_keys_say_what_to_fix(keys):
    with pytest.raises(KeyUnavailable, match="not found"):
        keys.generate_data_key("alias/orgvault/nobody", CTX)
    with pytest.raises(KeyUnavailable, match="connect the org"):
        keys.generate_data_key("", CTX)


def _stubbed(code: str, status: int, operation: str):
    client = boto3.client(
        "kms",
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"max_attempts": 1}),
    )
    sts = boto3.client("sts", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y")
    stub, sts_stub = Stubber(client), Stubber(sts)
    stub.add_client_error(operation, service_error_code=code, http_status_code=status)
    sts_stub.add_response(
        "get_caller_identity",
        {"Arn": "arn:aws:sts::123456789012:assumed-role/orgvault-extract/fn", "Account": "1", "UserId": "u"},
    )
    return KmsKeyProvider(client=client, sts_client=sts), stub, sts_stub


def test_access_denied_names_principal_permission_key_and_context():
    keys, stub, sts_stub = _stubbed("AccessDeniedException", 400, "decrypt")
    with stub, sts_stub, pytest.raises(KeyUnavailable) as info:
        keys.decrypt_data_key("arn:aws:kms:eu-west-1:1:key/k-1", b"\x01" * 40, CTX)
    message = str(info.value)
    assert "assumed-role/orgvault-extract" in message
    assert "kms:Decrypt" in message and "key/k-1" in message and "'object': 'Account'" in message


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        ("DisabledException", "kms:EnableKey"),
        ("KMSInvalidStateException", "kms:CancelKeyDeletion"),
        ("IncorrectKeyException", "key_ref"),
        ("InvalidCiphertextException", "context differs"),
    ],
)
def test_key_state_errors_say_what_to_fix(code, fix):
    # moto does not refuse disabled or pending-deletion keys, so KMS's answers are stubbed here.
    keys, stub, _ = _stubbed(code, 400, "decrypt")
    with stub, pytest.raises(KeyUnavailable, match=fix) as info:
        keys.decrypt_data_key("arn:aws:kms:eu-west-1:1:key/k-1", b"\x01" * 40, CTX)
    assert not isinstance(info.value, RetryableError)


def test_throttling_is_retryable():
    keys, stub, _ = _stubbed("ThrottlingException", 400, "generate_data_key")
    with stub, pytest.raises(KeyServiceUnavailable) as info:
        keys.generate_data_key("arn:aws:kms:eu-west-1:1:key/k-1", CTX)
    assert isinstance(info.value, RetryableError)


def test_repr_shows_no_key_material(keys):
    ref = keys.create_org_key("acme")
    dk = keys.generate_data_key(ref, CTX)
    assert dk.plaintext.hex() not in repr(keys)
