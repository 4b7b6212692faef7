"""Cost accounting for the AWS adapters: a botocore event hook that counts requests by service and
operation, retries, errors, and DynamoDB consumed capacity.

Attach it to every client (or to the boto3 session the clients come from) before a run::

    meter = AwsMeter()
    meter.attach(s3_client); meter.attach(dynamodb_client); meter.attach(kms_client)
    ... run a backup ...
    meter.snapshot()  # {"requests": {"s3.PutObject": 120, ...}, "dynamodb": {...}}

The DynamoDB adapter asks for ``ReturnConsumedCapacity=TOTAL`` on every call, so read and write
capacity units are summed from the answers (``CapacityUnits``, or the read/write split when
DynamoDB gives it; reads and writes are told apart by operation). The meter is thread-safe and
holds counts only: no payloads, no keys, no secrets.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_DYNAMO_WRITES = {
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
}


@dataclass
class AwsMeter:
    """Counts AWS requests as they complete (``after-call`` events, one per API call)."""

    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    estimated: Counter[str] = field(default_factory=Counter)  # calls whose capacity was estimated
    read_units: float = 0.0
    write_units: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def attach(self, target: Any) -> AwsMeter:
        """Register on a boto3/botocore client (``client.meta.events``) or a boto3 Session
        (``session.events``; affects clients created from it afterwards). Returns self."""
        events = target.meta.events if hasattr(target, "meta") else target.events
        events.register("before-call.dynamodb", self._before_call, unique_id=f"orgvault-meter-b-{id(self)}")
        events.register("after-call", self._after_call, unique_id=f"orgvault-meter-{id(self)}")
        return self

    def attach_default_session(self) -> AwsMeter:
        """Attach to boto3's default session, so every client made by ``boto3.client(...)`` from now
        on is counted (the adapters build theirs that way when given none)."""
        import boto3

        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        return self.attach(boto3.DEFAULT_SESSION)

    @staticmethod
    def _before_call(*, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """Remember the size of a transaction, to estimate its capacity when the answer lacks it."""
        if model.name == "TransactWriteItems":
            body = params.get("body") or b"{}"
            context["orgvault_tx"] = (
                body.count(b'"Put"')
                + body.count(b'"Update"')
                + body.count(b'"Delete"')
                + body.count(b'"ConditionCheck"'),
                len(body),
            )

    def _after_call(
        self,
        *,
        model: Any,
        parsed: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        service = model.service_model.service_name
        name = f"{service}.{model.name}"
        parsed = parsed or {}
        with self._lock:
            self.requests[name] += 1
            meta = parsed.get("ResponseMetadata") or {}
            if meta.get("RetryAttempts"):
                self.retries[name] += int(meta["RetryAttempts"])
            if "Error" in parsed:
                self.errors[name] += 1
            if service == "dynamodb":
                consumed = parsed.get("ConsumedCapacity")
                tx = (context or {}).get("orgvault_tx")
                if not consumed and tx and "Error" not in parsed:
                    # Some endpoints (moto) omit it: DynamoDB charges 2 WCU per transactional item-KB.
                    items, size = tx
                    self.write_units += 2.0 * max(items, -(-size // 1024))
                    self.estimated[name] += 1
                else:
                    self._add_capacity(model.name, consumed)

    def _add_capacity(self, operation: str, consumed: Any) -> None:
        entries = consumed if isinstance(consumed, list) else [consumed] if consumed else []
        for entry in entries:
            read = entry.get("ReadCapacityUnits")
            write = entry.get("WriteCapacityUnits")
            if read is not None or write is not None:
                self.read_units += float(read or 0)
                self.write_units += float(write or 0)
            elif operation in _DYNAMO_WRITES:
                self.write_units += float(entry.get("CapacityUnits", 0))
            else:
                self.read_units += float(entry.get("CapacityUnits", 0))

    def count(self, service: str, operation: str | None = None) -> int:
        """Requests to ``service`` (``"s3"``, ``"kms"``, ``"dynamodb"``, ...), or to one operation."""
        with self._lock:
            if operation is not None:
                return self.requests[f"{service}.{operation}"]
            return sum(n for k, n in self.requests.items() if k.startswith(service + "."))

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of the counts."""
        with self._lock:
            return {
                "requests": dict(sorted(self.requests.items())),
                "errors": dict(sorted(self.errors.items())),
                "retries": dict(sorted(self.retries.items())),
                "dynamodb": {
                    "read_units": self.read_units,
                    "write_units": self.write_units,
                    "estimated_calls": dict(sorted(self.estimated.items())),
                },
            }

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.errors.clear()
            self.retries.clear()
            self.estimated.clear()
            self.read_units = self.write_units = 0.0
