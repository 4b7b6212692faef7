"""Deployment configuration, parsed once from the CDK context (``cdk.json`` or ``-c key=value``).

Context keys (all under the app's context):

- ``orgs``: list of ``{"name": "acme-prod", "schedule": "cron(0 2 * * ? *)", "timezone": "Europe/Paris"}``.
  One KMS key, one Secrets Manager secret and one EventBridge Scheduler schedule per org.
- ``retentionDays``: how long backups are kept (noncurrent versions expire after it; Object Lock days
  default to it).
- ``lockMode``: ``GOVERNANCE`` or ``COMPLIANCE`` (S3 Object Lock default retention mode).
- ``lockDays``: Object Lock default retention in days (default: ``retentionDays``).
- ``infrequentAccessAfterDays`` / ``glacierAfterDays``: lifecycle transitions of vault objects.
- ``mapConcurrency``: how many objects of one org are extracted at once (Salesforce allows few concurrent
  long-running requests; 25 is the org-wide cap, keep this well below).
- ``extractTimeBudgetSeconds``: how long one extract step may work before handing back a cursor; the
  extract Lambda's timeout is this plus a safety margin.
- ``apiBudgetShare``: share of the daily API allowance a run may use (alarm fires at this share).
- ``snapshotMaxAgeHours``: alarm when an org has no committed snapshot for this long.
- ``notificationEmail``: optional e-mail subscribed to the notifications topic.
- ``skipBundling``: when true, ``app.py`` sets ``aws:cdk:bundling-stacks`` to ``[]`` (no layer build).

Invalid values raise ``ValueError`` naming the key, at synth time, before anything is deployed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

_ORG_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$")
_SCHEDULE = re.compile(r"^(cron|rate|at)\(.+\)$")


class LockMode(StrEnum):
    GOVERNANCE = "GOVERNANCE"
    COMPLIANCE = "COMPLIANCE"


@dataclass(frozen=True)
class OrgConfig:
    """A connected org as the deployment knows it: its name (ours, not the Salesforce org id), when
    to back it up, and in which time zone the cron is read."""

    name: str
    schedule: str = "cron(0 2 * * ? *)"
    timezone: str = "UTC"


@dataclass(frozen=True)
class DeploymentConfig:
    orgs: tuple[OrgConfig, ...]
    retention_days: int = 365
    lock_mode: LockMode = LockMode.GOVERNANCE
    lock_days: int = 365
    infrequent_access_after_days: int = 30
    glacier_after_days: int = 90
    map_concurrency: int = 4
    extract_time_budget_seconds: int = 600
    api_budget_share: float = 0.8
    snapshot_max_age_hours: int = 30
    notification_email: str = ""

    @property
    def extract_timeout_seconds(self) -> int:
        """Lambda timeout of the extract step: the budget plus time to seal and record the last chunk."""
        return min(900, self.extract_time_budget_seconds + 120)

    @classmethod
    def from_context(cls, ctx: Mapping[str, Any]) -> DeploymentConfig:
        """Parse and validate. ``ctx`` maps context keys to values (strings from ``-c`` are accepted)."""
        orgs_raw = ctx.get("orgs") or []
        if isinstance(orgs_raw, str):
            import json

            orgs_raw = json.loads(orgs_raw)
        orgs: list[OrgConfig] = []
        for raw in orgs_raw:
            name = str(raw.get("name", ""))
            if not _ORG_NAME.match(name):
                raise ValueError(f"context 'orgs': org name {name!r} must be 2-40 chars of a-z, 0-9 and '-'")
            schedule = str(raw.get("schedule", OrgConfig.schedule))
            if not _SCHEDULE.match(schedule):
                raise ValueError(
                    f"context 'orgs': schedule of {name!r} must be cron(...), rate(...) or at(...)"
                )
            orgs.append(OrgConfig(name=name, schedule=schedule, timezone=str(raw.get("timezone", "UTC"))))
        if len({o.name for o in orgs}) != len(orgs):
            raise ValueError("context 'orgs': org names must be unique")
        retention = _int(ctx, "retentionDays", 365, lo=1)
        glacier = _int(ctx, "glacierAfterDays", 90, lo=1)
        infrequent = _int(ctx, "infrequentAccessAfterDays", 30, lo=30)
        if glacier <= infrequent:
            raise ValueError("context 'glacierAfterDays' must be greater than 'infrequentAccessAfterDays'")
        mode_text = str(ctx.get("lockMode", "GOVERNANCE")).upper()
        try:
            mode = LockMode(mode_text)
        except ValueError:
            raise ValueError(
                f"context 'lockMode' must be GOVERNANCE or COMPLIANCE, not {mode_text!r}"
            ) from None
        share = float(ctx.get("apiBudgetShare", 0.8))
        if not 0.01 <= share <= 1.0:
            raise ValueError("context 'apiBudgetShare' must be between 0.01 and 1.0")
        return cls(
            orgs=tuple(orgs),
            retention_days=retention,
            lock_mode=mode,
            lock_days=_int(ctx, "lockDays", retention, lo=1),
            infrequent_access_after_days=infrequent,
            glacier_after_days=glacier,
            map_concurrency=_int(ctx, "mapConcurrency", 4, lo=1, hi=40),
            extract_time_budget_seconds=_int(ctx, "extractTimeBudgetSeconds", 600, lo=30, hi=780),
            api_budget_share=share,
            snapshot_max_age_hours=_int(ctx, "snapshotMaxAgeHours", 30, lo=1, hi=24 * 7),
            notification_email=str(ctx.get("notificationEmail", "") or ""),
        )


def _int(ctx: Mapping[str, Any], key: str, default: int, *, lo: int, hi: int | None = None) -> int:
    raw = ctx.get(key, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"context {key!r} must be an integer, not {raw!r}") from None
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"context {key!r} must be between {lo} and {hi or 'any'}, not {value}")
    return value
