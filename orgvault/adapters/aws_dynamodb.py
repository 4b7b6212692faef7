"""Catalog on Amazon DynamoDB: one table, single-table design (see docs/format.md,
"DynamoDB single-table").

Contract (see ``orgvault.ports.Catalog``):

- Items are keyed by ``PK``/``SK`` strings; no GSI. Every list is a paginated ``Query`` (following
  ``LastEvaluatedKey``) on one partition, with strongly consistent reads; nothing scans.
- The run lock is a conditional put (free, expired, or held by the same owner); it carries a TTL
  attribute so abandoned locks are eventually removed, but expiry is decided by the condition,
  never by TTL (which may lag by days).
- ``record_chunk`` writes the chunk and the object's checkpoint in one ``TransactWriteItems``; the
  chunk put is conditional, so a repeat of the same call is a no-op and a different chunk at the
  same position is an ``IntegrityError``.
- ``commit_snapshot`` writes the snapshot item and moves the org's head pointer (a version counter
  plus compare-and-set on the current head id) in one transaction: ``ConcurrentCommit`` when the
  head moved.
- Every call asks for ``ReturnConsumedCapacity=TOTAL`` so ``aws_metering`` can count capacity units.
- Errors: ``CatalogUnavailable`` (retryable: throttling, 5xx, network, transaction conflicts that
  persist); ``ConfigError`` for a missing table or denied access (names the action and table).
"""

from __future__ import annotations

import json
import time
import typing
from collections.abc import Callable, Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from orgvault.adapters.aws_common import (
    TRANSPORT_ERRORS,
    error_code,
    is_access_denied,
    is_transient,
    make_client,
)
from orgvault.constants import DEFAULT_TABLE_NAME, TABLE_PARTITION_KEY, TABLE_SORT_KEY, TABLE_TTL_ATTRIBUTE
from orgvault.domain.models import (
    Checkpoint,
    ChunkRecord,
    FileRecord,
    Lock,
    OrgConnection,
    Run,
    SnapshotRecord,
)
from orgvault.errors import (
    CatalogUnavailable,
    ConcurrentCommit,
    ConfigError,
    IntegrityError,
    RunInProgress,
    RunNotFound,
    SnapshotNotFound,
    UnknownOrg,
)

T = TypeVar("T")
PK, SK, TTL = TABLE_PARTITION_KEY, TABLE_SORT_KEY, TABLE_TTL_ATTRIBUTE
SEQ_DIGITS = 10  # chunk sequence numbers are zero-padded so SK order is numeric order
LOCK_TTL_GRACE = timedelta(days=1)  # TTL removes an expired lock item a day after it expired
_CONFLICT_RETRIES = 5

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


# --- keys -------------------------------------------------------------------------------------


def org_key(name: str) -> dict[str, str]:
    return {PK: "ORGS", SK: f"ORG#{name}"}


def lock_key(org: str) -> dict[str, str]:
    return {PK: f"ORG#{org}", SK: "LOCK"}


def head_key(org: str) -> dict[str, str]:
    return {PK: f"ORG#{org}", SK: "HEAD"}


def run_key(org: str, run_id: str) -> dict[str, str]:
    return {PK: f"ORG#{org}", SK: f"RUN#{run_id}"}


def snapshot_key(org: str, snapshot_id: str) -> dict[str, str]:
    return {PK: f"ORG#{org}", SK: f"SNAP#{snapshot_id}"}


def checkpoint_key(org: str, run_id: str, object_name: str) -> dict[str, str]:
    return {PK: f"RUN#{org}#{run_id}", SK: f"CKPT#{object_name}"}


def chunk_key(org: str, run_id: str, object_name: str, seq: int) -> dict[str, str]:
    return {PK: f"RUN#{org}#{run_id}", SK: f"CHUNK#{object_name}#{seq:0{SEQ_DIGITS}d}"}


def file_key(org: str, source: str) -> dict[str, str]:
    return {PK: f"FILES#{org}", SK: f"FILE#{source}"}


