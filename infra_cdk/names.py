"""Names the infrastructure shares with the runtime (handlers, adapters, settings) and the tests.

Where ``orgvault.constants`` defines a name, it wins (it is the single source shared with settings and
adapters); the fallbacks here keep the infra synthesizable on its own.
"""

from __future__ import annotations

try:  # the shared constants module, written alongside the AWS adapters
    from orgvault import constants as _c
except ImportError:  # pragma: no cover - only before constants.py exists
    _c = None  # type: ignore[assignment]


def _get(name: str, default: str) -> str:
    return str(getattr(_c, name, default)) if _c is not None else default


#: The encryption-context key naming the org; KMS key policies condition on it.
ORG_CONTEXT_KEY = _get("KMS_CONTEXT_ORG", "org")

#: Environment variable names set on every function.
ENV_MODE = _get("ENV_MODE", "ORGVAULT_MODE")
ENV_BUCKET = _get("ENV_BUCKET", "ORGVAULT_BUCKET")
ENV_TABLE = _get("ENV_TABLE", "ORGVAULT_TABLE")
ENV_STEP_SECONDS = _get("ENV_STEP_SECONDS", "ORGVAULT_STEP_SECONDS")
ENV_BUDGET_SHARE = _get("ENV_BUDGET_SHARE", "ORGVAULT_BUDGET_SHARE")
ENV_VAULT_KMS_KEY = _get("ENV_VAULT_KMS_KEY", "ORGVAULT_VAULT_KMS_KEY")
ENV_LOCK_MODE = _get("ENV_LOCK_MODE", "ORGVAULT_LOCK_MODE")
ENV_LOCK_DAYS = _get("ENV_LOCK_DAYS", "ORGVAULT_LOCK_DAYS")

KEY_ALIAS_PREFIX = _get("KMS_ALIAS_PREFIX", "alias/orgvault/")
SECRET_NAME_TEMPLATE = _get("SECRET_NAME_TEMPLATE", "orgvault/{org}/salesforce")

#: CloudWatch custom metrics (emitted by the handlers through Powertools Metrics).
METRICS_NAMESPACE = _get("METRICS_NAMESPACE", "OrgVault")
METRIC_SNAPSHOT_COMMITTED = _get("METRIC_SNAPSHOT_COMMITTED", "SnapshotCommitted")
METRIC_RUN_FAILED = _get("METRIC_RUN_FAILED", "RunFailed")
METRIC_API_USAGE_PERCENT = _get("METRIC_API_USAGE_PERCENT", "ApiUsagePercent")
METRIC_DIMENSION_ORG = _get("METRIC_DIMENSION_ORG", "org")

SERVICE_NAME = "orgvault"


def org_key_alias(org: str) -> str:
    return f"{KEY_ALIAS_PREFIX}{org}"


def org_secret_name(org: str) -> str:
    return SECRET_NAME_TEMPLATE.format(org=org)
