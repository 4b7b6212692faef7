"""AwsMeter counts requests by service and operation, errors, and DynamoDB capacity units."""

from __future__ import annotations

import boto3
import pytest

from orgvault.adapters.aws_dynamodb import DynamoCatalog
from orgvault.adapters.aws_kms import KmsKeyProvider
from orgvault.adapters.aws_metering import AwsMeter
from orgvault.adapters.aws_s3 import S3ObjectStore
from orgvault.domain.models import Checkpoint, ChunkKind, ChunkRecord, ObjectState
from orgvault.errors import ObjectNotFound
from tests.contract.factories_aws import REGION, make_bucket, make_table, moto_aws


@pytest.fixture()
def aws():
    with moto_aws() as clients:
        yield clients


def test_counts_requests_by_service_and_operation(aws):
    meter = AwsMeter()
    for client in (aws.s3, aws.kms, aws.dynamodb):
        meter.attach(client)
    store = S3ObjectStore(make_bucket(aws.s3), client=aws.s3)
    keys = KmsKeyProvider(client=aws.kms)
    catalog = DynamoCatalog(make_table(aws.dynamodb), client=aws.dynamodb)
    meter.reset()  # count the work, not the set-up

    ref = keys.create_org_key("acme")
    for seq in range(3):
        dk = keys.generate_data_key(ref, {"org": "acme", "chunk": str(seq)})
        store.put(f"acme/c{seq}", b"x" * 10)
        chunk = ChunkRecord("acme", "r1", "Account", seq, ChunkKind.RECORDS, f"acme/c{seq}", 1, 1, 1, "00")
        catalog.record_chunk(
            chunk, Checkpoint("acme", "r1", "Account", ObjectState.IN_PROGRESS, next_seq=seq + 1)
        )
    keys.decrypt_data_key(ref, dk.wrapped, {"org": "acme", "chunk": "2"})
    store.get("acme/c0")
    with pytest.raises(ObjectNotFound):
        store.get("acme/missing")

    assert meter.count("kms", "GenerateDataKey") == 3 and meter.count("kms", "Decrypt") == 1
    assert meter.count("s3", "PutObject") == 3 and meter.count("s3", "GetObject") == 2
    assert meter.count("dynamodb", "TransactWriteItems") == 3
    assert meter.errors["s3.GetObject"] == 1
    assert meter.write_units >= 3 * 2 * 2  # two items per transaction, 2 WCU each
    snap = meter.snapshot()
    assert (
        snap["requests"]["kms.GenerateDataKey"] == 3 and snap["dynamodb"]["write_units"] == meter.write_units
    )


def test_attach_to_session_counts_clients_made_from_it(aws):
    session = boto3.Session(region_name=REGION)
    meter = AwsMeter().attach(session)
    client = session.client("dynamodb")
    catalog = DynamoCatalog(make_table(client), client=client)
    catalog.list_orgs()
    assert meter.count("dynamodb", "Query") == 1
    assert meter.count("dynamodb", "CreateTable") == 1
    assert meter.read_units > 0


def test_read_write_split_when_dynamodb_gives_it():
    meter = AwsMeter()
    meter._add_capacity(
        "TransactWriteItems", [{"TableName": "t", "CapacityUnits": 4.0, "WriteCapacityUnits": 4.0}]
    )
    meter._add_capacity("Query", {"TableName": "t", "CapacityUnits": 1.5})
    meter._add_capacity("PutItem", {"TableName": "t", "CapacityUnits": 1.0})
    assert (meter.read_units, meter.write_units) == (1.5, 5.0)


def test_default_session_counts_adapters_built_without_a_client(aws, monkeypatch):
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    meter = AwsMeter().attach_default_session()
    bucket = make_bucket(aws.s3)
    store = S3ObjectStore(bucket)  # builds its own client through boto3's default session
    assert store._client.meta.config.retries["mode"] == "adaptive"
    store.put("k", b"v")
    assert meter.count("s3", "PutObject") == 1
