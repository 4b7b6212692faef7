"""DynamoCatalog under moto: single-table items, conditional run lock with TTL, transactional
record_chunk and snapshot commit (compare-and-set head), pagination, no scans, consumed capacity,
error translation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config
from botocore.stub import ANY, Stubber

from orgvault.adapters import aws_dynamodb
from orgvault.adapters.aws_dynamodb import DynamoCatalog
from orgvault.adapters.aws_metering import AwsMeter
from orgvault.domain.models import (
    AuthMethod,
    Checkpoint,
    ChunkKind,
    ChunkRecord,
    FileRecord,
    ObjectState,
    OrgConnection,
    Run,
    RunKind,
    RunStatus,
    SnapshotRecord,
)
from orgvault.errors import (
    CatalogUnavailable,
    ConcurrentCommit,
    ConfigError,
    IntegrityError,
    RetryableError,
    RunInProgress,
    RunNotFound,
    SnapshotNotFound,
    UnknownOrg,
)
from tests.contract.factories_aws import REGION, make_table, moto_aws

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


@pytest.fixture()
def aws():
    with moto_aws() as clients:
        yield clients


@pytest.fixture()
def table(aws):
    return make_table(aws.dynamodb)


@pytest.fixture()
def catalog(aws, table):
    return DynamoCatalog(table, client=aws.dynamodb)


def chunk(seq: int, *, obj: str = "Account", key: str | None = None) -> ChunkRecord:
    return ChunkRecord(
        org="acme",
        run_id="r1",
        object_name=obj,
        seq=seq,
        kind=ChunkKind.RECORDS,
        key=key or f"acme/r1/{obj}/{seq}",
        records=10,
        plain_bytes=100,
        stored_bytes=80,
        sha256="ab" * 32,
    )


def checkpoint(next_seq: int, *, obj: str = "Account") -> Checkpoint:
    return Checkpoint(
        org="acme",
        run_id="r1",
        object_name=obj,
        state=ObjectState.IN_PROGRESS,
        strategy="bulk",
        cursor={"job": "750x", "locator": None, "n": 1.5},
        next_seq=next_seq,
        records=10 * next_seq,
        watermark="2026-11-01T00:00:00.000+0000",
        updated_at=T0,
    )


def snapshot(sid: str, parent: str | None = None, *, minute: int = 0) -> SnapshotRecord:
    return SnapshotRecord(
        org="acme",
        snapshot_id=sid,
        created_at=T0 + timedelta(minutes=minute),
        kind=RunKind.FULL,
        manifest_key=f"acme/{sid}/manifest",
        manifest_sha256="cd" * 32,
        parent_id=parent,
        records=5,
    )


def test_domain_values_round_trip_through_items(catalog):
    org = OrgConnection(
        name="acme",
        instance_url="https://acme.my.salesforce.com",
        auth_method=AuthMethod.JWT,
        key_ref="arn:aws:kms:eu-west-1:1:key/k",
        created_at=T0,
        settings={"include": ["Account"], "share": 0.5},
    )
    catalog.put_org(org)
    assert catalog.get_org("acme") == org
    assert catalog.list_orgs() == [org]
    run = Run(
        org="acme", run_id="r1", kind=RunKind.FULL, status=RunStatus.RUNNING, started_at=T0, stats={"a": 1}
    )
    catalog.put_run(run)
    assert catalog.get_run("acme", "r1") == run
    file = FileRecord(
        org="acme",
        source="ContentVersion/068x/VersionData",
        content_id="c1",
        key="k",
        size=3,
        stored_bytes=40,
        sha256="ef" * 32,
        source_stamp="2026-01-01T00:00:00.000+0000",
    )
    catalog.put_file(file)
    assert catalog.get_file("acme", file.source) == file
    assert catalog.get_file("acme", "nope") is None
    with pytest.raises(UnknownOrg):
        catalog.get_org("globex")
    with pytest.raises(RunNotFound):
        catalog.get_run("acme", "r9")


def test_item_layout_is_the_documented_single_table(aws, table, catalog):
    catalog.record_chunk(chunk(0), checkpoint(1))
    items = aws.dynamodb.scan(TableName=table)["Items"]  # test-only scan, to look at the layout
    keys = sorted((i["PK"]["S"], i["SK"]["S"], i["type"]["S"]) for i in items)
    assert keys == [
        ("RUN#acme#r1", "CHUNK#Account#0000000000", "chunk"),
        ("RUN#acme#r1", "CKPT#Account", "checkpoint"),
    ]


def test_run_lock_is_conditional_and_expires(aws, table, catalog):
    lock = catalog.acquire_lock("acme", "run-a", now=T0, ttl_seconds=600)
    assert catalog.get_lock("acme") == lock
    with pytest.raises(RunInProgress, match="run-a"):
        catalog.acquire_lock("acme", "run-b", now=T0 + timedelta(seconds=599), ttl_seconds=600)
    # the holder refreshes
    refreshed = catalog.acquire_lock("acme", "run-a", now=T0 + timedelta(seconds=300), ttl_seconds=600)
    assert refreshed.expires_at == T0 + timedelta(seconds=900)
    catalog.release_lock("acme", "run-b")  # not the holder: nothing happens
    assert catalog.get_lock("acme").owner == "run-a"
    # expired: anyone may take it
    taken = catalog.acquire_lock("acme", "run-b", now=T0 + timedelta(seconds=900), ttl_seconds=60)
    assert taken.owner == "run-b"
    item = aws.dynamodb.get_item(TableName=table, Key={"PK": {"S": "ORG#acme"}, "SK": {"S": "LOCK"}})["Item"]
    assert int(item["ttl"]["N"]) == int((taken.expires_at + timedelta(days=1)).timestamp())
    forced = catalog.acquire_lock(
        "acme", "operator", now=T0 + timedelta(seconds=901), ttl_seconds=60, force=True
    )
    assert catalog.get_lock("acme") == forced
    catalog.release_lock("acme", "operator")
    assert catalog.get_lock("acme") is None


def test_lock_race_between_two_catalog_clients(table, aws):
    a = DynamoCatalog(table, client=boto3.client("dynamodb", region_name=REGION))
    b = DynamoCatalog(table, client=boto3.client("dynamodb", region_name=REGION))
    a.acquire_lock("acme", "A", now=T0, ttl_seconds=60)
    with pytest.raises(RunInProgress):
        b.acquire_lock("acme", "B", now=T0, ttl_seconds=60)


def test_record_chunk_is_atomic_and_idempotent(catalog):
    catalog.record_chunk(chunk(0), checkpoint(1))
    catalog.record_chunk(chunk(0), checkpoint(1))  # a repeat: no-op
    with pytest.raises(IntegrityError):
        catalog.record_chunk(chunk(0, key="acme/r1/Account/other"), checkpoint(5))
    # the refused call moved nothing
    assert catalog.list_chunks("acme", "r1") == [chunk(0)]
    assert catalog.list_checkpoints("acme", "r1")[0].next_seq == 1
    with pytest.raises(ValueError):
        catalog.record_chunk(chunk(1), checkpoint(2, obj="Contact"))


def test_lists_are_paginated_and_ordered(aws, table):
    catalog = DynamoCatalog(table, client=aws.dynamodb, page_size=7)
    meter = AwsMeter().attach(aws.dynamodb)
    for obj in ("Contact", "Account", "Account_History"):
        for seq in (10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9):
            catalog.record_chunk(chunk(seq, obj=obj), checkpoint(seq + 1, obj=obj))
    got = catalog.list_chunks("acme", "r1")
    assert [(c.object_name, c.seq) for c in got] == [
        (o, s) for o in ("Account", "Account_History", "Contact") for s in range(11)
    ]
    assert [c.seq for c in catalog.list_chunks("acme", "r1", "Account")] == list(range(11))
    assert meter.count("dynamodb", "Query") >= 5 + 2  # 33 items / 7 per page, then 11 / 7
    assert [c.object_name for c in catalog.list_checkpoints("acme", "r1")] == [
        "Account",
        "Account_History",
        "Contact",
    ]
    assert meter.count("dynamodb", "Scan") == 0


def test_snapshot_commit_compare_and_set(table, catalog):
    assert catalog.head_snapshot("acme") is None and catalog.head_version("acme") == 0
    s1, s2 = snapshot("s1"), snapshot("s2", "s1", minute=1)
    catalog.commit_snapshot(s1, expected_head=None)
    catalog.commit_snapshot(s1, expected_head=None)  # the same commit again: no-op
    assert catalog.head_snapshot("acme") == s1 and catalog.head_version("acme") == 1
    with pytest.raises(ConcurrentCommit):
        catalog.commit_snapshot(s2, expected_head=None)
    with pytest.raises(SnapshotNotFound):
        catalog.get_snapshot("acme", "s2")  # the refused commit wrote nothing
    catalog.commit_snapshot(s2, expected_head="s1")
    assert catalog.head_snapshot("acme") == s2 and catalog.head_version("acme") == 2
    assert catalog.list_snapshots("acme") == [s1, s2]
    with pytest.raises(ConcurrentCommit):
        catalog.commit_snapshot(snapshot("s3", "s1", minute=2), expected_head="s1")


def test_two_runs_racing_to_commit_one_wins(table, aws):
    a = DynamoCatalog(table, client=boto3.client("dynamodb", region_name=REGION))
    b = DynamoCatalog(table, client=boto3.client("dynamodb", region_name=REGION))
    a.commit_snapshot(snapshot("base"), expected_head=None)
    a.commit_snapshot(snapshot("from-a", "base", minute=1), expected_head="base")
    with pytest.raises(ConcurrentCommit, match="from-a"):
        b.commit_snapshot(snapshot("from-b", "base", minute=1), expected_head="base")
    assert b.head_snapshot("acme").snapshot_id == "from-a"


def test_consumed_capacity_is_reported(aws, catalog):
    meter = AwsMeter().attach(aws.dynamodb)
    catalog.record_chunk(chunk(0), checkpoint(1))
    catalog.list_chunks("acme", "r1")
    assert meter.write_units > 0 and meter.read_units > 0


def _stubbed_catalog():
    client = boto3.client(
        "dynamodb",
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"max_attempts": 1}),
    )
    return DynamoCatalog("orgvault-catalog", client=client), Stubber(client)


def test_transaction_conflict_is_retried(monkeypatch):
    monkeypatch.setattr(aws_dynamodb.time, "sleep", lambda s: None)
    catalog, stub = _stubbed_catalog()
    stub.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        http_status_code=400,
        modeled_fields={"CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}]},
    )
    stub.add_response("transact_write_items", {}, {"TransactItems": ANY, "ReturnConsumedCapacity": "TOTAL"})
    with stub:
        catalog.record_chunk(chunk(0), checkpoint(1))
        stub.assert_no_pending_responses()


def test_persistent_transaction_conflict_is_retryable(monkeypatch):
    monkeypatch.setattr(aws_dynamodb.time, "sleep", lambda s: None)
    catalog, stub = _stubbed_catalog()
    for _ in range(aws_dynamodb._CONFLICT_RETRIES):
        stub.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            http_status_code=400,
            modeled_fields={"CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}]},
        )
    with stub, pytest.raises(CatalogUnavailable) as info:
        catalog.record_chunk(chunk(0), checkpoint(1))
    assert isinstance(info.value, RetryableError)


def test_throttling_and_access_errors_are_translated():
    catalog, stub = _stubbed_catalog()
    stub.add_client_error(
        "get_item", service_error_code="ProvisionedThroughputExceededException", http_status_code=400
    )
    stub.add_client_error("get_item", service_error_code="AccessDeniedException", http_status_code=400)
    with stub:
        with pytest.raises(CatalogUnavailable):
            catalog.get_org("acme")
        with pytest.raises(ConfigError, match="dynamodb:GetItem on table 'orgvault-catalog'"):
            catalog.get_org("acme")


def test_missing_table_says_what_to_fix(aws):
    with pytest.raises(ConfigError, match="ORGVAULT_TABLE"):
        DynamoCatalog("no-such-table", client=aws.dynamodb).list_orgs()
