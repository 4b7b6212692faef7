"""Clock and error shapes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from salesforce_emulator import Clock, SalesforceError


def test_frozen_clock_moves_only_when_told():
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    c = Clock(t0, frozen=True)
    time.sleep(0.01)
    assert c.now() == t0
    c.advance(90)
    assert c.now() == t0 + timedelta(seconds=90)
    c.set(datetime(2030, 1, 1))  # naive means UTC
    assert c.now() == datetime(2030, 1, 1, tzinfo=UTC)


def test_running_clock_advances_with_real_time():
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    c = Clock(t0)
    time.sleep(0.02)
    now = c.now()
    assert now > t0 and now.tzinfo is not None
    c.advance(3600)
    assert c.now() >= now + timedelta(seconds=3600)
    c.freeze()
    frozen = c.now()
    time.sleep(0.01)
    assert c.now() == frozen


def test_error_body_is_salesforce_shaped():
    e = SalesforceError(400, "INVALID_FIELD", "No such column 'X'", ["X"])
    assert e.body() == [{"message": "No such column 'X'", "errorCode": "INVALID_FIELD", "fields": ["X"]}]
    assert SalesforceError(404, "NOT_FOUND", "gone").body()[0]["fields"] == []
    assert e.status == 400 and e.error_code == "INVALID_FIELD"
