"""What every handler shares: Powertools logger/tracer/metrics, the wired App (built once per
execution environment from the environment, like any cold start), and event validation.

Contracts:
- ``app()`` parses ``Settings.from_env()`` and wires the AWS adapters once per process; ``reset()``
  drops it (a new cold start; tests use it after changing the environment).
- ``text(event, name)`` / ``optional_text`` validate one event field; a bad event raises
  ``ConfigError`` (permanent: the workflow does not retry it). Messages name the field, never values
  that could be secret.
- The lock owner of a run is the Step Functions execution that drives it (``owner`` in the event), so
  start, finalize and fail — separate Lambda invocations on any host — act as one owner. Liveness of
  another owner cannot be checked from Lambda: ``owner_alive`` answers "unknown" and an abandoned
  lock is taken over when it expires.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

from orgvault.constants import METRICS_NAMESPACE
from orgvault.errors import ConfigError

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "orgvault"
logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
# The monitoring alarms select the dimensions {service, org}: keep ``service`` set.
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or METRICS_NAMESPACE, service=SERVICE
)

_lock = threading.Lock()
_app: Any = None
_factory: Callable[[], Any] | None = None


def _default_factory() -> Any:
    from orgvault.bootstrap import open_app
    from orgvault.settings import Settings

    return open_app(Settings.from_env())


def app() -> Any:
    """The process-wide App (AWS adapters from ``ORGVAULT_*`` variables), built on first use."""
    global _app
    with _lock:
        if _app is None:
            _app = (_factory or _default_factory)()
        return _app


def reset(factory: Callable[[], Any] | None = None) -> None:
    """Forget the wired App (as a new execution environment would). ``factory`` replaces how the next
    one is built (tests: the same ``open_app`` with a faster-polling Salesforce source); ``None``
    restores the default."""
    global _app, _factory
    with _lock:
        if _app is not None:
            _app.close()
        _app = None
        _factory = factory


def backup_service(owner: str) -> Any:
    return app().backup_service(owner=owner, owner_alive=lambda _owner: None)


def text(event: Any, name: str, *, max_len: int = 512) -> str:
    if not isinstance(event, dict):
        raise ConfigError("the event must be a JSON object")
    value = event.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise ConfigError(f"the event needs a non-empty string {name!r}")
    return value


def optional_text(event: dict[str, Any], name: str, default: str = "") -> str:
    value = event.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(f"the event field {name!r} must be a string")
    return value


def flag(event: dict[str, Any], name: str) -> bool:
    value = event.get(name, False)
    if not isinstance(value, bool):
        raise ConfigError(f"the event field {name!r} must be true or false")
    return value
