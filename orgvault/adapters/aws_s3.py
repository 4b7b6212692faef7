"""ObjectStore on Amazon S3.

Contract (see ``orgvault.ports.ObjectStore``):

- **Write-once.** Every write is conditional (``If-None-Match: *``). When S3 answers 412 because the
  key exists, the stored SHA-256 is compared with ours: equal → no-op (a retried write), different →
  ``ObjectExists``. Nothing is overwritten, even by two writers racing.
- **Checksums.** Every object is written with ``ChecksumAlgorithm=SHA256``. Single-request objects
  carry S3's full-object SHA-256; multipart objects carry S3's composite checksum (SHA-256 of the
  parts' SHA-256 digests) and record their part size in the ``orgvault-part-size`` metadata so a
  reader can recompute it. Reads recompute the checksum over the bytes received and raise
  ``IntegrityError`` on mismatch (``get_stream`` raises it when the stream ends, before returning
  normally: a consumer must not trust the bytes until the iterator is exhausted).
- **Object Lock** (optional): governance or compliance retention for N days on every write.
- **SSE-KMS** (optional) as a second layer under the envelope encryption, with an S3 Bucket Key.
- **Streaming.** ``put_stream`` uses multipart upload with fixed parts (≥ 5 MiB): at most one part
  is held in memory. ``get_stream`` reads ranged GETs pinned to the object's ETag.
- **Errors.** ``ObjectNotFound``; ``VaultUnavailable`` (retryable: throttling, 5xx, network, after
  the SDK's adaptive retries); ``ConfigError`` for missing buckets and denied access (names the
  action and bucket); ``IntegrityError`` for checksum mismatches.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError, FlexibleChecksumError

from orgvault.adapters.aws_common import (
    TRANSPORT_ERRORS,
    error_code,
    http_status,
    is_access_denied,
    is_transient,
    make_client,
)
from orgvault.constants import MULTIPART_PART_SIZE
from orgvault.errors import ConfigError, IntegrityError, ObjectExists, ObjectNotFound, VaultUnavailable

MIN_PART_SIZE = 5 * 1024 * 1024
PART_SIZE_METADATA = "orgvault-part-size"


class LockMode(StrEnum):
    GOVERNANCE = "GOVERNANCE"
    COMPLIANCE = "COMPLIANCE"


@dataclass(frozen=True)
class ObjectLockPolicy:
    """Retention applied to every object written: ``mode`` for ``days`` from the write."""

    mode: LockMode
    days: int

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ConfigError(f"Object Lock retention must be at least 1 day, not {self.days}")


def _b64sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _composite(part_digests: list[bytes]) -> str:
    return base64.b64encode(hashlib.sha256(b"".join(part_digests)).digest()).decode("ascii")


def _precondition_failed(exc: ClientError) -> bool:
    """412: the key already exists (``If-None-Match: *``). A 409 ``ConditionalRequestConflict``
    (another conditional write to the key still in flight) is not this: it is retryable."""
    return http_status(exc) == 412 or error_code(exc) == "PreconditionFailed"


def _strip_parts_suffix(checksum: str) -> str:
    """S3 writes a composite checksum as ``BASE64-N`` (N parts); compare the digest only."""
    return checksum.split("-", 1)[0]


class S3ObjectStore:
    """ObjectStore on one S3 bucket, optionally under a key prefix."""

    def __init__(
        self,
        bucket: str,
        *,
        client: Any = None,
        prefix: str = "",
        kms_key_id: str | None = None,
        object_lock: ObjectLockPolicy | None = None,
        part_size: int = MULTIPART_PART_SIZE,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ConfigError(f"S3 multipart part size must be at least 5 MiB, not {part_size} bytes")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.kms_key_id = kms_key_id
        self.object_lock = object_lock
        self.part_size = part_size
        self._client = client if client is not None else make_client("s3")

    @classmethod
    def configured(
        cls,
        bucket: str,
        *,
        kms_key_id: str = "",
        lock_mode: str = "",
        lock_days: str | int = "",
        client: Any = None,
    ) -> S3ObjectStore:
        """Build from deployment values as text (``ORGVAULT_VAULT_KMS_KEY``, ``ORGVAULT_LOCK_MODE``,
        ``ORGVAULT_LOCK_DAYS``): empty means off. Bad values raise ``ConfigError`` naming them."""
        policy = None
        if lock_mode:
            try:
                mode = LockMode(str(lock_mode).upper())
            except ValueError:
                raise ConfigError(
                    f"ORGVAULT_LOCK_MODE must be GOVERNANCE or COMPLIANCE, not {lock_mode!r}"
                ) from None
            try:
                days = int(lock_days)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"ORGVAULT_LOCK_DAYS must be a whole number of days, not {lock_days!r}"
                ) from None
            policy = ObjectLockPolicy(mode, days)
        return cls(bucket, client=client, kms_key_id=kms_key_id or None, object_lock=policy)

    def __repr__(self) -> str:
        return f"S3ObjectStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    # --- helpers ------------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or "//" in key:
            raise ValueError(f"invalid object key {key!r}")
        return self.prefix + key

    def _write_args(self) -> dict[str, Any]:
        """Arguments common to PutObject and CreateMultipartUpload."""
        args: dict[str, Any] = {"Bucket": self.bucket, "ChecksumAlgorithm": "SHA256"}
        if self.kms_key_id:
            args.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self.kms_key_id, BucketKeyEnabled=True)
        if self.object_lock is not None:
            args.update(
                ObjectLockMode=self.object_lock.mode.value,
                ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=self.object_lock.days),
            )
        return args

    def _translate(self, exc: Exception, action: str, key: str) -> Exception:
        if isinstance(exc, ClientError):
            code = error_code(exc)
            if code in {"NoSuchKey", "NotFound"} or (http_status(exc) == 404 and code != "NoSuchBucket"):
                return ObjectNotFound(f"no object {key!r} in bucket {self.bucket!r}")
            if code == "NoSuchBucket":
                return ConfigError(
                    f"bucket {self.bucket!r} does not exist; check ORGVAULT_BUCKET and the region"
                )
            if is_access_denied(exc):
                return ConfigError(
                    f"access denied: the role lacks s3:{action} on s3://{self.bucket}/{self.prefix}* "
                    f"(or kms:GenerateDataKey/kms:Decrypt on the bucket's SSE-KMS key); fix the IAM or key policy"
                )
            if is_transient(exc) or code == "ConditionalRequestConflict":
                return VaultUnavailable(f"S3 {action} on {key!r} failed ({code}); retry later")
            return VaultUnavailable(f"S3 {action} on {key!r} failed: {code}")
        if isinstance(exc, TRANSPORT_ERRORS):
            return VaultUnavailable(
                f"S3 {action} on {key!r}: cannot reach S3 ({type(exc).__name__}); retry later"
            )
        return exc

    def _head(self, full_key: str, key: str) -> dict[str, Any]:
        try:
            return self._client.head_object(Bucket=self.bucket, Key=full_key, ChecksumMode="ENABLED")
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "GetObject", key) from exc

    def _stored_checksum(self, head: dict[str, Any]) -> tuple[str, int | None]:
        """(checksum digest without ``-N``, part size if multipart else None)."""
        part_size = (head.get("Metadata") or {}).get(PART_SIZE_METADATA)
        return _strip_parts_suffix(str(head.get("ChecksumSHA256") or "")), int(
            part_size
        ) if part_size else None

    def _same_content(
        self, key: str, full_key: str, *, whole: str, composite: tuple[int, str] | None = None
    ) -> bool:
        """Does the stored object hold the bytes whose full SHA-256 is ``whole`` (and, written in
        parts of ``composite[0]`` bytes, whose composite checksum is ``composite[1]``)?"""
        head = self._head(full_key, key)
        stored, part_size = self._stored_checksum(head)
        if stored and part_size is None:
            return stored == whole
        if stored and composite is not None and part_size == composite[0]:
            return stored == composite[1]
        # Another part layout (or no checksum): hash the stored bytes.
        hasher = hashlib.sha256()
        for block in self.get_stream(key):
            hasher.update(block)
        return base64.b64encode(hasher.digest()).decode("ascii") == whole

    # --- writes -------------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key`` once; same bytes again is a no-op, different bytes ``ObjectExists``."""
        full_key = self._key(key)
        checksum = _b64sha256(data)
        try:
            self._client.put_object(
                Key=full_key, Body=data, ChecksumSHA256=checksum, IfNoneMatch="*", **self._write_args()
            )
            return
        except ClientError as exc:
            if not _precondition_failed(exc):
                raise self._translate(exc, "PutObject", key) from exc
        except TRANSPORT_ERRORS as exc:
            raise self._translate(exc, "PutObject", key) from exc
        if not self._same_content(key, full_key, whole=checksum):
            raise ObjectExists(f"{key!r} already exists with different content; vault objects are write-once")

    def put_stream(self, key: str, parts: Iterable[bytes]) -> int:
        """Write-once from an iterable of byte strings, holding at most one part (``part_size``) in
        memory. Small streams (under one part) go in a single PutObject. Returns the size."""
        full_key = self._key(key)
        buffer = bytearray()
        iterator = iter(parts)
        # Fill the first part; if the stream ends first, it is a plain put.
        for block in iterator:
            buffer += block
            if len(buffer) >= self.part_size:
                break
        else:
            self.put(key, bytes(buffer))
            return len(buffer)
        return self._multipart(key, full_key, buffer, iterator)

    def _parts(self, buffer: bytearray, iterator: Iterator[bytes]) -> Iterator[bytes]:
        """Re-cut the stream into parts of exactly ``part_size`` (the last one shorter)."""
        while True:
            while len(buffer) >= self.part_size:
                part = bytes(buffer[: self.part_size])
                del buffer[: self.part_size]
                yield part
            block = next(iterator, None)
            if block is None:
                break
            buffer += block
        if buffer:
            yield bytes(buffer)

    def _multipart(self, key: str, full_key: str, buffer: bytearray, iterator: Iterator[bytes]) -> int:
        if self.exists(key):
            # Retried write: don't upload, just compare (consumes the stream, one part at a time).
            return self._compare_stream(key, full_key, self._parts(buffer, iterator))
        args = self._write_args()
        try:
            upload_id = self._client.create_multipart_upload(
                Key=full_key, Metadata={PART_SIZE_METADATA: str(self.part_size)}, **args
            )["UploadId"]
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "PutObject", key) from exc
        done: list[dict[str, Any]] = []
        digests: list[bytes] = []
        whole = hashlib.sha256()
        size = 0
        try:
            for number, part in enumerate(self._parts(buffer, iterator), start=1):
                digest = hashlib.sha256(part).digest()
                checksum = base64.b64encode(digest).decode("ascii")
                answer = self._client.upload_part(
                    Bucket=self.bucket,
                    Key=full_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=part,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum,
                )
                done.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum})
                digests.append(digest)
                whole.update(part)
                size += len(part)
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=full_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": done},
                IfNoneMatch="*",
            )
            return size
        except ClientError as exc:
            self._abort(full_key, upload_id)
            if _precondition_failed(exc):
                # Lost a race with another writer of the same key.
                whole_b64 = base64.b64encode(whole.digest()).decode("ascii")
                composite = (self.part_size, _composite(digests))
                if self._same_content(key, full_key, whole=whole_b64, composite=composite):
                    return size
                raise ObjectExists(
                    f"{key!r} already exists with different content; vault objects are write-once"
                ) from exc
            raise self._translate(exc, "PutObject", key) from exc
        except BaseException as exc:
            self._abort(full_key, upload_id)
            if isinstance(exc, TRANSPORT_ERRORS):
                raise self._translate(exc, "PutObject", key) from exc
            raise

    def _compare_stream(self, key: str, full_key: str, parts: Iterator[bytes]) -> int:
        digests: list[bytes] = []
        whole = hashlib.sha256()
        size = 0
        for part in parts:
            digests.append(hashlib.sha256(part).digest())
            whole.update(part)
            size += len(part)
        whole_b64 = base64.b64encode(whole.digest()).decode("ascii")
        if not self._same_content(
            key, full_key, whole=whole_b64, composite=(self.part_size, _composite(digests))
        ):
            raise ObjectExists(f"{key!r} already exists with different content; vault objects are write-once")
        return size

    def _abort(self, full_key: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=full_key, UploadId=upload_id)
        except (ClientError, *TRANSPORT_ERRORS):
            pass  # the bucket's lifecycle rule aborts incomplete uploads

    # --- reads --------------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        """The object's bytes, checked against the stored SHA-256 (``IntegrityError`` if not equal)."""
        full_key = self._key(key)
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=full_key, ChecksumMode="ENABLED")
            data = answer["Body"].read()
        except FlexibleChecksumError as exc:
            raise IntegrityError(
                f"{key!r}: S3 checksum mismatch on read; the stored object is damaged"
            ) from exc
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "GetObject", key) from exc
        stored, part_size = self._stored_checksum(answer)
        self._verify(key, stored, part_size, data_blocks=[data])
        return data

    def _verify(self, key: str, stored: str, part_size: int | None, *, data_blocks: list[bytes]) -> None:
        if not stored:
            raise IntegrityError(f"{key!r} has no SHA-256 checksum in S3; it was not written by orgvault")
        data = b"".join(data_blocks)
        if part_size:
            digests = [
                hashlib.sha256(data[i : i + part_size]).digest() for i in range(0, len(data), part_size)
            ]
            actual = _composite(digests)
        else:
            actual = _b64sha256(data)
        if actual != stored:
            raise IntegrityError(
                f"{key!r}: SHA-256 of the bytes read does not match S3's checksum; damaged object"
            )

    def get_stream(self, key: str, *, part_size: int = 8 * 1024 * 1024) -> Iterator[bytes]:
        """Yield the object in blocks of at most ``part_size`` bytes (ranged GETs pinned to the
        object's ETag). The checksum is checked as the bytes go by; a mismatch raises
        ``IntegrityError`` at the end of the stream."""
        full_key = self._key(key)
        head = self._head(full_key, key)
        stored, stored_part_size = self._stored_checksum(head)
        if not stored:
            raise IntegrityError(f"{key!r} has no SHA-256 checksum in S3; it was not written by orgvault")
        size = int(head["ContentLength"])
        etag = head["ETag"]
        return self._stream(key, full_key, etag, size, stored, stored_part_size, max(1, part_size))

    def _stream(
        self,
        key: str,
        full_key: str,
        etag: str,
        size: int,
        stored: str,
        stored_part_size: int | None,
        block: int,
    ) -> Iterator[bytes]:
        whole = hashlib.sha256()
        part_hash = hashlib.sha256()
        part_fill = 0
        digests: list[bytes] = []
        offset = 0
        while offset < size:
            end = min(size, offset + block) - 1
            try:
                answer = self._client.get_object(
                    Bucket=self.bucket, Key=full_key, Range=f"bytes={offset}-{end}", IfMatch=etag
                )
                data = answer["Body"].read()
            except ClientError as exc:
                if http_status(exc) == 412:
                    raise IntegrityError(f"{key!r} changed while being read (ETag differs)") from exc
                raise self._translate(exc, "GetObject", key) from exc
            except TRANSPORT_ERRORS as exc:
                raise self._translate(exc, "GetObject", key) from exc
            if len(data) != end - offset + 1:
                raise VaultUnavailable(f"S3 returned a short range for {key!r}; retry")
            whole.update(data)
            if stored_part_size:
                view = memoryview(data)
                while view:
                    take = min(len(view), stored_part_size - part_fill)
                    part_hash.update(view[:take])
                    part_fill += take
                    view = view[take:]
                    if part_fill == stored_part_size:
                        digests.append(part_hash.digest())
                        part_hash, part_fill = hashlib.sha256(), 0
            offset = end + 1
            yield data
        if stored_part_size:
            if part_fill:
                digests.append(part_hash.digest())
            actual = _composite(digests) if size else _b64sha256(b"")
        else:
            actual = base64.b64encode(whole.digest()).decode("ascii")
        if actual != stored:
            raise IntegrityError(
                f"{key!r}: SHA-256 of the bytes read does not match S3's checksum; damaged object"
            )

    def exists(self, key: str) -> bool:
        try:
            self._head(self._key(key), key)
            return True
        except ObjectNotFound:
            return False

    def size(self, key: str) -> int:
        return int(self._head(self._key(key), key)["ContentLength"])

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix`` in lexicographic (UTF-8 byte) order, paginated."""
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix) :]
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "ListBucket", prefix) from exc

    def delete(self, key: str) -> None:
        """Remove the object (on a versioned bucket: add a delete marker; versions under Object Lock
        stay until their retention ends — crypto-shredding the org key makes them unreadable)."""
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if http_status(exc) == 404:
                return
            raise self._translate(exc, "DeleteObject", key) from exc
        except TRANSPORT_ERRORS as exc:
            raise self._translate(exc, "DeleteObject", key) from exc
