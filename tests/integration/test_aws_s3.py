"""S3ObjectStore under moto: what is AWS-specific (conditional puts and races, multipart streaming,
Object Lock and SSE-KMS headers, checksum verification on read, error translation)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from orgvault.adapters.aws_metering import AwsMeter
from orgvault.adapters.aws_s3 import MIN_PART_SIZE, LockMode, ObjectLockPolicy, S3ObjectStore
from orgvault.errors import (
    ConfigError,
    IntegrityError,
    ObjectExists,
    ObjectNotFound,
    RetryableError,
    VaultUnavailable,
)
from tests.contract.factories_aws import REGION, make_bucket, moto_aws

MiB = 1024 * 1024


@pytest.fixture()
def aws():
    with moto_aws() as clients:
        yield clients


@pytest.fixture()
def store(aws):
    return S3ObjectStore(make_bucket(aws.s3), client=aws.s3, part_size=MIN_PART_SIZE)


def _moto_key(bucket: str, key: str):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(bucket, key)


def _blocks(total: int, block: int, seed: int = 0):
    """Deterministic, non-repeating-per-part content in ``block``-sized pieces."""
    sent = 0
    n = seed
    while sent < total:
        size = min(block, total - sent)
        piece = hashlib.sha256(str(n).encode()).digest() * (size // 32 + 1)
        yield piece[:size]
        sent += size
        n += 1


def test_put_get_round_trip_stores_sha256_checksum(aws, store):
    store.put("org/a/chunk-1", b"sealed bytes")
    assert store.get("org/a/chunk-1") == b"sealed bytes"
    head = aws.s3.head_object(Bucket=store.bucket, Key="org/a/chunk-1", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(b"sealed bytes").digest()).decode()
    assert store.size("org/a/chunk-1") == 12
    assert store.exists("org/a/chunk-1") and not store.exists("org/a/chunk-2")


def test_put_is_write_once_same_bytes_noop_different_bytes_refused(store):
    store.put("k", b"one")
    store.put("k", b"one")  # a retried write: no error
    with pytest.raises(ObjectExists):
        store.put("k", b"two")
    assert store.get("k") == b"one"


def test_conditional_put_race_between_two_writers(aws):
    """Two processes with their own clients write the same key: the loser never overwrites."""
    bucket = make_bucket(aws.s3)
    writer_a = S3ObjectStore(bucket, client=boto3.client("s3", region_name=REGION))
    writer_b = S3ObjectStore(bucket, client=boto3.client("s3", region_name=REGION))
    writer_a.put("manifest", b"A")
    with pytest.raises(ObjectExists):
        writer_b.put("manifest", b"B")
    writer_b.put("manifest", b"A")
    assert writer_b.get("manifest") == b"A"


def test_put_stream_multipart_parts_are_bounded_and_round_trip(aws, store):
    sizes: list[int] = []
    aws.s3.meta.events.register(
        "before-parameter-build.s3.UploadPart", lambda params, **_: sizes.append(len(params["Body"]))
    )
    total = 2 * MIN_PART_SIZE + 123_457
    expected = hashlib.sha256(b"".join(_blocks(total, MiB))).hexdigest()
    assert store.put_stream("files/big", _blocks(total, MiB)) == total
    assert sizes == [MIN_PART_SIZE, MIN_PART_SIZE, 123_457]  # never more than one part held
    assert store.size("files/big") == total
    streamed = hashlib.sha256()
    for block in store.get_stream("files/big", part_size=3 * MiB):
        assert len(block) <= 3 * MiB
        streamed.update(block)
    assert streamed.hexdigest() == expected
    assert hashlib.sha256(store.get("files/big")).hexdigest() == expected


def test_put_stream_small_is_a_single_put(aws, store):
    meter = AwsMeter().attach(aws.s3)
    assert store.put_stream("small", [b"ab", b"cd", b""]) == 4
    assert meter.count("s3", "PutObject") == 1 and meter.count("s3", "CreateMultipartUpload") == 0
    assert store.get("small") == b"abcd"
    assert store.put_stream("empty", iter(())) == 0 and store.get("empty") == b""


def test_put_stream_retry_does_not_reupload_and_refuses_other_content(aws, store):
    total = MIN_PART_SIZE + 10
    store.put_stream("f", _blocks(total, MiB))
    meter = AwsMeter().attach(aws.s3)
    assert store.put_stream("f", _blocks(total, MiB)) == total
    assert meter.count("s3", "UploadPart") == 0
    with pytest.raises(ObjectExists):
        store.put_stream("f", _blocks(total, MiB, seed=99))


def test_put_stream_race_lost_at_complete_is_detected(aws, store, monkeypatch):
    """Another writer finishes the same key between our existence check and our completion: the
    conditional CompleteMultipartUpload refuses, the upload is aborted, contents are compared."""
    total = MIN_PART_SIZE + 10
    store.put_stream("race", _blocks(total, MiB))
    monkeypatch.setattr(store, "exists", lambda key: False)
    assert store.put_stream("race", _blocks(total, MiB)) == total  # same bytes: fine
    with pytest.raises(ObjectExists):
        store.put_stream("race", _blocks(total, MiB, seed=7))
    assert aws.s3.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    assert (
        hashlib.sha256(store.get("race")).digest() == hashlib.sha256(b"".join(_blocks(total, MiB))).digest()
    )


@pytest.mark.parametrize("mode", [LockMode.GOVERNANCE, LockMode.COMPLIANCE])
def test_object_lock_retention_on_puts_and_multipart(aws, mode):
    bucket = make_bucket(aws.s3, object_lock=True)
    store = S3ObjectStore(
        bucket, client=aws.s3, object_lock=ObjectLockPolicy(mode, 30), part_size=MIN_PART_SIZE
    )
    store.put("chunk", b"x")
    head = aws.s3.head_object(Bucket=bucket, Key="chunk")
    assert head["ObjectLockMode"] == mode.value
    until = head["ObjectLockRetainUntilDate"]
    assert timedelta(days=29) < until - datetime.now(UTC) <= timedelta(days=30)
    # moto keeps no retention for multipart uploads: check what is sent on CreateMultipartUpload.
    sent: list[dict] = []
    aws.s3.meta.events.register(
        "before-parameter-build.s3.CreateMultipartUpload", lambda params, **_: sent.append(dict(params))
    )
    store.put_stream("file", _blocks(MIN_PART_SIZE + 1, MiB))
    assert sent[0]["ObjectLockMode"] == mode.value
    assert timedelta(days=29) < sent[0]["ObjectLockRetainUntilDate"] - datetime.now(UTC) <= timedelta(days=30)
    assert sent[0]["ChecksumAlgorithm"] == "SHA256"


def test_object_lock_policy_rejects_nonsense():
    with pytest.raises(ConfigError):
        ObjectLockPolicy(LockMode.GOVERNANCE, 0)


def test_sse_kms_second_layer(aws):
    key_arn = aws.kms.create_key()["KeyMetadata"]["Arn"]
    store = S3ObjectStore(make_bucket(aws.s3), client=aws.s3, kms_key_id=key_arn, part_size=MIN_PART_SIZE)
    store.put("a", b"1")
    store.put_stream("b", _blocks(MIN_PART_SIZE + 1, MiB))
    for key in ("a", "b"):
        head = aws.s3.head_object(Bucket=store.bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == key_arn


def test_damaged_object_is_detected_on_get_and_stream(store):
    store.put("k", b"genuine content")
    _moto_key(store.bucket, "k").value = b"tampered content"
    with pytest.raises(IntegrityError):
        store.get("k")
    with pytest.raises(IntegrityError):
        b"".join(store.get_stream("k", part_size=4))


def test_damaged_multipart_object_is_detected(store):
    store.put_stream("big", _blocks(MIN_PART_SIZE + 5, MiB))
    fake = _moto_key(store.bucket, "big")
    data = bytearray(fake.value)
    data[-1] ^= 1
    fake.value = bytes(data)
    with pytest.raises(IntegrityError):
        store.get("big")
    with pytest.raises(IntegrityError):
        for _ in store.get_stream("big"):
            pass


def test_missing_objects_and_listing(store):
    with pytest.raises(ObjectNotFound):
        store.get("nope")
    with pytest.raises(ObjectNotFound):
        store.size("nope")
    with pytest.raises(ObjectNotFound):
        list(store.get_stream("nope"))
    for key in ("p/b", "p/a", "p/c/d", "q/x"):
        store.put(key, key.encode())
    assert list(store.list("p/")) == ["p/a", "p/b", "p/c/d"]
    store.delete("p/a")
    store.delete("p/a")  # missing: no error
    assert list(store.list("p/")) == ["p/b", "p/c/d"]


def test_prefix_isolates_stores(aws):
    bucket = make_bucket(aws.s3)
    one = S3ObjectStore(bucket, client=aws.s3, prefix="tenant-1")
    two = S3ObjectStore(bucket, client=aws.s3, prefix="tenant-2/")
    one.put("k", b"1")
    two.put("k", b"2")
    assert one.get("k") == b"1" and two.get("k") == b"2"
    assert list(one.list("")) == ["k"]


def test_missing_bucket_says_what_to_fix(aws):
    store = S3ObjectStore("orgvault-no-such-bucket", client=aws.s3)
    with pytest.raises(ConfigError, match="orgvault-no-such-bucket"):
        store.put("k", b"x")


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("SlowDown", 503, VaultUnavailable),
        ("InternalError", 500, VaultUnavailable),
        ("ConditionalRequestConflict", 409, VaultUnavailable),
        ("AccessDenied", 403, ConfigError),
    ],
)
def test_error_translation(code, status, expected):
    client = boto3.client(
        "s3",
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"max_attempts": 1}),
    )
    store = S3ObjectStore("bucket-x", client=client)
    with Stubber(client) as stub:
        stub.add_client_error("put_object", service_error_code=code, http_status_code=status)
        with pytest.raises(expected) as info:
            store.put("k", b"x")
    if expected is VaultUnavailable:
        assert isinstance(info.value, RetryableError)
    else:
        assert "s3:PutObject" in str(info.value) and "bucket-x" in str(info.value)


def test_part_size_below_s3_minimum_is_refused(aws):
    with pytest.raises(ConfigError):
        S3ObjectStore("b", client=aws.s3, part_size=MiB)


def test_configured_from_deployment_values(aws):
    bucket = make_bucket(aws.s3, object_lock=True)
    store = S3ObjectStore.configured(
        bucket, kms_key_id="alias/aws/s3", lock_mode="compliance", lock_days="7", client=aws.s3
    )
    assert (
        store.object_lock == ObjectLockPolicy(LockMode.COMPLIANCE, 7) and store.kms_key_id == "alias/aws/s3"
    )
    plain = S3ObjectStore.configured(bucket, client=aws.s3)
    assert plain.object_lock is None and plain.kms_key_id is None
    with pytest.raises(ConfigError, match="ORGVAULT_LOCK_MODE"):
        S3ObjectStore.configured(bucket, lock_mode="forever", lock_days="7", client=aws.s3)
    with pytest.raises(ConfigError, match="ORGVAULT_LOCK_DAYS"):
        S3ObjectStore.configured(bucket, lock_mode="GOVERNANCE", lock_days="", client=aws.s3)
