"""Fault injection for the emulator's HTTP server.

A :class:`Faults` instance is mutable on purpose: tests change it at runtime through ``emu.faults``, the
admin API (``POST /__emulator/faults``) or CLI flags at start. Every decision that consumes randomness or
a counter goes through a lock, so concurrent requests see a consistent sequence.

Contract of each knob (``None`` / ``0`` / ``False`` = off):

- ``session_max_requests``: a session (access token) becomes invalid after serving this many REST calls;
  the next call gets ``401 INVALID_SESSION_ID`` and a fresh login issues a fresh session.
- ``session_ttl_seconds``: a session becomes invalid this many seconds (org clock) after it was issued.
- ``error_rate``: share of REST calls answered ``503 SERVER_UNAVAILABLE`` (seeded by ``seed``).
- ``limit_exceeded``: every REST call is refused with ``403 REQUEST_LIMIT_EXCEEDED`` (the natural way is
  simply exhausting the daily allowance; this forces it).
- ``query_timeout_rows``: a REST query (or Bulk job) without a WHERE clause over an object holding more
  rows than this fails with ``400 QUERY_TIMEOUT``.
- ``invalid_locator``: every query-more (REST ``nextRecordsUrl``) fails with ``400 INVALID_QUERY_LOCATOR``.
- ``latency_seconds``: every REST call sleeps this long before answering.
- ``drop_after_bytes``: every REST response body is cut after this many bytes and the socket closed.
- ``bulk_fail``: Bulk API 2.0 query and ingest jobs end in state ``Failed``.
- ``rules``: "the next N requests matching a path pattern fail with X" (see :class:`FaultRule`).
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any


class RuleAction(StrEnum):
    """What a matching :class:`FaultRule` does to the request."""

    ERROR = "error"  # answer with status / errorCode / message as a Salesforce error array
    DROP = "drop"  # send part of the real body, then close the socket
    DELAY = "delay"  # sleep ``delay_seconds`` and then answer normally


@dataclass
class FaultRule:
    """The next ``count`` requests whose path matches ``pattern`` (a regex, ``re.search`` on the path
    without query string) and ``method`` (if given) get ``action``. ``count`` < 0 means forever."""

    pattern: str
    count: int = 1
    status: int = 503
    error_code: str = "SERVER_UNAVAILABLE"
    message: str = "Server is temporarily unavailable (injected fault)"
    method: str | None = None
    action: RuleAction = RuleAction.ERROR
    delay_seconds: float = 0.0
    drop_after_bytes: int = 0
    # also match Composite sub-requests (by their own path): an ERROR rule then fails just that
    # sub-request, whose entry in the compositeResponse carries the error; the others succeed
    composite: bool = False

    def __post_init__(self) -> None:
        self.action = RuleAction(self.action)
        self._regex = re.compile(self.pattern)

    def matches(self, method: str, path: str) -> bool:
        if self.count == 0:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return self._regex.search(path) is not None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Faults:
    """Mutable fault configuration; see the module docstring for each knob's contract."""

    session_max_requests: int | None = None
    session_ttl_seconds: float | None = None
    error_rate: float = 0.0
    seed: int = 0
    limit_exceeded: bool = False
    query_timeout_rows: int | None = None
    invalid_locator: bool = False
    latency_seconds: float = 0.0
    drop_after_bytes: int | None = None
    bulk_fail: bool = False
    rules: list[FaultRule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self.rules = [r if isinstance(r, FaultRule) else FaultRule(**r) for r in self.rules]

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "seed" and "_rng" in self.__dict__:
            self._rng = random.Random(value)  # ``faults.seed = n`` restarts the 503 sequence

    # -- mutation -----------------------------------------------------------------------------------
    def update(self, **changes: Any) -> None:
        """Set knobs by name (unknown names raise ``ValueError``); ``rules`` given as dicts are parsed
        and *appended*; ``seed`` re-seeds the 503 generator."""
        names = {f.name for f in fields(self)}
        with self._lock:
            for key, value in changes.items():
                if key not in names:
                    raise ValueError(f"unknown fault setting {key!r}")
                if key == "rules":
                    self.rules.extend(r if isinstance(r, FaultRule) else FaultRule(**r) for r in value)
                    continue
                setattr(self, key, value)

    def add_rule(self, rule: FaultRule | None = None, **kwargs: Any) -> FaultRule:
        """Append a rule (or build one from keyword arguments) and return it."""
        rule = rule or FaultRule(**kwargs)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Turn every fault off."""
        with self._lock:
            for f in fields(self):
                if f.name == "rules":
                    self.rules = []
                elif f.name != "seed":
                    setattr(self, f.name, f.default)

    def as_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rules"}
        d["rules"] = [r.as_dict() for r in self.rules]
        return d

    # -- decisions (called by the server) -------------------------------------------------------------
    def take_rule(self, method: str, path: str, *, sub_request: bool = False) -> FaultRule | None:
        """Return the first matching rule and consume one of its uses. ``sub_request``: the path is a
        Composite sub-request's; only rules with ``composite`` set apply to it."""
        with self._lock:
            for rule in self.rules:
                if sub_request and not rule.composite:
                    continue
                if rule.matches(method, path):
                    if rule.count > 0:
                        rule.count -= 1
                    return rule
        return None

    def roll_503(self) -> bool:
        """Whether this request draws a random 503 (seeded sequence)."""
        if self.error_rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < self.error_rate


def faults_from_dict(data: dict[str, Any]) -> Faults:
    """Build a :class:`Faults` from a JSON-like dict (admin API / CLI)."""
    known = {f.name for f in fields(Faults)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown fault settings: {sorted(unknown)}")
    return Faults(**data)


__all__ = ["FaultRule", "Faults", "RuleAction", "faults_from_dict"]
