"""The Lambda handlers refuse malformed events with a permanent error (the workflow does not retry it)
before touching any AWS resource, and never echo values into their messages."""

from __future__ import annotations

import importlib
import json

import pytest

from orgvault.errors import ConfigError, PermanentError
from tests.infra.sfn_harness import FakeLambdaContext


def _call(module: str, event: object) -> object:
    handler = importlib.import_module(f"functions.{module}").handler
    return handler(event, FakeLambdaContext(function_name=module))


@pytest.mark.parametrize(
    ("module", "event", "field"),
    [
        ("backup_start", {"input": {"org": "acme"}}, "owner"),
        ("backup_start", {"owner": "arn:x", "input": "acme"}, "execution input"),
        ("backup_start", {"owner": "arn:x", "input": {"org": "acme", "full": "yes"}}, "full"),
        ("backup_extract", {"org": "acme", "run_id": "r1"}, "object"),
        ("backup_finalize", {"org": "acme", "run_id": "r1"}, "owner"),
        ("backup_fail", {"org": "", "run_id": "r1", "owner": "o"}, "org"),
        ("restore_run", {"org": "acme"}, "job_id"),
    ],
)
def test_malformed_events_are_permanent_errors_naming_the_field(module, event, field, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    with pytest.raises(ConfigError, match=field) as err:
        _call(module, event)
    assert isinstance(err.value, PermanentError)


def test_failure_message_keeps_the_error_and_message_only():
    from functions.backup_fail import _message

    cause = json.dumps(
        {"errorType": "SalesforceRequestError", "errorMessage": "bad query", "stackTrace": ["  File x"]}
    )
    assert _message("SalesforceRequestError", cause) == "SalesforceRequestError: bad query"
    assert _message("States.Timeout", "") == "States.Timeout"
    assert len(_message("E", "x" * 2000)) == 500
