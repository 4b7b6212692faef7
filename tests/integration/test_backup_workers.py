"""Local backups with worker processes (``ORGVAULT_WORKERS`` > 1): objects are extracted by spawned
workers, each with its own catalog connection and Salesforce login, against the emulator served
from this process. After each scenario (a clean run, an incremental, a failing object, the API
allowance running out, kill -9 of the CLI) the (resumed) snapshot equals the org's true state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from orgvault.adapters.local_workers import ProcessExtractPool
from orgvault.bootstrap import App, init_local, open_app
from orgvault.domain.models import ObjectState, RunStatus
from orgvault.errors import ApiBudgetExhausted, SalesforceRequestError
from orgvault.settings import Settings
from tests.integration.test_backup_support import (
    ORG,
    SMALL_CHUNKS,
    assert_identical,
    change_org,
    cli_backup,
    connect,
)


def worker_app(home: Path, workers: int = 2, **backup: Any) -> App:
    """A local App as the CLI builds it (default Salesforce source, so backups use worker processes)."""
    settings = Settings.from_env({}, home=str(home), workers=workers, **{**SMALL_CHUNKS, **backup})
    init_local(settings)
    return open_app(settings)


class RecordingPool(ProcessExtractPool):
    """The real pool, remembering the order in which objects were handed out."""

    started: list[str]

    def run(self, tasks: Any, *, on_start: Any, on_step: Any, idle: Any) -> None:
        self.started = []

        def start(name: str) -> None:
            self.started.append(name)
            on_start(name)

        super().run(tasks, on_start=start, on_step=on_step, idle=idle)


def _pool(app: App) -> RecordingPool:
    svc = app.backup_service()
    assert isinstance(svc.extract_pool, ProcessExtractPool), "workers=2 with the default source uses the pool"
    return RecordingPool(svc.extract_pool.workers, svc.extract_pool.make_service)


def test_workers_back_up_the_org_and_count_every_api_call(tmp_path, fresh_emulator):
    emu = fresh_emulator(scale=300, seed=21)
    app = worker_app(tmp_path)
    try:
        connect(app, emu)
        pool = _pool(app)
        seen: list[tuple[str, int, bool]] = []
        used0 = emu.usage.used
        result = app.backup_service(extract_pool=pool).run_backup(
            ORG, progress=lambda p: seen.append((p.object_name, p.records, p.done))
        )
        assert_identical(app, emu)
        # the API calls reported are the ones Salesforce counted: the workers' included
        assert result.api_calls == emu.usage.used - used0
        planned = {cp.object_name for cp in app.catalog.list_checkpoints(ORG, result.run.run_id)}
        assert sorted(pool.started) == sorted(planned), "every object went through the workers, once"
        done = {name: records for name, records, is_done in seen if is_done}
        assert set(done) == planned, "progress reported every object as done"
        assert sum(done.values()) == result.records_read == result.records

        # the first full run: objects handed out largest first, by Salesforce's record counts
        first = [
            _weight(app, result.run.run_id, n, emu.org.count(emu.org.compile(f"SELECT Id FROM {n}")))
            if n.lower() != "contentdocumentlink"
            else 0
            for n in pool.started
        ]
        assert first == sorted(first, reverse=True), list(zip(pool.started, first, strict=True))

        # an incremental reads small deltas: in this process, no worker started
        change_org(emu.org, seed=3)
        pool_inc = _pool(app)
        app.backup_service(extract_pool=pool_inc).run_backup(ORG)
        assert getattr(pool_inc, "started", None) is None and not pool_inc._slots
        assert_identical(app, emu)

        # a forced full run: largest first by the parent snapshot's counts
        change_org(emu.org, seed=4)
        pool2 = _pool(app)
        parent_snap = app.catalog.head_snapshot(ORG)
        assert parent_snap is not None
        parent = app.vault.read_snapshot_manifest(parent_snap)
        again = app.backup_service(extract_pool=pool2).run_backup(ORG, full=True)
        weights = [
            _weight(app, again.run.run_id, n, parent.objects[n].records if n in parent.objects else 0)
            for n in pool2.started
        ]
        assert weights == sorted(weights, reverse=True), list(zip(pool2.started, weights, strict=True))
        assert_identical(app, emu)
    finally:
        app.close()


def _weight(app: App, run_id: str, name: str, records: int) -> int:
    return records * (40 if _cp(app, run_id, name).cursor.get("file_fields") else 1)


def _cp(app: App, run_id: str, name: str) -> Any:
    return next(c for c in app.catalog.list_checkpoints(ORG, run_id) if c.object_name == name)


def test_workers_one_is_the_sequential_engine(tmp_path):
    settings = Settings.from_env({"ORGVAULT_WORKERS": "1"}, home=str(tmp_path))
    init_local(settings)
    app = open_app(settings)
    try:
        assert app.backup_service().extract_pool is None
    finally:
        app.close()


def test_a_failing_object_stops_the_others_then_the_run_resumes(tmp_path, fresh_emulator):
    from salesforce_emulator.faults import FaultRule

    emu = fresh_emulator(scale=300, seed=22)
    app = worker_app(tmp_path)
    try:
        connect(app, emu)
        # every file body download of ContentVersion is refused: that object fails for good
        emu.faults.add_rule(
            FaultRule(
                pattern=r"/sobjects/ContentVersion/.+/VersionData",
                count=-1,
                status=400,
                error_code="INVALID_OPERATION",
                message="refused (injected fault)",
            )
        )
        pool = _pool(app)
        with pytest.raises(SalesforceRequestError, match="refused"):
            app.backup_service(extract_pool=pool).run_backup(ORG)
        run = app.catalog.list_runs(ORG)[-1]
        assert run.status is RunStatus.FAILED
        assert "SalesforceRequestError" in run.message
        assert app.catalog.head_snapshot(ORG) is None
        assert app.catalog.get_lock(ORG) is None, "the lock is released"
        cps = app.catalog.list_checkpoints(ORG, run.run_id)
        touched = {cp.object_name for cp in cps if cp.state is not ObjectState.PENDING}
        assert "ContentVersion" in pool.started
        assert touched == set(pool.started), "only objects the pool handed out were extracted"
        assert len(pool.started) < len(cps), "objects after the failure were never started"

        emu.faults.clear()
        result = app.backup_service().run_backup(ORG)
        assert result.snapshot.snapshot_id == run.run_id, "the failed run was resumed"
        assert_identical(app, emu)
    finally:
        app.close()


def test_allowance_used_up_in_a_worker_pauses_then_resumes(tmp_path, fresh_emulator):
    emu = fresh_emulator(scale=300, seed=23, daily_limit=1000)
    app = worker_app(tmp_path, budget_share=0.05)
    try:
        connect(app, emu)
        with pytest.raises(ApiBudgetExhausted, match="paused"):
            app.backup_service().run_backup(ORG)
        run = app.catalog.list_runs(ORG)[-1]
        assert run.status is RunStatus.PAUSED
        # each worker checks the share against the usage Salesforce last reported to it, so the other
        # worker's call in flight can go over by one (workers - 1 in general), never more
        assert emu.usage.used <= 0.05 * 1000 + 1, "the workers stop at the configured share"
        cps = app.catalog.list_checkpoints(ORG, run.run_id)
        assert any(cp.state is not ObjectState.PENDING for cp in cps), "it paused in the workers"
        emu.usage.reset()  # a new day
        result = app.backup_service().run_backup(ORG)
        assert result.snapshot.snapshot_id == run.run_id
        assert_identical(app, emu)
    finally:
        app.close()


def _children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    out: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_the_cli_leaves_no_worker_then_resume(tmp_path, fresh_emulator):
    """SIGKILL of `orgvault backup` while its workers extract: every worker dies with it (nothing can
    write after the resumed run starts), and the resumed run's snapshot equals the org."""
    emu = fresh_emulator(scale=600, seed=24)
    emu.faults.update(latency_seconds=0.01)
    home = tmp_path / "home"
    app = worker_app(home)
    connect(app, emu)
    app.close()
    env = {
        **os.environ,
        "ORGVAULT_HOME": str(home),
        "ORGVAULT_CHUNK_RECORDS": "50",
        "ORGVAULT_WORKERS": "2",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    repo = Path(__file__).resolve().parents[2]
    killed_workers: set[int] = set()
    for _ in range(2):
        proc = subprocess.Popen(
            [sys.executable, "-m", "orgvault.cli", "backup", ORG, "--json"],
            env=env,
            cwd=repo,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        workers: set[int] = set()
        deadline = time.monotonic() + 60
        while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
            workers = {c for c in _children(proc.pid) if "spawn_main" in _cmdline(c)}
            time.sleep(0.05)
        assert len(workers) == 2, "the CLI started two worker processes"
        time.sleep(0.7)  # let them commit a few chunks
        assert proc.poll() is None, "the backup finished before it could be killed; slow the emulator down"
        children = _children(proc.pid)  # the workers and multiprocessing's resource tracker
        # every request now takes 2 s: a worker that did not die with its parent would still be
        # waiting for its answer (and then commit it) when the check below runs
        emu.faults.update(latency_seconds=2.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        gone_by = time.monotonic() + 1.0
        while any(_alive(c) for c in children) and time.monotonic() < gone_by:
            time.sleep(0.02)
        assert not [c for c in children if _alive(c)], "a child process outlived the killed CLI"
        emu.faults.update(latency_seconds=0.01)
        killed_workers |= workers
    assert len(killed_workers) == 4
    emu.faults.update(latency_seconds=0.0)
    done = cli_backup(env, timeout=180)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    app = worker_app(home)
    try:
        runs = app.catalog.list_runs(ORG)
        assert len(runs) == 1 and runs[0].status is RunStatus.COMPLETED, "the killed run was resumed"
        assert summary["snapshot_id"] == runs[0].run_id
        assert_identical(app, emu)
    finally:
        app.close()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# --- the pool itself, with a stand-in service (deterministic) -------------------------------------


class FakeService:
    """Stands in for the backup service in a worker: what it does depends on the object's name."""

    def __init__(self, marks: Path) -> None:
        self.marks = marks

    def run_task(self, task: Any, *, on_step: Any, sleep: Any, after_commit: Any) -> None:
        from orgvault.services.backup import StepResult, StepStatus

        name = task.object_name
        (self.marks / f"{name}.started").touch()
        if name == "orgvault-error":
            raise SalesforceRequestError("refused by the fake", error_code="INVALID_FIELD", status=400)
        if name == "bug":
            for _ in range(200):  # fail only once the other worker is busy with "slow"
                if (self.marks / "slow.started").exists():
                    break
                time.sleep(0.05)
            raise KeyError("Id")
        if name == "dies":
            os.kill(os.getpid(), signal.SIGKILL)
        if name.startswith("slow"):
            time.sleep(3)
        after_commit()
        on_step(StepResult(task.org, task.run_id, name, StepStatus.MORE, records=1, api_calls=2))
        on_step(StepResult(task.org, task.run_id, name, StepStatus.DONE, records=2, api_calls=1))
        (self.marks / f"{name}.done").touch()


class FakeFactory:
    """Picklable ``make_service`` for the pool (imported by name in the spawned worker)."""

    def __init__(self, marks: Path) -> None:
        self.marks = marks

    def __call__(self) -> tuple[FakeService, Any]:
        return FakeService(self.marks), lambda: None


def _run_pool(tmp_path: Path, names: list[str], workers: int = 2) -> tuple[list[str], list[Any]]:
    from orgvault.services.backup import ExtractTask

    started: list[str] = []
    steps: list[Any] = []
    pool = ProcessExtractPool(workers, FakeFactory(tmp_path))
    tasks = [ExtractTask("acme", "run-1", n) for n in names]
    try:
        pool.run(tasks, on_start=started.append, on_step=steps.append, idle=lambda: None)
    finally:
        import multiprocessing

        assert not [p for p in multiprocessing.active_children() if p.name.startswith("orgvault-extract")]
    return started, steps


def test_pool_runs_every_task_in_order_and_reports_every_step(tmp_path):
    names = ["slow-big", "b", "c", "d", "e"]
    started, steps = _run_pool(tmp_path, names)
    assert started == names
    assert {(s.object_name, s.status.value) for s in steps} == {
        (n, st) for n in names for st in ("more", "done")
    }
    assert all(s.checkpoint is None for s in steps)
    assert sum(s.api_calls for s in steps) == 3 * len(names)
    assert all((tmp_path / f"{n}.done").exists() for n in names)


def test_pool_stops_at_a_bug_starts_nothing_more_and_terminates_the_others(tmp_path):
    from orgvault.errors import WorkerFailed

    t0 = time.monotonic()
    with pytest.raises(WorkerFailed, match=r"extracting bug failed in a worker process: KeyError: 'Id'"):
        _run_pool(tmp_path, ["slow", "bug", "c", "d"])
    assert time.monotonic() - t0 < 3 + 2, "the slow worker was stopped, not waited for"
    assert (tmp_path / "slow.started").exists() and not (tmp_path / "slow.done").exists()
    assert not (tmp_path / "c.started").exists() and not (tmp_path / "d.started").exists()


def test_pool_keeps_the_class_of_orgvault_errors(tmp_path):
    with pytest.raises(SalesforceRequestError, match="refused by the fake") as info:
        _run_pool(tmp_path, ["orgvault-error", "b"], workers=1)
    assert (info.value.error_code, info.value.status) == ("INVALID_FIELD", 400)
    assert not (tmp_path / "b.started").exists()


def test_pool_reports_a_worker_that_died(tmp_path):
    from orgvault.errors import WorkerFailed

    with pytest.raises(WorkerFailed, match="extracting dies exited"):
        _run_pool(tmp_path, ["dies", "b", "c"], workers=1)
    assert not (tmp_path / "c.started").exists()


def _extract_workers() -> list[Any]:
    import multiprocessing

    return [p for p in multiprocessing.active_children() if p.name.startswith("orgvault-extract")]


def test_workers_started_ahead_of_planning_are_stopped_when_the_backup_cannot_start(tmp_path):
    from orgvault.errors import UnknownOrg

    app = worker_app(tmp_path)
    try:
        with pytest.raises(UnknownOrg):
            app.backup_service().run_backup("nobody")
        assert _extract_workers() == []
    finally:
        app.close()
    pool = ProcessExtractPool(2, FakeFactory(tmp_path))
    pool.warm_up()
    assert len(_extract_workers()) == 2
    pool.close()
    assert _extract_workers() == []
