"""Faults: expired sessions, 503s, dropped connections, the API allowance running out mid-run, and
crashes at random points (an exception from a hook at the Nth chunk, and kill -9 of a subprocess
running `orgvault backup`). After each, the (resumed) snapshot equals the org's true state."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orgvault.domain.models import RunKind, RunStatus
from orgvault.errors import ApiBudgetExhausted, OrgVaultError
from tests.integration.test_backup_support import (
    ORG,
    assert_identical,
    change_org,
    cli_backup,
    connect,
    make_app,
)


class Crash(BaseException):
    """Stands in for kill -9: not an Exception, so nothing on the way catches it."""


def _chunk_count(app) -> int:
    runs = app.catalog.list_runs(ORG)
    return sum(len(app.catalog.list_chunks(ORG, r.run_id)) for r in runs)


def test_expired_sessions_503s_and_dropped_connections(tmp_path, fresh_emulator):
    from salesforce_emulator.faults import FaultRule, Faults

    faults = Faults(session_max_requests=7, error_rate=0.15, seed=3)
    emu = fresh_emulator(scale=300, seed=8, faults=faults)
    # 3 dropped connections and random 503s may land on the same request: allow for both
    app = make_app(tmp_path, source_options={"max_attempts": 8})
    connect(app, emu)
    faults.add_rule(FaultRule(pattern=r"/query", count=3, action="drop", drop_after_bytes=300))
    faults.add_rule(
        FaultRule(pattern=r"/jobs/query/.+/results", count=2, action="drop", drop_after_bytes=200)
    )
    result = app.backup_service().run_backup(ORG)
    faults.clear()
    assert result.records > 0
    assert_identical(app, emu)


@pytest.mark.parametrize("crash_at", [1, 4, 9])
def test_crash_at_nth_chunk_then_resume(tmp_path, fresh_emulator, crash_at):
    emu = fresh_emulator(scale=300, seed=9)
    app = make_app(tmp_path)
    connect(app, emu)
    seen = {"n": 0}

    def hook(obj: str, kind: str, seq: int) -> None:
        seen["n"] += 1
        if seen["n"] == crash_at:
            raise Crash(f"killed after chunk {obj}/{seq}")

    with pytest.raises(Crash):
        app.backup_service(chunk_hook=hook).run_backup(ORG)
    # the crashed run is not visible as a snapshot; a new process resumes it
    assert app.catalog.head_snapshot(ORG) is None
    crashed = app.catalog.list_runs(ORG)[-1]
    # leave the state kill -9 leaves: the run RUNNING and the lock held by a process that is gone
    app.catalog.put_run(replace(crashed, status=RunStatus.RUNNING))
    dead = f"{socket.gethostname()}:999999999"
    app.catalog.acquire_lock(ORG, dead, now=datetime.now(UTC), ttl_seconds=3600, force=True)
    result = app.backup_service().run_backup(ORG)
    assert result.snapshot.snapshot_id == crashed.run_id, "the crashed run was resumed, not restarted"
    assert_identical(app, emu)


@pytest.mark.parametrize("crash_kind", ["delta", "tombstones"])
def test_crash_during_incremental_then_resume(tmp_path, fresh_emulator, crash_kind):
    emu = fresh_emulator(scale=300, seed=10)
    app = make_app(tmp_path, chunk_records=20)
    connect(app, emu)
    app.backup_service().run_backup(ORG)
    change_org(emu.org, seed=5, update_share=0.2)

    def hook(obj: str, kind: str, seq: int) -> None:
        # a tombstones chunk is committed just before the records of the same pages: a crash
        # right after it must lose nothing
        if kind == crash_kind:
            raise Crash("killed mid-incremental")

    with pytest.raises(Crash):
        app.backup_service(chunk_hook=hook).run_backup(ORG)
    app.backup_service().run_backup(ORG)
    assert_identical(app, emu)


def test_allowance_exhausted_mid_run_pauses_then_resumes(tmp_path, fresh_emulator):
    emu = fresh_emulator(scale=300, seed=11, daily_limit=100_000)
    app = make_app(tmp_path)
    connect(app, emu)
    svc = app.backup_service()
    calls = {"n": 0}

    def exhaust(obj: str, kind: str, seq: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            emu.faults.update(limit_exceeded=True)

    with pytest.raises(ApiBudgetExhausted, match="run `orgvault backup acme` again"):
        app.backup_service(chunk_hook=exhaust).run_backup(ORG)
    run = app.catalog.list_runs(ORG)[-1]
    assert run.status is RunStatus.PAUSED
    assert app.catalog.head_snapshot(ORG) is None
    assert app.catalog.get_lock(ORG) is None or app.catalog.get_lock(ORG).expires_at < run.finished_at
    kept = _chunk_count(app)
    assert kept >= 3, "the chunks committed before the pause are kept"
    emu.faults.update(limit_exceeded=False)
    result = svc.run_backup(ORG)
    assert result.snapshot.snapshot_id == run.run_id
    assert_identical(app, emu)


def test_budget_share_stops_before_the_allowance_is_used(tmp_path, fresh_emulator):
    emu = fresh_emulator(scale=300, seed=12, daily_limit=1000)
    app = make_app(tmp_path, source_options={"budget_share": 0.05})
    connect(app, emu)
    with pytest.raises(ApiBudgetExhausted, match="paused"):
        app.backup_service().run_backup(ORG)
    assert app.catalog.list_runs(ORG)[-1].status is RunStatus.PAUSED
    assert emu.usage.used <= 0.05 * 1000, "no call is made over the configured share"
    # a new day: the allowance is back, the paused run resumes and completes
    emu.usage.reset()
    result = app.backup_service().run_backup(ORG)
    assert result.snapshot.snapshot_id == app.catalog.list_runs(ORG)[-1].run_id
    assert len(app.catalog.list_runs(ORG)) == 1
    assert_identical(app, emu)


@pytest.mark.slow
def test_kill_9_of_the_cli_then_resume(tmp_path, fresh_emulator):
    """A real process, really killed with SIGKILL at a random moment, several times; then a clean run."""
    emu = fresh_emulator(scale=600, seed=13)
    emu.faults.update(latency_seconds=0.01)
    home = tmp_path / "home"
    app = make_app(home)
    connect(app, emu)
    app.close()
    env = {**os.environ, "ORGVAULT_HOME": str(home), "ORGVAULT_CHUNK_RECORDS": "50"}
    repo = Path(__file__).resolve().parents[2]
    killed = 0
    for delay in (0.8, 1.3, 1.9):
        proc = subprocess.Popen(
            [sys.executable, "-m", "orgvault.cli", "backup", ORG, "--json"],
            env=env,
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait(timeout=60)
    assert killed >= 2, "the backup finished before it could be killed; slow the emulator down"
    emu.faults.update(latency_seconds=0.0)
    done = cli_backup(env)
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout)
    app = make_app(home)
    try:
        runs = app.catalog.list_runs(ORG)
        assert runs[0].status is RunStatus.COMPLETED, "the killed run was resumed to completion"
        assert len(app.catalog.list_snapshots(ORG)) == len(runs)
        assert_identical(app, emu)
    finally:
        app.close()


def test_malformed_responses_fail_clearly_and_leave_the_head_alone(tmp_path, fresh_emulator):
    from salesforce_emulator.faults import FaultRule

    emu = fresh_emulator(scale=200, seed=14)
    app = make_app(tmp_path)
    connect(app, emu)
    first = app.backup_service().run_backup(ORG)
    # every query answers 200 with a body that is not a query result
    emu.faults.add_rule(
        FaultRule(
            pattern=r"/(query|queryAll|jobs/query)",
            count=-1,
            status=200,
            error_code="GARBAGE",
            message="not a query result",
        )
    )
    emu.org.clock.advance(900)
    with pytest.raises(OrgVaultError) as err:
        app.backup_service().run_backup(ORG)
    assert "Traceback" not in str(err.value) and str(err.value)
    assert app.catalog.head_snapshot(ORG).snapshot_id == first.snapshot.snapshot_id
    assert app.catalog.list_runs(ORG)[-1].status is RunStatus.FAILED
    assert_identical(app, emu)  # the head snapshot still equals the (unchanged) org
    emu.faults.clear()
    second = app.backup_service().run_backup(ORG)  # the failed run resumes and completes
    assert second.snapshot.parent_id == first.snapshot.snapshot_id
    assert_identical(app, emu)


def test_expired_query_locator_restarts_the_object_without_duplicates(tmp_path, fresh_emulator):
    from salesforce_emulator.faults import FaultRule

    emu = fresh_emulator(scale=400, seed=15)
    app = make_app(tmp_path)
    connect(app, emu)
    app.backup_service().run_backup(ORG)
    change_org(emu.org, seed=15, update_share=0.9)  # big deltas: REST reads span several pages
    rule = emu.faults.add_rule(
        FaultRule(
            pattern=r"/query/[^/]+$",
            count=2,
            status=400,
            error_code="INVALID_QUERY_LOCATOR",
            message="invalid query locator",
            method="GET",
        )
    )
    inc = app.backup_service().run_backup(ORG)
    assert rule.count == 0, "the locator expired mid-read (twice)"
    assert inc.snapshot.kind is RunKind.INCREMENTAL
    assert_identical(app, emu)  # no record twice, none missing
