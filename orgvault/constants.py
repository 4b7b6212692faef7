"""Names shared by infra (CDK), settings, adapters and tests: environment variables and default
AWS resource names. Keep it small: names only, no logic, no I/O."""

from __future__ import annotations

# --- environment variables (read only by orgvault.settings and entry points) ------------------
ENV_MODE = "ORGVAULT_MODE"
ENV_BUCKET = "ORGVAULT_BUCKET"  # S3 vault bucket
ENV_TABLE = "ORGVAULT_TABLE"  # DynamoDB catalog table
ENV_VAULT_KMS_KEY = "ORGVAULT_VAULT_KMS_KEY"  # SSE-KMS key of the bucket (second layer), ARN or alias
ENV_LOCK_MODE = "ORGVAULT_LOCK_MODE"  # S3 Object Lock mode on puts: GOVERNANCE | COMPLIANCE | "" (off)
ENV_LOCK_DAYS = "ORGVAULT_LOCK_DAYS"  # S3 Object Lock retention days on puts
ENV_SECRET_CACHE_SECONDS = "ORGVAULT_SECRET_CACHE_SECONDS"

# --- default resource names -------------------------------------------------------------------
DEFAULT_TABLE_NAME = "orgvault-catalog"
KMS_ALIAS_PREFIX = "alias/orgvault/"  # + org name: one customer master key per connected org
SECRET_NAME_TEMPLATE = "orgvault/{org}/salesforce"  # one Secrets Manager secret per org
SECRET_CACHE_SECONDS = 300

# --- DynamoDB single-table layout (see docs/format.md, "DynamoDB single-table") ---------------
TABLE_PARTITION_KEY = "PK"
TABLE_SORT_KEY = "SK"
TABLE_TTL_ATTRIBUTE = "ttl"  # epoch seconds; set on transient items (run locks) only

# --- S3 -----------------------------------------------------------------------------------------
MULTIPART_PART_SIZE = 8 * 1024 * 1024  # S3 minimum is 5 MiB (except the last part)

# --- CloudWatch custom metrics (emitted by functions/, alarmed on by infra_cdk monitoring) ------
METRICS_NAMESPACE = "OrgVault"
METRIC_SNAPSHOT_COMMITTED = "SnapshotCommitted"  # 1 per committed snapshot, dimension org
METRIC_RUN_FAILED = "RunFailed"  # 1 per run marked failed, dimension org
METRIC_API_USAGE_PERCENT = "ApiUsagePercent"  # share of the daily API allowance used, dimension org
METRIC_DIMENSION_ORG = "org"
KMS_CONTEXT_ORG = "org"  # encryption-context key naming the org; org key policies condition on it
