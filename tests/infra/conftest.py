"""Synthesize the app once per session (synth takes ~15 s); every infra test reads the result."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

TEST_CONTEXT: dict[str, Any] = {
    "skipBundling": True,
    "orgs": [
        {"name": "acme-prod", "schedule": "cron(0 2 * * ? *)", "timezone": "Europe/Paris"},
        {"name": "acme-sandbox", "schedule": "rate(12 hours)", "timezone": "UTC"},
    ],
    "retentionDays": 400,
    "lockMode": "COMPLIANCE",
    "lockDays": 35,
    "mapConcurrency": 3,
    "extractTimeBudgetSeconds": 540,
}


@dataclass(frozen=True)
class Synth:
    template: Any  # aws_cdk.assertions.Template
    template_json: dict[str, Any]
    nag_messages: list[dict[str, Any]]  # {"level", "id", "path", "message"}
    stack: Any


def synthesize(context: dict[str, Any], outdir: str) -> Synth:
    from aws_cdk import assertions

    from infra_cdk.app import build_app

    app, stack = build_app(context, outdir=outdir)
    assembly = app.synth()
    artifact = assembly.get_stack_artifact(stack.artifact_id)
    messages = [
        {"level": str(m.level), "id": m.id, "path": m.id, "message": str(m.entry.data)}
        for m in artifact.messages
    ]
    with open(os.path.join(outdir, artifact.template_file)) as fh:
        template_json = json.load(fh)
    return Synth(
        template=assertions.Template.from_json(template_json),
        template_json=template_json,
        nag_messages=messages,
        stack=stack,
    )


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize(TEST_CONTEXT, str(tmp_path_factory.mktemp("cdk.out")))
