"""The CDK app: ``npx cdk synth`` (via ``cdk.json``) or ``python -m infra_cdk.app``.

Reads the deployment configuration from the context (see ``infra_cdk.config``), builds the orgvault
stack, applies cdk-nag's AwsSolutions checks with the acknowledged findings, and synthesizes.
When the context flag ``skipBundling`` is true, ``aws:cdk:bundling-stacks`` is set to ``[]`` so the
layers are not built (fast synth for tests and template review; such an assembly is not deployable).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment

from infra_cdk.config import DeploymentConfig
from infra_cdk.nag import acknowledge, apply_nag
from infra_cdk.stacks.orgvault_stack import OrgVaultStack

STACK_NAME = "OrgVault"


def cdk_json_context() -> dict[str, Any]:
    """The ``context`` of ``cdk.json`` (feature flags and defaults), so that synthesizing without the CDK
    CLI (tests, ``make synth``) gives the same template as ``npx cdk synth``."""
    path = Path(__file__).resolve().parent.parent / "cdk.json"
    return dict(json.loads(path.read_text()).get("context", {})) if path.exists() else {}


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def build_app(
    context: Mapping[str, Any] | None = None, *, outdir: str | None = None
) -> tuple[App, OrgVaultStack]:
    """Build (not synthesize) the app. ``context`` adds to / overrides ``cdk.json`` context."""
    ctx = {**cdk_json_context(), **dict(context or {})}
    if _truthy(ctx.get("skipBundling", False)):
        ctx["aws:cdk:bundling-stacks"] = []
    app = App(context=ctx or None, outdir=outdir)
    if _truthy(app.node.try_get_context("skipBundling") or False):
        app.node.set_context("aws:cdk:bundling-stacks", [])
    raw = {
        key: app.node.try_get_context(key)
        for key in (
            "orgs",
            "retentionDays",
            "lockMode",
            "lockDays",
            "infrequentAccessAfterDays",
            "glacierAfterDays",
            "mapConcurrency",
            "extractTimeBudgetSeconds",
            "apiBudgetShare",
            "snapshotMaxAgeHours",
            "notificationEmail",
        )
    }
    config = DeploymentConfig.from_context({k: v for k, v in raw.items() if v is not None})
    env = None
    if os.environ.get("CDK_DEFAULT_ACCOUNT") and os.environ.get("CDK_DEFAULT_REGION"):
        env = Environment(account=os.environ["CDK_DEFAULT_ACCOUNT"], region=os.environ["CDK_DEFAULT_REGION"])
    stack = OrgVaultStack(app, STACK_NAME, config=config, env=env)
    apply_nag(app)
    acknowledge(stack)
    return app, stack


def main() -> None:
    app, _ = build_app()
    app.synth()


if __name__ == "__main__":
    main()
