"""Security properties of the synthesized template (aws_cdk.assertions over one session synth)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

pytestmark = pytest.mark.infra


def _resources(synth: Any, cfn_type: str) -> dict[str, dict[str, Any]]:
    return synth.template.find_resources(cfn_type)


def _statements(policy_resource: dict[str, Any]) -> list[dict[str, Any]]:
    return policy_resource["Properties"]["PolicyDocument"]["Statement"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(synth: Any, role_prefix: str) -> list[dict[str, Any]]:
    """All statements of the inline policies attached to the role whose logical id starts with ``role_prefix``."""
    (role_id,) = [lid for lid in _resources(synth, "AWS::IAM::Role") if lid.startswith(role_prefix)]
    out: list[dict[str, Any]] = []
    for policy in _resources(synth, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            out.extend(_statements(policy))
    assert out, f"no inline policy on {role_id}"
    return out


def _org_key_ids(synth: Any) -> dict[str, str]:
    """org name → logical id of its KMS key (from the aliases)."""
    out = {}
    for alias in _resources(synth, "AWS::KMS::Alias").values():
        name = alias["Properties"]["AliasName"]
        if name.startswith("alias/orgvault/") and name != "alias/orgvault/platform":
            out[name.rsplit("/", 1)[-1]] = alias["Properties"]["TargetKeyId"]["Fn::GetAtt"][0]
    return out


# --- encryption everywhere ---------------------------------------------------------------------


def test_every_bucket_is_encrypted_private_and_tls_only(synth):
    buckets = _resources(synth, "AWS::S3::Bucket")
    assert len(buckets) == 3  # vault, access logs, trail
    for lid, bucket in buckets.items():
        props = bucket["Properties"]
        rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"
        ]
        assert rule["SSEAlgorithm"] in ("aws:kms", "AES256"), lid
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, lid
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}, lid
    policies = _resources(synth, "AWS::S3::BucketPolicy")
    covered = set()
    for policy in policies.values():
        for st in _statements(policy):
            if (
                st["Effect"] == "Deny"
                and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            ):
                covered.add(policy["Properties"]["Bucket"]["Ref"])
    assert covered == set(buckets), "every bucket policy must deny requests without TLS"


def test_vault_and_trail_buckets_use_kms_and_object_lock_from_context(synth):
    locked = {
        lid: b["Properties"]
        for lid, b in _resources(synth, "AWS::S3::Bucket").items()
        if b["Properties"].get("ObjectLockEnabled")
    }
    assert len(locked) == 2  # vault + trail
    for lid, props in locked.items():
        rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms", lid
        assert "KMSMasterKeyID" in rule["ServerSideEncryptionByDefault"], lid
        # the test context asks for COMPLIANCE, 35 days
        assert props["ObjectLockConfiguration"] == {
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 35}},
        }, lid
        assert props["LoggingConfiguration"]["DestinationBucketName"]["Ref"].startswith(
            "VaultStorageAccessLogs"
        )


def test_vault_lifecycle_moves_to_cheaper_storage_and_expires_old_versions_after_retention(synth):
    (vault,) = [
        b["Properties"]
        for b in _resources(synth, "AWS::S3::Bucket").values()
        if b["Properties"].get("LoggingConfiguration", {}).get("LogFilePrefix") == "vault/"
    ]
    (rule,) = vault["LifecycleConfiguration"]["Rules"]
    assert [t["StorageClass"] for t in rule["Transitions"]] == ["STANDARD_IA", "GLACIER_IR"]
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 400  # retentionDays of the test context


def test_catalog_has_pitr_deletion_protection_cmk_ttl_and_on_demand(synth):
    synth.template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "DeletionProtectionEnabled": True,
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": Match.any_value()},
            "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
        },
    )


def test_secrets_queue_topic_and_log_groups_use_the_platform_key(synth):
    platform = next(
        a["Properties"]["TargetKeyId"]["Fn::GetAtt"][0]
        for a in _resources(synth, "AWS::KMS::Alias").values()
        if a["Properties"]["AliasName"] == "alias/orgvault/platform"
    )
    secrets = _resources(synth, "AWS::SecretsManager::Secret")
    assert {s["Properties"]["Name"] for s in secrets.values()} == {
        "orgvault/acme-prod/salesforce",
        "orgvault/acme-sandbox/salesforce",
    }
    for s in secrets.values():
        assert s["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [platform, "Arn"]}
    for q in _resources(synth, "AWS::SQS::Queue").values():
        assert q["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [platform, "Arn"]}
    for t in _resources(synth, "AWS::SNS::Topic").values():
        assert t["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [platform, "Arn"]}
    log_groups = _resources(synth, "AWS::Logs::LogGroup")
    assert len(log_groups) >= 6
    for lid, lg in log_groups.items():
        assert lg["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [platform, "Arn"]}, lid
    synth.template.has_resource_properties(
        "AWS::CloudTrail::Trail", {"KMSKeyId": {"Fn::GetAtt": [platform, "Arn"]}}
    )


def test_every_key_rotates_and_is_retained(synth):
    keys = synth.template.find_resources("AWS::KMS::Key")
    assert len(keys) == 3  # platform + one per org
    for lid, key in keys.items():
        assert key["Properties"]["EnableKeyRotation"] is True, lid
        assert key["DeletionPolicy"] == "Retain", lid


# --- KMS key policies ---------------------------------------------------------------------------


def test_org_key_policies_allow_crypto_only_with_that_orgs_context(synth):
    keys = synth.template.find_resources("AWS::KMS::Key")
    for org, lid in _org_key_ids(synth).items():
        statements = keys[lid]["Properties"]["KeyPolicy"]["Statement"]
        for st in statements:
            actions = set(_as_list(st["Action"]))
            crypto = {
                a
                for a in actions
                if a in ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*")
            }
            if st["Effect"] == "Allow" and crypto:
                assert st["Condition"] == {"StringEquals": {"kms:EncryptionContext:org": org}}, (org, st)
            if st["Effect"] == "Allow":
                assert "kms:*" not in actions, "no blanket kms:* on an org key"
        denies = [st for st in statements if st["Effect"] == "Deny"]
        assert denies and "kms:Decrypt" in _as_list(denies[0]["Action"])
        assert denies[0]["Condition"] == {"StringNotEquals": {"kms:EncryptionContext:org": org}}
        assert denies[0]["Principal"] == {"AWS": "*"}


# --- least privilege ----------------------------------------------------------------------------


def test_extract_can_generate_data_keys_but_cannot_decrypt_data(synth):
    statements = _role_statements(synth, "FunctionsBackupExtractRole")
    org_keys = {lid for lid in _org_key_ids(synth).values()}
    generate = [
        st
        for st in statements
        if "kms:GenerateDataKey" in _as_list(st["Action"])
        and any(
            r.get("Fn::GetAtt", [None])[0] in org_keys
            for r in _as_list(st["Resource"])
            if isinstance(r, dict)
        )
    ]
    assert generate, "extract must be able to seal chunks with the org keys"
    for st in statements:
        actions = _as_list(st["Action"])
        assert not any(a in ("kms:*", "kms:Decrypt*", "kms:ReEncrypt*", "*") for a in actions), st
        if "kms:Decrypt" not in actions:
            continue
        resources = [r.get("Fn::GetAtt", [None])[0] for r in _as_list(st["Resource"]) if isinstance(r, dict)]
        if any(r in org_keys for r in resources):
            # the only org-key decrypt: the content-id HMAC key (purpose=content-id), never a data key
            cond = st.get("Condition", {}).get("StringEquals", {})
            assert cond.get("kms:EncryptionContext:purpose") == "content-id", (
                f"extract may decrypt data: {st}"
            )
            assert "kms:EncryptionContext:org" in cond
        else:
            # the platform key, only through S3/DynamoDB/Secrets Manager
            assert "kms:ViaService" in st["Condition"]["StringEquals"], st


def test_restore_finalize_and_start_decrypt_only_with_each_orgs_context(synth):
    org_keys = _org_key_ids(synth)
    for role in ("FunctionsRestoreRunRole", "FunctionsBackupFinalizeRole", "FunctionsBackupStartRole"):
        statements = _role_statements(synth, role)
        decrypts = [
            st
            for st in statements
            if "kms:Decrypt" in _as_list(st["Action"])
            and any(
                isinstance(r, dict) and r.get("Fn::GetAtt", [None])[0] in org_keys.values()
                for r in _as_list(st["Resource"])
            )
        ]
        assert len(decrypts) == len(org_keys), role
        for st in decrypts:
            (resource,) = _as_list(st["Resource"])
            org = next(o for o, lid in org_keys.items() if resource == {"Fn::GetAtt": [lid, "Arn"]})
            assert st["Condition"] == {"StringEquals": {"kms:EncryptionContext:org": org}}, st


def test_fail_function_touches_only_the_catalog_and_its_logs(synth):
    statements = _role_statements(synth, "FunctionsBackupFailRole")
    services = {a.split(":")[0] for st in statements for a in _as_list(st["Action"])}
    assert services <= {"dynamodb", "logs", "xray", "kms"}
    assert not any(
        a.startswith("s3:") or a.startswith("secretsmanager:")
        for st in statements
        for a in _as_list(st["Action"])
    )


def test_no_wildcard_resources_where_the_resource_is_known(synth):
    """A ``*`` resource is allowed only for X-Ray (no resource-level permissions) and in key policies
    (where ``*`` means "this key"); everything else names its resource."""
    allowed_star_actions = {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }
    for lid, policy in _resources(synth, "AWS::IAM::Policy").items():
        for st in _statements(policy):
            if "*" in _as_list(st.get("Resource", [])):
                extra = set(_as_list(st["Action"])) - allowed_star_actions
                assert not extra, f"{lid} grants {sorted(extra)} on '*'"
            for a in _as_list(st["Action"]):
                assert a != "*" and not a.endswith(":*"), f"{lid} grants {a}"


def test_schedules_start_only_the_backup_state_machine(synth):
    statements = _role_statements(synth, "SchedulesRole")
    (start,) = [st for st in statements if "states:StartExecution" in _as_list(st["Action"])]
    assert start["Resource"] == {"Ref": _state_machine_id(synth, "BackupStateMachine")}


# --- functions, workflow, schedules, audit, monitoring -----------------------------------------


def test_functions_are_arm64_python312_traced_with_powertools_env(synth):
    functions = _resources(synth, "AWS::Lambda::Function")
    handlers = {f["Properties"]["Handler"] for f in functions.values()}
    assert handlers == {
        "functions.backup_start.handler",
        "functions.backup_extract.handler",
        "functions.backup_finalize.handler",
        "functions.backup_fail.handler",
        "functions.restore_run.handler",
        "functions.api.handler",
    }
    for lid, fn in functions.items():
        p = fn["Properties"]
        assert p["Runtime"] == "python3.12" and p["Architectures"] == ["arm64"], lid
        assert p["TracingConfig"] == {"Mode": "Active"}, lid
        env = p["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == "orgvault" and env["POWERTOOLS_LOG_LEVEL"] == "INFO"
        assert (
            env["ORGVAULT_MODE"] == "aws"
            and "Ref" in env["ORGVAULT_TABLE"]
            and "Ref" in env["ORGVAULT_BUCKET"]
        )
        assert p["ReservedConcurrentExecutions"] >= 1, lid
        assert len(p["Layers"]) == 2, lid
    extract = next(
        f["Properties"] for f in functions.values() if f["Properties"]["Handler"].endswith("extract.handler")
    )
    # budget (540 s) + margin, and reserved concurrency = map concurrency (3) × orgs (2) + 1
    assert extract["Timeout"] == 660
    assert extract["Environment"]["Variables"]["ORGVAULT_STEP_SECONDS"] == "540"
    assert extract["ReservedConcurrentExecutions"] == 7


def _state_machine_id(synth: Any, prefix: str) -> str:
    (lid,) = [lid for lid in _resources(synth, "AWS::StepFunctions::StateMachine") if lid.startswith(prefix)]
    return lid


def _definition(synth: Any, prefix: str = "BackupStateMachine") -> dict[str, Any]:
    sm = _resources(synth, "AWS::StepFunctions::StateMachine")[_state_machine_id(synth, prefix)]
    parts = sm["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "X" for p in parts))


def test_backup_workflow_shape(synth):
    d = _definition(synth)
    states = d["States"]
    assert d["StartAt"] == "Start"
    objects = states["Objects"]
    assert objects["Type"] == "Map" and objects["MaxConcurrency"] == 3
    assert objects["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert objects["Catch"][0]["Next"] == "MarkFailed"
    inner = objects["ItemProcessor"]["States"]
    assert inner["WaitForBulk"] == {
        **inner["WaitForBulk"],
        "Type": "Wait",
        "SecondsPath": "$.wait_seconds",
        "Next": "Extract",
    }
    choices = {c["StringEquals"]: c["Next"] for c in inner["Status"]["Choices"]}
    assert (
        choices == {"done": "ObjectDone", "wait": "WaitForBulk"} and inner["Status"]["Default"] == "Extract"
    )
    retried = {e for r in inner["Extract"]["Retry"] for e in r["ErrorEquals"]}
    assert {"RetryableError", "SalesforceUnavailable", "VaultUnavailable", "ConcurrentCommit"} <= retried
    assert "ApiBudgetExhausted" not in retried, "an exhausted API budget pauses the run, it is not retried"
    assert states["Finalize"]["Catch"][0]["Next"] == "MarkFailed"
    assert states["MarkFailed"]["Next"] == "BackupFailed" and states["BackupFailed"]["Type"] == "Fail"
    synth.template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like({"Level": "ALL"}),
        },
    )


def test_one_schedule_per_org_from_context(synth):
    schedules = _resources(synth, "AWS::Scheduler::Schedule")
    got = {
        json.loads(s["Properties"]["Target"]["Input"])["org"]: (
            s["Properties"]["ScheduleExpression"],
            s["Properties"]["ScheduleExpressionTimezone"],
        )
        for s in schedules.values()
    }
    assert got == {
        "acme-prod": ("cron(0 2 * * ? *)", "Europe/Paris"),
        "acme-sandbox": ("rate(12 hours)", "UTC"),
    }
    for s in schedules.values():
        assert "DeadLetterConfig" in s["Properties"]["Target"]


def test_trail_records_management_kms_and_vault_data_events_with_validation(synth):
    (trail,) = _resources(synth, "AWS::CloudTrail::Trail").values()
    p = trail["Properties"]
    assert p["EnableLogFileValidation"] is True and p["IsMultiRegionTrail"] is True
    selectors = p["EventSelectors"]
    assert any(s["IncludeManagementEvents"] and s["ReadWriteType"] == "All" for s in selectors)
    assert not any("ExcludeManagementEventSources" in s for s in selectors), "KMS events must not be excluded"
    data = [d for s in selectors for d in s.get("DataResources", [])]
    (vault_data,) = [d for d in data if "VaultStorageVault" in json.dumps(d["Values"])]
    assert vault_data["Type"] == "AWS::S3::Object"
    (vault_selector,) = [s for s in selectors if vault_data in s.get("DataResources", [])]
    assert vault_selector["ReadWriteType"] == "All", (
        "reads (restores) and writes of vault objects are both recorded"
    )
    # delivered to its own locked bucket, not the vault
    assert p["S3BucketName"]["Ref"].startswith("AuditTrailBucket")


def test_alarms_topic_and_run_status_rule_exist(synth):
    alarms = _resources(synth, "AWS::CloudWatch::Alarm")
    metrics = {(a["Properties"].get("Namespace"), a["Properties"].get("MetricName")) for a in alarms.values()}
    assert ("AWS/States", "ExecutionsFailed") in metrics
    assert ("OrgVault", "SnapshotCommitted") in metrics
    assert ("OrgVault", "ApiUsagePercent") in metrics
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in metrics
    for a in alarms.values():
        assert a["Properties"]["AlarmActions"], "every alarm notifies the topic"
    age = [
        a["Properties"] for a in alarms.values() if a["Properties"].get("MetricName") == "SnapshotCommitted"
    ]
    assert len(age) == 2 and all(p["TreatMissingData"] == "breaching" for p in age)
    synth.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": Match.object_like(
                {"source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"]}
            ),
            "Targets": Match.array_with([Match.object_like({"DeadLetterConfig": Match.any_value()})]),
        },
    )
    synth.template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
