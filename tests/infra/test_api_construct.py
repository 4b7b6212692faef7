"""The API construct in a small standalone stack: Cognito authorizer on every /v1 method, IAM on /iam,
no anonymous method, groups per org and role, access logging, throttling, TLS 1.2 custom domain, WAF
when asked, and cdk-nag (AwsSolutions) clean."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")

pytestmark = pytest.mark.infra


def _synth(context):
    from aws_cdk import App, Aspects, Stack
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk.assertions import Annotations, Match, Template
    from cdk_nag import AwsSolutionsChecks, NagPackSuppression, NagSuppressions

    from infra_cdk.constructs.api import Api

    app = App(context=context)
    stack = Stack(app, "ApiTest", env={"account": "123456789012", "region": "eu-west-1"})
    fn = lambda_.Function(
        stack,
        "ApiFn",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="functions.api.handler",
        code=lambda_.Code.from_inline("def handler(e, c): pass"),
    )
    machine = sfn.StateMachine(
        stack,
        "Backup",
        definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(stack, "P")),
        tracing_enabled=True,
    )
    api = Api(stack, "Api", handler=fn, orgs=["acme-prod", "acme-sandbox"], state_machine=machine)
    # the stand-ins for the stack's own function and workflow are not under test
    for c in (fn, machine):
        NagSuppressions.add_resource_suppressions(
            c,
            [
                NagPackSuppression(id=i, reason="test stand-in")
                for i in (
                    "AwsSolutions-IAM4",
                    "AwsSolutions-IAM5",
                    "AwsSolutions-L1",
                    "AwsSolutions-SF1",
                    "AwsSolutions-SF2",
                )
            ],
            apply_to_children=True,
        )
    Aspects.of(app).add(AwsSolutionsChecks())
    template = Template.from_stack(stack)
    notes = Annotations.from_stack(stack)
    errors = notes.find_error("*", Match.string_like_regexp("AwsSolutions-.*")) + notes.find_warning(
        "*", Match.string_like_regexp("AwsSolutions-.*")
    )
    return api, template, errors


def test_every_method_is_authenticated_and_nag_clean():
    _api, t, errors = _synth(
        {
            "apiDomainName": "api.example.com",
            "apiCertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
            "apiDomainPrefix": "orgvault-test",
            "apiWaf": True,
            "apiSamlProviders": [{"name": "corp", "metadataUrl": "https://idp.example.com/m"}],
        }
    )
    assert not errors, [e.entry.data for e in errors]
    methods = t.find_resources("AWS::ApiGateway::Method")
    assert len(methods) >= 3
    kinds = {}
    for m in methods.values():
        p = m["Properties"]
        kinds.setdefault(p["AuthorizationType"], 0)
        kinds[p["AuthorizationType"]] += 1
        assert p["AuthorizationType"] in ("COGNITO_USER_POOLS", "AWS_IAM"), "no anonymous method"
    assert kinds["COGNITO_USER_POOLS"] >= 2 and kinds["AWS_IAM"] >= 1
    t.has_resource_properties("AWS::ApiGateway::DomainName", {"SecurityPolicy": "TLS_1_2"})
    t.has_resource_properties("AWS::ApiGateway::RestApi", {"DisableExecuteApiEndpoint": True})
    stage = next(iter(t.find_resources("AWS::ApiGateway::Stage").values()))["Properties"]
    assert stage["AccessLogSetting"]["DestinationArn"]
    setting = stage["MethodSettings"][0]
    assert setting["ThrottlingRateLimit"] > 0 and setting["DataTraceEnabled"] is False
    groups = {g["Properties"]["GroupName"] for g in t.find_resources("AWS::Cognito::UserPoolGroup").values()}
    assert {"admin", "org:acme-prod:viewer", "org:acme-prod:operator", "org:acme-sandbox:admin"} <= groups
    t.has_resource_properties("AWS::Cognito::UserPool", {"MfaConfiguration": "OPTIONAL"})
    t.resource_count_is("AWS::Cognito::UserPoolDomain", 1)
    t.resource_count_is("AWS::Cognito::UserPoolIdentityProvider", 1)
    t.resource_count_is("AWS::WAFv2::WebACLAssociation", 1)


def test_mfa_can_be_required_and_waf_left_out():
    _api, t, errors = _synth({"apiMfa": "required"})
    assert not errors, [e.entry.data for e in errors]
    t.has_resource_properties("AWS::Cognito::UserPool", {"MfaConfiguration": "ON"})
    t.resource_count_is("AWS::WAFv2::WebACL", 0)


def test_joins_the_real_stack_nag_clean(synth):
    from aws_cdk.assertions import Template

    s = synth
    errors = [m for m in s.nag_messages if "AwsSolutions-" in m["message"]]  # errors and warnings
    assert not errors, errors[:5]
    t: Template = s.template
    fns = [
        f
        for f in t.find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "functions.api.handler"
    ]
    assert len(fns) == 1
    env = fns[0]["Properties"]["Environment"]["Variables"]
    assert {
        "ORGVAULT_BACKUP_STATE_MACHINE_ARN",
        "ORGVAULT_RESTORE_STATE_MACHINE_ARN",
        "ORGVAULT_IAM_PRINCIPALS",
    } <= set(env)
