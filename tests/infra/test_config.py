"""The cdk.json context is validated at synth time, before anything is deployed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra_cdk.config import DeploymentConfig, LockMode

pytestmark = pytest.mark.infra


def test_repository_cdk_json_parses_into_a_deployable_config():
    ctx = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())["context"]
    config = DeploymentConfig.from_context(ctx)
    assert config.orgs and config.orgs[0].name == "acme-prod"
    assert config.lock_mode is LockMode.GOVERNANCE
    assert config.extract_timeout_seconds <= 900


@pytest.mark.parametrize(
    ("ctx", "names"),
    [
        ({"orgs": [{"name": "Bad Name"}]}, "orgs"),
        ({"orgs": [{"name": "acme", "schedule": "every day"}]}, "schedule"),
        ({"orgs": [{"name": "acme"}, {"name": "acme"}]}, "unique"),
        ({"orgs": [], "lockMode": "FOREVER"}, "lockMode"),
        ({"orgs": [], "mapConcurrency": 0}, "mapConcurrency"),
        ({"orgs": [], "extractTimeBudgetSeconds": 900}, "extractTimeBudgetSeconds"),
        ({"orgs": [], "glacierAfterDays": 20, "infrequentAccessAfterDays": 30}, "glacierAfterDays"),
        ({"orgs": [], "apiBudgetShare": 1.5}, "apiBudgetShare"),
    ],
)
def test_invalid_context_is_refused_naming_the_key(ctx, names):
    with pytest.raises(ValueError, match=names):
        DeploymentConfig.from_context(ctx)


def test_lock_days_default_to_retention_and_values_from_cli_strings_are_accepted():
    config = DeploymentConfig.from_context(
        {"orgs": '[{"name": "acme"}]', "retentionDays": "90", "lockMode": "compliance"}
    )
    assert config.lock_days == 90 and config.lock_mode is LockMode.COMPLIANCE
    assert config.orgs[0].schedule.startswith("cron(")
