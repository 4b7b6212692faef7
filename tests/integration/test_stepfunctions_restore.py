"""End to end: the REAL restore state machine from the synthesized template, under moto, with its task
dispatched to ``functions/restore_run.py``. A backup taken by the real backup workflow is restored into
the emulator org after records were deleted: the job is planned and approved through the API's
restore desk (dry run, journal), and the approval starts the restore workflow as the cloud task
runner does.
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
COMPARED = ("LastName", "FirstName", "Email", "Title", "AccountId")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return h.synthesized(CONTEXT)


@pytest.fixture
def cloud(template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with h.moto_cloud(template, monkeypatch, ORG) as env:
        yield env


@pytest.mark.slow
def test_deleted_records_are_restored_by_the_restore_workflow(cloud, fresh_emulator):
    from orgvault.api.restores import RestoreDesk
    from orgvault.services.restore import RestoreRequest

    emu = fresh_emulator(scale=120, seed=31)
    app, deployed, session = cloud["app"], cloud["deployed"], cloud["session"]
    h.connect(app, emu, ORG)
    backup = h.run_execution(session, h.state_machine(deployed, "BackupStateMachine"), {"org": ORG})
    assert backup["status"] == "SUCCEEDED"

    contacts = {r["Id"]: r for r in emu.org.true_records("Contact")}
    # (seeded Titles can exceed the field's 128 characters, which Salesforce — and so the emulator —
    # refuses on insert: pick contacts a real org could hold)
    victims = sorted(i for i, r in contacts.items() if len(r.get("Title") or "") <= 128)[:3]
    for rid in victims:
        emu.org.delete("Contact", rid)
    assert not set(victims) & {r["Id"] for r in emu.org.true_records("Contact")}

    desk = RestoreDesk(app)
    planned = desk.plan(
        RestoreRequest(org=ORG, object_name="Contact", ids=tuple(victims)), requested_by="tester"
    )
    assert planned.planned_total == len(victims), planned.planned
    executions: list[dict[str, Any]] = []

    def start_workflow(_name: str, _run_in_process: Any) -> None:
        # the cloud task runner: start the restore state machine instead of running in-process
        executions.append(
            h.run_execution(
                session,
                h.state_machine(deployed, "RestoreStateMachine"),
                {"org": ORG, "job_id": planned.restore_id},
            )
        )

    desk.approve(ORG, planned.restore_id, approved_by="approver", submit=start_workflow)

    (execution,) = executions
    assert execution["status"] == "SUCCEEDED", [(i.handler, i.error, i.message) for i in deployed.invocations]
    assert [i.handler for i in deployed.invocations].count("restore_run") == 1
    view = desk.get(ORG, planned.restore_id)
    assert view.status == "completed"
    assert all(r.get("success") for r in view.results), [r for r in view.results if not r.get("success")]
    created = {r["source_id"][:15]: r["id"] for r in view.results}
    assert len(created) == len(victims), view.results
    live = {r["Id"]: r for r in emu.org.true_records("Contact")}
    for old in victims:
        new = created[old[:15]]
        assert new in live and new != old
        assert {f: live[new].get(f) for f in COMPARED} == {f: contacts[old].get(f) for f in COMPARED}
    # nothing else was written: the org has as many contacts as before the deletion
    assert len(live) == len(contacts)


@pytest.mark.slow
def test_an_unknown_job_fails_the_restore_workflow(cloud):
    execution = h.run_execution(
        cloud["session"],
        h.state_machine(cloud["deployed"], "RestoreStateMachine"),
        {"org": ORG, "job_id": "r0"},
    )
    assert execution["status"] == "FAILED"
    (call,) = cloud["deployed"].invocations
    assert call.handler == "restore_run" and call.error is not None
