"""cdk-nag AwsSolutions has no unacknowledged finding (and every acknowledgement has a reason);
cfn-lint is clean on the synthesized template."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.infra


def test_cdk_nag_reports_no_unsuppressed_finding(synth):
    findings = [m for m in synth.nag_messages if "AwsSolutions-" in m["message"]]
    assert findings == [], "\n".join(f"{m['path']}: {m['message'][:200]}" for m in findings)


def test_every_nag_suppression_has_a_reason(synth):
    found = 0
    for lid, res in synth.template_json["Resources"].items():
        for s in res.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            found += 1
            assert len(s.get("reason", "")) >= 20, f"{lid}: suppression of {s['id']} without a real reason"
    assert found > 0


def test_nag_actually_runs(tmp_path):
    """A deliberately bad bucket in a scratch app is reported: the checks are live, not silenced."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_s3 as s3

    from infra_cdk.nag import apply_nag

    app = App()
    stack = Stack(app, "Scratch")
    s3.Bucket(stack, "Open")
    apply_nag(app)
    artifact = app.synth().get_stack_artifact(stack.artifact_id)
    assert any("AwsSolutions-S1" in str(m.entry.data) for m in artifact.messages)


#: W3005 ("obsolete DependsOn"): CDK deliberately makes a resource depend on its role *and* the role's
#: default policy so the policy exists before first use; the role half is redundant but harmless.
CFN_LINT_IGNORED = ["W3005"]


def test_cfn_lint_is_clean(synth):
    from cfnlint import api

    template = json.dumps(synth.template_json)
    config = api.ManualArgs(regions=["us-east-1", "eu-west-1"], ignore_checks=CFN_LINT_IGNORED)
    matches: list[Any] = api.lint(template, config=config)
    assert matches == [], "\n".join(str(m) for m in matches)
