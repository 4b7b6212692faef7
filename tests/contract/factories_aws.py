"""Factories for the AWS adapters under moto, the same shape as ``factories_local``: each factory
is a generator that yields a fresh, empty adapter and cleans up after it (pytest ``yield``-fixture
style). Everything runs in-process under ``moto.mock_aws``: no network, fake credentials.

Also the builders the AWS integration tests share (``aws_clients``, ``make_bucket``, ...).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import boto3
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler

from orgvault.adapters.aws_dynamodb import DynamoCatalog, create_catalog_table
from orgvault.adapters.aws_kms import KmsKeyProvider
from orgvault.adapters.aws_s3 import ObjectLockPolicy, S3ObjectStore
from orgvault.adapters.aws_secrets import SecretsManagerSecretStore

REGION = "eu-west-1"


@dataclass
class AwsClients:
    s3: Any
    kms: Any
    dynamodb: Any
    secretsmanager: Any
    sts: Any


_DYNAMO_SERIAL = threading.RLock()
_moto_call_action = DynamoHandler.call_action


def _serialized_call_action(self: Any) -> Any:
    with _DYNAMO_SERIAL:
        return _moto_call_action(self)


@contextmanager
def serialized_moto_dynamodb() -> Iterator[None]:
    """Make moto's DynamoDB apply one request at a time, as DynamoDB makes each request and each
    transaction atomic. moto does not lock: two threads' conditional writes can both pass, and a
    failed ``TransactWriteItems`` restores a deep copy of the table taken before it started, erasing
    other threads' writes meanwhile. Use it around any moto test where requests run concurrently
    (threads, Step Functions Map states)."""
    with mock.patch.object(DynamoHandler, "call_action", _serialized_call_action):
        yield


@contextmanager
def moto_aws() -> Iterator[AwsClients]:
    """Start moto with fake credentials and yield clients for every service the adapters use.
    DynamoDB requests are serialized in moto, as DynamoDB makes each one atomic."""
    saved = {
        k: os.environ.get(k) for k in ("AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    os.environ["AWS_DEFAULT_REGION"] = REGION
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        with mock_aws(), serialized_moto_dynamodb():
            session = boto3.Session(region_name=REGION)
            yield AwsClients(
                s3=session.client("s3"),
                kms=session.client("kms"),
                dynamodb=session.client("dynamodb"),
                secretsmanager=session.client("secretsmanager"),
                sts=session.client("sts"),
            )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def make_bucket(s3: Any, *, object_lock: bool = False) -> str:
    name = f"orgvault-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(
        Bucket=name,
        CreateBucketConfiguration={"LocationConstraint": REGION},
        ObjectLockEnabledForBucket=object_lock,
    )
    return name


def make_table(dynamodb: Any) -> str:
    name = f"orgvault-test-{uuid.uuid4().hex[:12]}"
    create_catalog_table(dynamodb, name)
    return name


# --- contract-suite factories -----------------------------------------------------------------


def aws_object_store(
    *, object_lock: ObjectLockPolicy | None = None, **kwargs: Any
) -> Iterator[S3ObjectStore]:
    """S3ObjectStore on a fresh moto bucket (with Object Lock enabled when a policy is given)."""
    with moto_aws() as aws:
        bucket = make_bucket(aws.s3, object_lock=object_lock is not None)
        yield S3ObjectStore(bucket, client=aws.s3, object_lock=object_lock, **kwargs)


def aws_key_provider(**kwargs: Any) -> Iterator[KmsKeyProvider]:
    """KmsKeyProvider on moto KMS (keys and aliases created on demand)."""
    with moto_aws() as aws:
        yield KmsKeyProvider(client=aws.kms, sts_client=aws.sts, **kwargs)


def aws_catalog(**kwargs: Any) -> Iterator[DynamoCatalog]:
    """DynamoCatalog on a fresh moto table."""
    with moto_aws() as aws:
        yield DynamoCatalog(make_table(aws.dynamodb), client=aws.dynamodb, **kwargs)


def aws_secret_store(**kwargs: Any) -> Iterator[SecretsManagerSecretStore]:
    """SecretsManagerSecretStore on moto Secrets Manager (cache on; its own writes invalidate it)."""
    kwargs.setdefault("recovery_days", 0)
    with moto_aws() as aws:
        yield SecretsManagerSecretStore(client=aws.secretsmanager, **kwargs)


#: name → factory, for suites parametrized over adapters.
OBJECT_STORES = {"s3": aws_object_store}
KEY_PROVIDERS = {"kms": aws_key_provider}
CATALOGS = {"dynamodb": aws_catalog}
SECRET_STORES = {"secretsmanager": aws_secret_store}