# --- values <-> items -------------------------------------------------------------------------


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def to_item(value: Any, key: dict[str, str], item_type: str, **extra: Any) -> dict[str, Any]:
    """A domain dataclass as a DynamoDB item (low-level attribute values). ``None`` fields are
    omitted; datetimes are ISO-8601 text; dict fields are JSON text; enums their value."""
    plain: dict[str, Any] = {**key, "type": item_type}
    for f in fields(value):
        v = getattr(value, f.name)
        if v is not None:
            plain[f.name] = _encode_value(v)
    plain.update(extra)
    return {k: _serializer.serialize(v) for k, v in plain.items()}


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _decode_value(hint: Any, raw: Any) -> Any:
    args = typing.get_args(hint)
    candidates = (
        [a for a in args if a is not type(None)] if args and typing.get_origin(hint) is not dict else [hint]
    )
    target = candidates[0] if candidates else hint
    origin = typing.get_origin(target) or target
    if origin is datetime:
        return datetime.fromisoformat(raw)
    if origin is dict:
        return json.loads(raw)
    if isinstance(origin, type) and issubclass(origin, Enum):
        return origin(raw)
    if origin is int:
        return int(raw)
    if origin is float:
        return float(raw)
    return raw


def from_item(cls: type[T], item: dict[str, Any]) -> T:
    plain = {k: _deserializer.deserialize(v) for k, v in item.items()}
    hints = _hints(cls)
    kwargs = {f.name: _decode_value(hints[f.name], plain[f.name]) for f in fields(cls) if f.name in plain}  # type: ignore[arg-type]
    return cls(**kwargs)


def _epoch(moment: datetime) -> int:
    """Whole epoch seconds (naive datetimes are UTC), for the TTL attribute."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _epoch_exact(moment: datetime) -> str:
    """Epoch seconds with microseconds, as a DynamoDB number, for lock-expiry comparisons."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.timestamp():.6f}"


# --- table ------------------------------------------------------------------------------------


