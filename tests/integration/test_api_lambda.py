"""The API Lambda handler and the AWS-side pieces: IAM principals mapped by configuration, Cognito group
claims, and on-demand backups started through Step Functions (moto)."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from orgvault.adapters.aws_stepfunctions import StepFunctionsBackupLauncher
from orgvault.api.authz import Role, parse_groups, principal_from_event, role_arn


def _event(ctx):
    return {"path": "/v1/orgs", "httpMethod": "GET", "headers": {}, "requestContext": ctx, "body": None}


def test_cognito_claims_and_iam_roles_map_to_roles_per_org():
    p = principal_from_event(
        _event(
            {
                "authorizer": {
                    "claims": {
                        "sub": "u-1",
                        "cognito:username": "ann",
                        "cognito:groups": "[org:acme:viewer org:acme:operator other]",
                    }
                }
            }
        )
    )
    assert p is not None and p.role_in("acme") is Role.OPERATOR and p.role_in("globex") is None
    assert parse_groups("org:a:viewer,admin") == ["org:a:viewer", "admin"]
    session = "arn:aws:sts::123456789012:assumed-role/ci/session-1"
    assert role_arn(session) == "arn:aws:iam::123456789012:role/ci"
    mapping = {"arn:aws:iam::123456789012:role/ci": ["org:acme:viewer"]}
    m = principal_from_event(_event({"identity": {"userArn": session}}), mapping)
    assert (
        m is not None
        and m.kind == "machine"
        and m.can("acme", Role.VIEWER)
        and not m.can("acme", Role.OPERATOR)
    )
    unknown = principal_from_event(_event({"identity": {"userArn": "arn:aws:iam::1:user/x"}}), mapping)
    assert unknown is not None and unknown.role_in("acme") is None
    assert principal_from_event(_event({})) is None
    # headers a client controls never make a principal
    assert principal_from_event({"headers": {"cognito:groups": "admin"}, "requestContext": {}}) is None


def test_lambda_handler_refuses_anonymous_and_serves_signed_in(monkeypatch, tmp_path):
    from functions import _runtime
    from functions import api as fn
    from tests.integration.test_backup_support import make_app

    home = tmp_path / "home"
    _runtime.reset(lambda: make_app(home))
    monkeypatch.setenv(
        "ORGVAULT_BACKUP_STATE_MACHINE_ARN", "arn:aws:states:eu-west-1:123456789012:stateMachine:x"
    )
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    fn._api = None
    try:

        class Ctx:
            function_name = "api"
            memory_limit_in_mb = 512
            aws_request_id = "req-1"  # noqa: E702
            invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:api"

        anon = fn.handler(_event({"requestId": "r1"}), Ctx())
        assert anon["statusCode"] == 401
        ok = fn.handler(
            _event({"requestId": "r2", "authorizer": {"claims": {"sub": "s", "cognito:groups": "admin"}}}),
            Ctx(),
        )
        assert ok["statusCode"] == 200 and json.loads(ok["body"])["items"] == []
        iam = fn.handler(
            {
                **_event({"requestId": "r3", "identity": {"userArn": "arn:aws:iam::1:role/x"}}),
                "path": "/iam/v1/orgs/acme",
            },
            Ctx(),
        )
        assert iam["statusCode"] == 403  # an unmapped machine client sees nothing
    finally:
        fn._api = None
        _runtime.reset()


@mock_aws
def test_step_functions_launcher_starts_the_backup_workflow():
    sfn = boto3.client("stepfunctions", region_name="eu-west-1")
    iam = boto3.client("iam", region_name="eu-west-1")
    role = iam.create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    arn = sfn.create_state_machine(
        name="backup",
        roleArn=role,
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]
    started = StepFunctionsBackupLauncher(arn, client=sfn).start_backup("acme", full=True)
    assert started.execution_id and started.status == "starting"
    desc = sfn.describe_execution(executionArn=started.execution_id)
    assert json.loads(desc["input"]) == {"org": "acme", "full": True}
    from orgvault.errors import ConfigError

    with pytest.raises(ConfigError):
        StepFunctionsBackupLauncher(arn.replace("backup", "missing"), client=sfn).start_backup(
            "acme", full=False
        )


@mock_aws
def test_approval_in_aws_mode_starts_the_restore_workflow_and_runs_nothing_here(tmp_path):
    from orgvault.adapters.aws_stepfunctions import StepFunctionsRestoreLauncher
    from orgvault.api.app import ApiContext, OrgVaultApi
    from orgvault.api.audit import AuditLog
    from tests.integration.test_api_support import build_world, stop_world

    sfn = boto3.client("stepfunctions", region_name="eu-west-1")
    role = boto3.client("iam", region_name="eu-west-1").create_role(
        RoleName="sfn", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    arn = sfn.create_state_machine(
        name="restore",
        roleArn=role,
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]
    w = build_world(tmp_path, scale=60)
    try:
        lines: list[str] = []

        class Refuse:
            def submit(self, name, fn):  # pragma: no cover - must not be used when a launcher is set
                raise AssertionError("an approved restore ran in the API process")

        api = OrgVaultApi(
            ApiContext(
                app=w.app,
                launcher=None,
                runner=Refuse(),
                audit=AuditLog(sink=lines.append),
                restore_launcher=StepFunctionsRestoreLauncher(arn, client=sfn),
            )
        )
        claims = {"sub": "u-9", "cognito:username": "olga", "cognito:groups": "org:acme:operator"}

        def call(method, path, body=None):
            out = api.handle(
                {
                    "path": path,
                    "httpMethod": method,
                    "headers": {"Content-Type": "application/json"},
                    "body": json.dumps(body) if body is not None else None,
                    "requestContext": {"requestId": "q", "authorizer": {"claims": claims}},
                },
                None,
            )
            return out["statusCode"], json.loads(out["body"])

        status, plan = call(
            "POST",
            "/v1/orgs/acme/restores",
            {
                "object": "Account",
                "mode": "revert-fields",
                "ids": [w.account_id],
                "snapshot_id": w.snapshots[0],
            },
        )
        assert status == 201 and plan["planned_total"] == 1, plan
        status, approved = call("POST", f"/v1/orgs/acme/restores/{plan['restore_id']}/approve")
        assert status == 202 and approved["approved_by"] == "olga"
        (execution,) = sfn.list_executions(stateMachineArn=arn)["executions"]
        started = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
        assert started == {"org": "acme", "job_id": plan["restore_id"]}
        name = next(r for r in w.emu.org.true_records("Account") if r["Id"] == w.account_id)["Name"]
        assert name == "Renamed by the API test", "nothing was written by the API process itself"
        runs = [json.loads(x) for x in lines if '"restores.run"' in x]
        assert runs and runs[-1]["outcome"] == "started" and runs[-1]["principal"]["name"] == "olga"
    finally:
        stop_world(w)
