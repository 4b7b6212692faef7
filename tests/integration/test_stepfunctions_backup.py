"""End to end: the REAL backup state machine definition, synthesized from the CDK app, executed by
moto's Step Functions interpreter, with every Lambda task dispatched to the real handler in
``functions/`` (see ``tests/infra/sfn_harness.py``), against an emulator org, with the AWS adapters
(S3, DynamoDB, KMS, Secrets Manager) under moto. The result is checked exactly as in local mode: the
committed snapshot equals the org's true state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("aws_cdk")

from tests.infra import sfn_harness as h  # noqa: E402

ORG = "acme"
CONTEXT: dict[str, Any] = {
    "skipBundling": True,
    "orgs": [{"name": ORG, "schedule": "cron(0 2 * * ? *)", "timezone": "UTC"}],
    "mapConcurrency": 3,
    "extractTimeBudgetSeconds": 60,
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return h.synthesized(CONTEXT)


@pytest.fixture
def cloud(template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with h.moto_cloud(template, monkeypatch, ORG) as env:
        yield env


def _connect(app: Any, emu: Any) -> None:
    h.connect(app, emu, ORG)


def _assert_snapshot_equals_org(app: Any, emu: Any) -> Any:
    from orgvault.demo import compare_snapshot_with_org

    cmp = compare_snapshot_with_org(app, ORG, emu.org)
    assert cmp.ok, "snapshot differs from the org:\n" + "\n".join(cmp.differences[:30])
    assert cmp.records > 0
    return cmp


def _states_entered(execution: dict[str, Any]) -> list[str]:
    return [
        e["stateEnteredEventDetails"]["name"] for e in execution["history"] if "stateEnteredEventDetails" in e
    ]


def _failures(deployed: h.Deployed) -> list[tuple[str, str | None, Any, str]]:
    return [(i.handler, i.error, i.event.get("object"), i.message) for i in deployed.invocations if i.error]


def _handlers_called(deployed: h.Deployed) -> list[str]:
    return [i.handler for i in deployed.invocations]


@pytest.mark.slow
def test_scheduled_backup_runs_the_real_workflow_and_the_snapshot_equals_the_org(cloud, fresh_emulator):
    emu = fresh_emulator(scale=150, seed=21, bulk_delay=1.0)
    app, deployed = cloud["app"], cloud["deployed"]
    _connect(app, emu)

    execution = h.run_execution(cloud["session"], deployed.state_machine_arn, {"org": ORG})

    assert execution["status"] == "SUCCEEDED", (execution.get("error"), execution.get("cause"))
    called = _handlers_called(deployed)
    assert called[0] == "backup_start" and called[-1] == "backup_finalize"
    assert "backup_fail" not in called
    # every object went through the per-object loop; several needed more than one step
    extract_events = [i.event for i in deployed.invocations if i.handler == "backup_extract"]
    objects = {e["object"] for e in extract_events}
    assert len(objects) > 3
    assert len(extract_events) > len(objects), "the extract → Choice → Extract loop never ran twice"
    # Bulk polling went through the Wait state, not a sleeping Lambda
    assert any(e.get("status") == "wait" for e in extract_events), "no extract step was a Bulk re-poll"
    snapshot = app.catalog.head_snapshot(ORG)
    assert snapshot is not None and snapshot.records > 100
    runs = app.catalog.list_runs(ORG)
    assert [r.status.value for r in runs] == ["completed"]
    assert app.catalog.get_lock(ORG) is None or app.catalog.get_lock(ORG).expires_at < runs[-1].finished_at
    _assert_snapshot_equals_org(app, emu)


@pytest.mark.slow
def test_a_run_that_fails_midway_is_marked_resumable_and_the_next_run_resumes_it(cloud, fresh_emulator):
    from orgvault.errors import SalesforceRequestError

    emu = fresh_emulator(scale=150, seed=22)
    app, deployed = cloud["app"], cloud["deployed"]
    _connect(app, emu)
    calls = {"n": 0}

    def break_after_some_chunks(event: dict[str, Any]) -> None:
        calls["n"] += 1
        if calls["n"] >= 6:  # a permanent error once several chunks are committed
            raise SalesforceRequestError(
                "injected: the query was refused", error_code="MALFORMED_QUERY", status=400
            )

    deployed.before["backup_extract"] = break_after_some_chunks
    failed = h.run_execution(cloud["session"], deployed.state_machine_arn, {"org": ORG})

    assert failed["status"] == "FAILED"
    # On AWS the distributed Map fails at once (States.ExceedToleratedFailureThreshold); moto's
    # interpreter counts the failed child but lets the Map succeed, and Finalize then refuses the
    # unfinished run. Either way the run must end in MarkFailed and never in a snapshot.
    assert "MarkFailed" in _states_entered(failed)
    assert "backup_fail" in _handlers_called(deployed)
    assert app.catalog.head_snapshot(ORG) is None, "a failed run must not leave a snapshot"
    (run,) = app.catalog.list_runs(ORG)
    assert run.status.value == "failed"
    committed = app.catalog.list_chunks(ORG, run.run_id)
    assert committed, "the failed run committed nothing before failing"

    deployed.before.clear()
    deployed.invocations.clear()
    resumed = h.run_execution(cloud["session"], deployed.state_machine_arn, {"org": ORG})

    assert resumed["status"] == "SUCCEEDED", _failures(deployed)
    start_output = next(i for i in deployed.invocations if i.handler == "backup_start")
    assert start_output.error is None
    runs = app.catalog.list_runs(ORG)
    assert len(runs) == 1 and runs[0].run_id == run.run_id and runs[0].status.value == "completed"
    assert app.catalog.head_snapshot(ORG).snapshot_id == run.run_id
    # objects finished before the failure were not extracted again
    done_before = {c.object_name for c in app.catalog.list_checkpoints(ORG, run.run_id)}
    assert done_before
    _assert_snapshot_equals_org(app, emu)


@pytest.mark.slow
def test_retryable_errors_are_retried_by_the_workflow(cloud, fresh_emulator):
    from orgvault.errors import SalesforceUnavailable

    emu = fresh_emulator(scale=80, seed=23)
    app, deployed = cloud["app"], cloud["deployed"]
    _connect(app, emu)
    calls = {"n": 0}

    def flaky(event: dict[str, Any]) -> None:
        calls["n"] += 1
        if calls["n"] in (2, 3):
            raise SalesforceUnavailable("injected: 503 from Salesforce")

    deployed.before["backup_extract"] = flaky
    execution = h.run_execution(cloud["session"], deployed.state_machine_arn, {"org": ORG})

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    errors = [i.error for i in deployed.invocations if i.handler == "backup_extract" and i.error]
    assert errors == ["SalesforceUnavailable", "SalesforceUnavailable"]
    assert "backup_fail" not in _handlers_called(deployed)
    _assert_snapshot_equals_org(app, emu)


def test_unknown_org_fails_at_start_without_a_run(cloud):
    execution = h.run_execution(cloud["session"], cloud["deployed"].state_machine_arn, {"org": "nobody"})
    assert execution["status"] == "FAILED"
    assert "StartFailed" in _states_entered(execution)
    assert _handlers_called(cloud["deployed"]) == ["backup_start"]


@pytest.mark.slow
def test_an_incremental_extracts_only_what_the_change_probe_could_not_clear(cloud, fresh_emulator):
    emu = fresh_emulator(scale=120, seed=25)
    app, deployed = cloud["app"], cloud["deployed"]
    _connect(app, emu)
    first = h.run_execution(cloud["session"], deployed.state_machine_arn, {"org": ORG})
    assert first["status"] == "SUCCEEDED", _failures(deployed)
    emu.org.clock.advance(900)
    account = next(emu.org.true_records("Account", include_blobs=False))
    emu.org.update("Account", account["Id"], {"Name": "Renamed between two scheduled runs"})
    emu.org.clock.advance(60)
    deployed.invocations.clear()

    second = h.run_execution(cloud["session"], deployed.state_machine_arn, {"org": ORG})

    assert second["status"] == "SUCCEEDED", _failures(deployed)
    start = next(i for i in deployed.invocations if i.handler == "backup_start")
    run_id = app.catalog.head_snapshot(ORG).snapshot_id
    extracted = {i.event["object"] for i in deployed.invocations if i.handler == "backup_extract"}
    # the objects the probe cleared are finished at start: no extract Lambda runs for them
    assert extracted == {"Account", "ContentDocumentLink"}, (start.error, extracted)
    checkpoints = app.catalog.list_checkpoints(ORG, run_id)
    assert len(checkpoints) > 10 and all(c.state.value == "done" for c in checkpoints)
    assert app.catalog.head_snapshot(ORG).kind.value == "incremental"
    _assert_snapshot_equals_org(app, emu)
