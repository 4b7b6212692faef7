"""SecretsManagerSecretStore under moto: one secret per org, cached reads through Powertools,
deletion and restore, redaction in repr and SDK debug logs, error translation."""

from __future__ import annotations

import json
import logging

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from orgvault.adapters.aws_metering import AwsMeter
from orgvault.adapters.aws_secrets import SecretsManagerSecretStore
from orgvault.errors import ConfigError, CredentialsNotFound, RetryableError, SecretsUnavailable
from tests.contract.factories_aws import REGION, moto_aws

SECRET = {"client_id": "3MVG9-client", "private_key": "-----BEGIN KEY-----s3cr3t-----END KEY-----"}


@pytest.fixture()
def aws():
    with moto_aws() as clients:
        yield clients


def test_one_secret_per_org_under_the_documented_name(aws):
    store = SecretsManagerSecretStore(client=aws.secretsmanager)
    store.put("acme", SECRET)
    raw = aws.secretsmanager.get_secret_value(SecretId="orgvault/acme/salesforce")["SecretString"]
    assert json.loads(raw) == SECRET
    assert store.get("acme") == SECRET


def test_reads_are_cached_and_writes_invalidate(aws):
    store = SecretsManagerSecretStore(client=aws.secretsmanager, max_age=300)
    meter = AwsMeter().attach(aws.secretsmanager)
    store.put("acme", SECRET)
    for _ in range(5):
        assert store.get("acme") == SECRET
    assert meter.count("secretsmanager", "GetSecretValue") == 1
    store.put("acme", {**SECRET, "client_id": "rotated"})
    assert store.get("acme")["client_id"] == "rotated"
    assert meter.count("secretsmanager", "GetSecretValue") == 2


def test_delete_then_reconnect(aws):
    store = SecretsManagerSecretStore(client=aws.secretsmanager, recovery_days=7)
    store.put("acme", SECRET)
    store.delete("acme")
    with pytest.raises(CredentialsNotFound, match="acme"):
        store.get("acme")
    store.delete("acme")  # already scheduled: no error
    store.put("acme", SECRET)  # restores the scheduled secret and writes the new value
    assert store.get("acme") == SECRET


def test_values_never_in_repr_or_sdk_debug_logs(aws, caplog):
    caplog.set_level(logging.DEBUG)
    store = SecretsManagerSecretStore(client=aws.secretsmanager)
    store.put("acme", SECRET)
    got = store.get("acme")
    assert "s3cr3t" not in repr(got) and "client_id" in repr(got)
    assert "s3cr3t" not in repr(store)
    assert "s3cr3t" not in caplog.text and "3MVG9-client" not in caplog.text
    assert "GetSecretValue" in caplog.text  # debug logging was on and did record the calls


def test_non_json_secret_is_a_config_error_without_its_value(aws):
    aws.secretsmanager.create_secret(Name="orgvault/acme/salesforce", SecretString="s3cr3t-plain")
    store = SecretsManagerSecretStore(client=aws.secretsmanager)
    with pytest.raises(ConfigError) as info:
        store.get("acme")
    assert "s3cr3t" not in str(info.value) and info.value.__cause__ is None


def test_bad_configuration_refused():
    with pytest.raises(ConfigError):
        SecretsManagerSecretStore(client=object(), name_template="orgvault/salesforce")


@pytest.mark.parametrize(
    ("code", "expected"),
    [("ThrottlingException", SecretsUnavailable), ("AccessDeniedException", ConfigError)],
)
def test_errors_are_translated(code, expected):
    client = boto3.client(
        "secretsmanager",
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"max_attempts": 1}),
    )
    store = SecretsManagerSecretStore(client=client)
    with Stubber(client) as stub:
        stub.add_client_error("get_secret_value", service_error_code=code, http_status_code=400)
        with pytest.raises(expected) as info:
            store.get("acme")
    assert "orgvault/acme/salesforce" in str(info.value)
    assert isinstance(info.value, RetryableError) == (expected is SecretsUnavailable)