def create_catalog_table(client: Any, table_name: str = DEFAULT_TABLE_NAME) -> None:
    """Create the catalog table as the CDK stack does (for tests, local stacks and ``moto``):
    on-demand capacity, string ``PK``/``SK``, TTL on ``ttl``. Waits until it is active."""
    client.create_table(
        TableName=table_name,
        KeySchema=[{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": PK, "AttributeType": "S"},
            {"AttributeName": SK, "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL}
    )


class DynamoCatalog:
    """Catalog on one DynamoDB table. ``client`` is a low-level boto3 DynamoDB client (built with
    adaptive retries when None)."""

    def __init__(
        self, table_name: str = DEFAULT_TABLE_NAME, *, client: Any = None, page_size: int | None = None
    ) -> None:
        self.table_name = table_name
        self.page_size = page_size  # Query ``Limit``; None = DynamoDB's 1 MB pages
        self._client = client if client is not None else make_client("dynamodb")

    def __repr__(self) -> str:
        return f"DynamoCatalog(table_name={self.table_name!r})"

    # --- plumbing -----------------------------------------------------------------------------

    def _translate(self, exc: Exception, action: str) -> Exception:
        if isinstance(exc, ClientError):
            code = error_code(exc)
            if code == "ResourceNotFoundException":
                return ConfigError(
                    f"DynamoDB table {self.table_name!r} does not exist; check ORGVAULT_TABLE and the region"
                )
            if is_access_denied(exc):
                return ConfigError(
                    f"access denied: the role lacks dynamodb:{action} on table {self.table_name!r}; "
                    "fix its IAM policy"
                )
            if is_transient(exc) or code == "TransactionCanceledException":
                return CatalogUnavailable(
                    f"DynamoDB {action} on {self.table_name!r} failed ({code}); retry later"
                )
            return CatalogUnavailable(f"DynamoDB {action} on {self.table_name!r} failed: {code}")
        return CatalogUnavailable(
            f"DynamoDB {action}: cannot reach DynamoDB ({type(exc).__name__}); retry later"
        )

    def _call(
        self,
        action: str,
        fn: Callable[..., dict[str, Any]],
        *,
        passthrough: frozenset[str] = frozenset(),
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Call ``fn`` with the table name and consumed-capacity reporting; translate errors,
        except those whose code is in ``passthrough`` (the caller handles them)."""
        if "TransactItems" not in kwargs:
            kwargs.setdefault("TableName", self.table_name)
        kwargs.setdefault("ReturnConsumedCapacity", "TOTAL")
        try:
            return fn(**kwargs)
        except ClientError as exc:
            if error_code(exc) in passthrough:
                raise
            raise self._translate(exc, action) from exc
        except TRANSPORT_ERRORS as exc:
            raise self._translate(exc, action) from exc

    def _get(self, key: dict[str, str]) -> dict[str, Any] | None:
        answer = self._call(
            "GetItem", self._client.get_item, Key={k: {"S": v} for k, v in key.items()}, ConsistentRead=True
        )
        return answer.get("Item")

    def _put(self, item: dict[str, Any]) -> None:
        self._call("PutItem", self._client.put_item, Item=item)

    def _query(self, pk: str, sk_prefix: str) -> Iterator[dict[str, Any]]:
        """Every item of partition ``pk`` whose SK starts with ``sk_prefix``, in SK order."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": sk_prefix}},
            "ConsistentRead": True,
        }
        if self.page_size:
            kwargs["Limit"] = self.page_size
        while True:
            answer = self._call("Query", self._client.query, **kwargs)
            yield from answer.get("Items", [])
            last = answer.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def _delete(self, key: dict[str, str]) -> None:
        self._call("DeleteItem", self._client.delete_item, Key={k: {"S": v} for k, v in key.items()})

    def _transact(self, action: str, items: list[dict[str, Any]]) -> None:
        """TransactWriteItems, retried on transaction conflicts; a cancellation for any other
        reason (a failed condition) is raised as the ClientError for the caller to read."""
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._call(
                    action,
                    self._client.transact_write_items,
                    passthrough=frozenset({"TransactionCanceledException"}),
                    TransactItems=items,
                )
                return
            except ClientError as exc:
                codes = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if "TransactionConflict" in codes and "ConditionalCheckFailed" not in codes:
                    time.sleep(0.05 * 2**attempt)
                    continue
                raise
        raise CatalogUnavailable(f"DynamoDB {action} kept conflicting with concurrent writers; retry later")

    # --- orgs ---------------------------------------------------------------------------------

    def put_org(self, org: OrgConnection) -> None:
        self._put(to_item(org, org_key(org.name), "org"))

    def get_org(self, name: str) -> OrgConnection:
        item = self._get(org_key(name))
        if item is None:
            raise UnknownOrg(f"no connected org named {name!r}; connect it first")
        return from_item(OrgConnection, item)

    def list_orgs(self) -> list[OrgConnection]:
        return sorted(
            (from_item(OrgConnection, i) for i in self._query("ORGS", "ORG#")), key=lambda o: o.name
        )

    def delete_org(self, name: str) -> None:
        """Forget the connection (its runs, snapshots and files stay, as the vault does)."""
        self._delete(org_key(name))

    # --- run lock -----------------------------------------------------------------------------

    def acquire_lock(
        self, org: str, owner: str, *, now: datetime, ttl_seconds: int, force: bool = False
    ) -> Lock:
        lock = Lock(org=org, owner=owner, acquired_at=now, expires_at=now + timedelta(seconds=ttl_seconds))
        item = to_item(
            lock,
            lock_key(org),
            "lock",
            expires_epoch=Decimal(_epoch_exact(lock.expires_at)),
            **{TTL: _epoch(lock.expires_at + LOCK_TTL_GRACE)},
        )
        kwargs: dict[str, Any] = {"Item": item}
        if not force:
            kwargs.update(
                ConditionExpression="attribute_not_exists(#pk) OR #exp <= :now OR #owner = :owner",
                ExpressionAttributeNames={"#pk": PK, "#exp": "expires_epoch", "#owner": "owner"},
                ExpressionAttributeValues={":now": {"N": _epoch_exact(now)}, ":owner": {"S": owner}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        try:
            self._call(
                "PutItem",
                self._client.put_item,
                passthrough=frozenset({"ConditionalCheckFailedException"}),
                **kwargs,
            )
        except ClientError as exc:
            held = exc.response.get("Item")
            holder = from_item(Lock, held) if held else None
            if holder is None:
                raise RunInProgress(f"org {org!r} is locked by another run") from exc
            raise RunInProgress(
                f"org {org!r} is locked by {holder.owner!r} until {holder.expires_at.isoformat()}; "
                "wait for it to finish or take over with force"
            ) from exc
        return lock

    def release_lock(self, org: str, owner: str) -> None:
        try:
            self._call(
                "DeleteItem",
                self._client.delete_item,
                passthrough=frozenset({"ConditionalCheckFailedException"}),
                Key={k: {"S": v} for k, v in lock_key(org).items()},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError:
            return  # not ours (or already gone): nothing to do

    def get_lock(self, org: str) -> Lock | None:
        item = self._get(lock_key(org))
        return from_item(Lock, item) if item else None

    # --- runs ---------------------------------------------------------------------------------

    def put_run(self, run: Run) -> None:
        self._put(to_item(run, run_key(run.org, run.run_id), "run"))

    def get_run(self, org: str, run_id: str) -> Run:
        item = self._get(run_key(org, run_id))
        if item is None:
            raise RunNotFound(f"no run {run_id!r} for org {org!r}")
        return from_item(Run, item)

    def list_runs(self, org: str) -> list[Run]:
        runs = [from_item(Run, i) for i in self._query(f"ORG#{org}", "RUN#")]
        return sorted(runs, key=lambda r: (r.started_at, r.run_id))

    # --- checkpoints --------------------------------------------------------------------------

    def put_checkpoint(self, checkpoint: Checkpoint) -> None:
        c = checkpoint
        self._put(to_item(c, checkpoint_key(c.org, c.run_id, c.object_name), "checkpoint"))

    def list_checkpoints(self, org: str, run_id: str) -> list[Checkpoint]:
        return [from_item(Checkpoint, i) for i in self._query(f"RUN#{org}#{run_id}", "CKPT#")]

    # --- chunks -------------------------------------------------------------------------------

    def record_chunk(self, chunk: ChunkRecord, checkpoint: Checkpoint) -> None:
        c, k = chunk, checkpoint
        if (k.org, k.run_id, k.object_name) != (c.org, c.run_id, c.object_name):
            raise ValueError("the checkpoint must belong to the chunk's org, run and object")
        chunk_item = to_item(c, chunk_key(c.org, c.run_id, c.object_name, c.seq), "chunk")
        try:
            self._transact(
                "TransactWriteItems",
                [
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": chunk_item,
                            "ConditionExpression": "attribute_not_exists(#pk)",
                            "ExpressionAttributeNames": {"#pk": PK},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": to_item(k, checkpoint_key(k.org, k.run_id, k.object_name), "checkpoint"),
                        }
                    },
                ],
            )
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons", [])
            if not reasons or reasons[0].get("Code") != "ConditionalCheckFailed":
                raise self._translate(exc, "TransactWriteItems") from exc
            old = reasons[0].get("Item") or self._get(chunk_key(c.org, c.run_id, c.object_name, c.seq))
            if old is not None and from_item(ChunkRecord, old) == chunk:
                return  # a repeat of the same call
            raise IntegrityError(
                f"chunk {c.seq} of {c.object_name} in run {c.run_id} of {c.org!r} is already recorded with "
                "different content"
            ) from exc

    def list_chunks(self, org: str, run_id: str, object_name: str | None = None) -> list[ChunkRecord]:
        prefix = "CHUNK#" if object_name is None else f"CHUNK#{object_name}#"
        chunks = [from_item(ChunkRecord, i) for i in self._query(f"RUN#{org}#{run_id}", prefix)]
        return sorted(chunks, key=lambda c: (c.object_name, c.seq))

    # --- files --------------------------------------------------------------------------------

    def put_file(self, file: FileRecord) -> None:
        self._put(to_item(file, file_key(file.org, file.source), "file"))

    def get_file(self, org: str, source: str) -> FileRecord | None:
        item = self._get(file_key(org, source))
        return from_item(FileRecord, item) if item else None

    def list_files(self, org: str) -> list[FileRecord]:
        return [from_item(FileRecord, i) for i in self._query(f"FILES#{org}", "FILE#")]

    # --- snapshots ----------------------------------------------------------------------------

    def commit_snapshot(self, snapshot: SnapshotRecord, *, expected_head: str | None) -> None:
        s = snapshot
        if expected_head is None:
            condition = "attribute_not_exists(#pk)"
            names = {"#pk": PK}
            values: dict[str, Any] = {}
        else:
            condition = "#sid = :expected"
            names = {"#sid": "snapshot_id"}
            values = {":expected": {"S": expected_head}}
        try:
            self._transact(
                "TransactWriteItems",
                [
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": to_item(s, snapshot_key(s.org, s.snapshot_id), "snapshot"),
                            "ConditionExpression": "attribute_not_exists(#pk)",
                            "ExpressionAttributeNames": {"#pk": PK},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": {k: {"S": v} for k, v in head_key(s.org).items()},
                            "UpdateExpression": (
                                "SET #sid = :sid, #type = :type, #committed = :committed, "
                                "#version = if_not_exists(#version, :zero) + :one"
                            ),
                            "ConditionExpression": condition,
                            "ExpressionAttributeNames": {
                                **names,
                                "#sid": "snapshot_id",
                                "#type": "type",
                                "#committed": "committed_at",
                                "#version": "version",
                            },
                            "ExpressionAttributeValues": {
                                **values,
                                ":sid": {"S": s.snapshot_id},
                                ":type": {"S": "head"},
                                ":committed": {"S": datetime.now(UTC).isoformat()},
                                ":zero": {"N": "0"},
                                ":one": {"N": "1"},
                            },
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                ],
            )
        except ClientError as exc:
            codes = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if "ConditionalCheckFailed" not in codes:
                raise self._translate(exc, "TransactWriteItems") from exc
            # Same rules as the SQLite catalog: the same commit again is a no-op; a moved head is a
            # ConcurrentCommit; an existing snapshot id that is not the head is an IntegrityError.
            head_item = self._get(head_key(s.org))
            head = head_item["snapshot_id"]["S"] if head_item else None
            existing = self._get(snapshot_key(s.org, s.snapshot_id))
            if (
                head == s.snapshot_id
                and existing is not None
                and from_item(SnapshotRecord, existing) == snapshot
            ):
                return
            if head != expected_head:
                raise ConcurrentCommit(
                    f"the head snapshot of {s.org!r} is {head!r}, not {expected_head!r}: another run committed "
                    "first; re-read the head and retry"
                ) from exc
            raise IntegrityError(f"snapshot {s.snapshot_id} of {s.org} already exists") from exc

    def get_snapshot(self, org: str, snapshot_id: str) -> SnapshotRecord:
        item = self._get(snapshot_key(org, snapshot_id))
        if item is None:
            raise SnapshotNotFound(f"org {org!r} has no committed snapshot {snapshot_id!r}")
        return from_item(SnapshotRecord, item)

    def head_snapshot(self, org: str) -> SnapshotRecord | None:
        head = self._get(head_key(org))
        if head is None:
            return None
        return self.get_snapshot(org, head["snapshot_id"]["S"])

    def head_version(self, org: str) -> int:
        """How many times the org's head pointer has moved (0: never)."""
        head = self._get(head_key(org))
        return int(head["version"]["N"]) if head else 0

    def list_snapshots(self, org: str) -> list[SnapshotRecord]:
        snaps = [from_item(SnapshotRecord, i) for i in self._query(f"ORG#{org}", "SNAP#")]
        return sorted(snaps, key=lambda s: (s.created_at, s.snapshot_id))
