"""Authorization matrix: anonymous, viewer, operator, admin × own org and another org × every route,
against the real services over a local-mode vault holding two backups of an emulator org."""

from __future__ import annotations

import pytest

from tests.integration.test_api_support import OTHER, build_world, stop_world
from tests.integration.test_backup_support import ORG

# (name, method, path template, body, role needed)
ROUTES = [
    ("get-org", "GET", "/v1/orgs/{org}", None, "viewer"),
    ("list-runs", "GET", "/v1/orgs/{org}/runs", None, "viewer"),
    ("get-run", "GET", "/v1/orgs/{org}/runs/{s1}", None, "viewer"),
    ("start-run", "POST", "/v1/orgs/{org}/runs", {}, "operator"),
    ("list-snapshots", "GET", "/v1/orgs/{org}/snapshots", None, "viewer"),
    ("get-snapshot", "GET", "/v1/orgs/{org}/snapshots/{s1}", None, "viewer"),
    ("objects", "GET", "/v1/orgs/{org}/snapshots/{s2}/objects", None, "viewer"),
    ("browse", "GET", "/v1/orgs/{org}/objects/Account/records?snapshot_id={s1}&limit=5", None, "viewer"),
    ("record", "GET", "/v1/orgs/{org}/objects/Account/records/{account}?snapshot_id={s1}", None, "viewer"),
    ("history", "GET", "/v1/orgs/{org}/records/{account}/history", None, "viewer"),
    ("diff", "GET", "/v1/orgs/{org}/diff?older={s1}&newer={s2}", None, "viewer"),
    ("plan-restore", "POST", "/v1/orgs/{org}/restores", "restore", "operator"),
    ("list-restores", "GET", "/v1/orgs/{org}/restores", None, "viewer"),
    ("get-restore", "GET", "/v1/orgs/{org}/restores/{restore}", None, "viewer"),
    ("approve-restore", "POST", "/v1/orgs/{org}/restores/{fresh_restore}/approve", None, "operator"),
    ("restore-results", "GET", "/v1/orgs/{org}/restores/{restore}/results", None, "viewer"),
    ("verify", "POST", "/v1/orgs/{org}/verify", {}, "operator"),
]
RANK = {"viewer": 1, "operator": 2, "admin": 3}
CALLERS = [None, "viewer", "operator", "admin"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = build_world(tmp_path_factory.mktemp("api-authz"))
    w.restore_body = {
        "object": "Account",
        "mode": "revert-fields",
        "ids": [w.account_id],
        "snapshot_id": w.snapshots[0],
    }
    r = w.call("global", "POST", f"/v1/orgs/{ORG}/restores", json=w.restore_body)
    assert r.status_code == 201, r.text
    w.restore_id = r.json()["restore_id"]
    yield w
    stop_world(w)


def _fill(w, template: str, org: str) -> str:
    fresh = "r20000101T000000-000000"
    if "{fresh_restore}" in template and org == ORG:
        r = w.call("global", "POST", f"/v1/orgs/{ORG}/restores", json=w.restore_body)
        assert r.status_code == 201, r.text
        fresh = r.json()["restore_id"]
    return template.format(
        org=org,
        s1=w.snapshots[0],
        s2=w.snapshots[1],
        account=w.account_id,
        restore=w.restore_id,
        fresh_restore=fresh,
    )


@pytest.mark.parametrize("org_kind", ["own", "other"])
@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c or "anonymous")
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r[0])
def test_matrix(world, route, caller, org_kind):
    name, method, template, body, needed = route
    org = ORG if org_kind == "own" else OTHER
    if caller is not None and caller != "viewer" and method == "POST":
        world.runner.wait(120)  # a backup started by an earlier cell holds the org's run lock
    path = (
        _fill(world, template, org)
        if caller
        else template.format(
            org=org, s1="x", s2="x", account="001000000000001", restore="r1", fresh_restore="r1"
        )
    )
    payload = world.restore_body if body == "restore" else body
    before = len(world.audit_lines)
    r = world.call(caller, method, path, json=payload)
    if caller is None:
        expected = {401}
    elif org_kind == "other" or RANK[caller] < RANK[needed]:
        expected = {403}
    else:
        expected = {200, 201, 202}
    assert r.status_code in expected, f"{caller} {method} {path}: {r.status_code} {r.text[:300]}"
    assert r.headers["Content-Type"].startswith("application/json")
    err = r.json()
    if r.status_code >= 400:
        assert err["status"] == r.status_code and err["message"] and "Traceback" not in r.text
    if r.status_code == 403:
        assert org in err["message"] and needed in err["message"]
    if method == "POST" and r.status_code >= 400:
        # nothing was planned/approved/started: no restore job appeared for the refused call
        assert not any(
            a["outcome"] == "ok" and a["action"].startswith("restores") for a in world.audits()[before:]
        )
    if (
        name
        in (
            "browse",
            "record",
            "history",
            "diff",
            "objects",
            "plan-restore",
            "approve-restore",
            "verify",
            "list-restores",
            "get-restore",
            "restore-results",
        )
        and caller is not None
    ):
        lines = world.audits()[before:]
        assert lines, "decrypting reads and restores are audited"
        assert lines[-1]["principal"]["name"] == f"{caller}-user"
        assert lines[-1]["outcome"] == ("ok" if r.status_code < 400 else "denied")
        assert all("tok-" not in world.audit_lines[i] for i in range(before, len(world.audit_lines)))


def test_list_orgs_shows_only_visible_orgs(world):
    assert world.call(None, "GET", "/v1/orgs").status_code == 401
    for caller in ("viewer", "operator", "admin"):
        r = world.call(caller, "GET", "/v1/orgs")
        assert r.status_code == 200
        assert [o["name"] for o in r.json()["items"]] == [ORG]
        assert r.json()["items"][0]["role"] == caller
    r = world.call("global", "GET", "/v1/orgs")
    assert sorted(o["name"] for o in r.json()["items"]) == [ORG, OTHER]


def test_bad_token_and_swagger_needs_sign_in(world):
    r = world.call(None, "GET", "/v1/orgs", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert "not-a-token" not in r.text
    assert world.call(None, "GET", "/v1/swagger").status_code == 401
    r = world.call("viewer", "GET", "/v1/swagger")
    assert r.status_code == 200 and "swagger" in r.text.lower()


def test_restore_flow_plan_approve_results(world):
    r = world.call("operator", "POST", f"/v1/orgs/{ORG}/restores", json=world.restore_body)
    assert r.status_code == 201, r.text
    plan = r.json()
    assert plan["status"] == "awaiting-approval" and plan["requested_by"] == "operator-user"
    rid = plan["restore_id"]
    assert (
        world.call("viewer", "GET", f"/v1/orgs/{ORG}/restores/{rid}").json()["status"] == "awaiting-approval"
    )
    r = world.call("operator", "POST", f"/v1/orgs/{ORG}/restores/{rid}/approve")
    assert r.status_code == 202 and r.json()["approved_by"] == "operator-user"
    assert world.call("admin", "POST", f"/v1/orgs/{ORG}/restores/{rid}/approve").status_code == 409
    world.runner.wait(120)
    r = world.call("viewer", "GET", f"/v1/orgs/{ORG}/restores/{rid}")
    assert r.json()["status"] == "completed", r.text
    name = next(x for x in world.emu.org.true_records("Account") if x["Id"] == world.account_id)["Name"]
    assert name != "Renamed by the API test", "the approved revert put the backed-up name back"
