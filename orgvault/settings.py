"""Typed settings, parsed once from the environment (and CLI flags) at start-up.

Only this module and the entry points read ``os.environ``; everything else receives a
:class:`Settings` (or the part of it it needs). Secrets held here (the master key) are hidden
from ``repr``.

Environment variables (all optional):

- ``ORGVAULT_MODE``            ``local`` (default) or ``aws``.
- ``ORGVAULT_HOME``            local vault directory (default ``~/.orgvault``).
- ``ORGVAULT_MASTER_KEY``      base64 of 32 random bytes; replaces the key file in local mode.
- ``ORGVAULT_BUDGET_SHARE``    stop cleanly once this share of the daily API allowance is used (0.8).
- ``ORGVAULT_OVERLAP_SECONDS`` incremental overlap window before the watermark (300).
- ``ORGVAULT_RECONCILE_EVERY`` read all Ids for hard-delete reconciliation every N runs (7; 1 = always).
- ``ORGVAULT_CHUNK_RECORDS`` / ``ORGVAULT_CHUNK_BYTES``  chunk bounds (20000 / 8 MiB).
- ``ORGVAULT_PAGE_RECORDS``    records per Bulk API results page (5000): what the backup holds in memory
  at once (one page read, the next one downloading); a chunk gathers pages up to its bounds.
- ``ORGVAULT_STEP_SECONDS``    time budget of one extract step (local default 3600; Lambda ~600).
- ``ORGVAULT_INCLUDE`` / ``ORGVAULT_EXCLUDE``  comma-separated object names.
- ``ORGVAULT_WORKERS``         local mode: objects a full backup extracts at once, each in its own worker process (2;
  1 = one after another in the backup process itself).
- AWS mode: ``ORGVAULT_BUCKET``, ``ORGVAULT_TABLE``; ``ORGVAULT_VAULT_KMS_KEY`` (SSE-KMS key of the
  vault bucket), ``ORGVAULT_LOCK_MODE`` / ``ORGVAULT_LOCK_DAYS`` (S3 Object Lock on every put).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from orgvault.errors import ConfigError

# Variables holding secrets: never copied into ``AwsSettings.values`` (which may be logged or shown).
# Names merely containing "KEY" are not secrets (ORGVAULT_VAULT_KMS_KEY is a key ARN or alias).
SECRET_VARIABLES = frozenset({"ORGVAULT_MASTER_KEY"})


class Mode(StrEnum):
    LOCAL = "local"
    AWS = "aws"


@dataclass(frozen=True)
class BackupSettings:
    """Knobs of the backup engine (pure values; no I/O)."""

    budget_share: float = 0.8
    overlap_seconds: int = 300
    reconcile_every: int = 7
    chunk_records: int = 20_000
    chunk_bytes: int = 8 * 1024 * 1024
    page_records: int = 5_000
    step_seconds: float = 3600.0
    lock_ttl_seconds: int = 6 * 3600
    only: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class AwsSettings:
    """Resource names for AWS mode (filled from orgvault.constants env names when present).
    ``values``: every ``ORGVAULT_*`` variable except :data:`SECRET_VARIABLES` (e.g.
    ``ORGVAULT_VAULT_KMS_KEY``, ``ORGVAULT_LOCK_MODE``, ``ORGVAULT_LOCK_DAYS``)."""

    bucket: str = ""
    table: str = ""
    region: str = ""
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    mode: Mode = Mode.LOCAL
    home: Path = Path("~/.orgvault").expanduser()
    master_key: bytes | None = field(default=None, repr=False)
    backup: BackupSettings = BackupSettings()
    aws: AwsSettings = AwsSettings()
    # Local mode: how many objects ``run_backup`` extracts at once, each in a worker process (1: all
    # in the calling process, one after another). More than the machine's cores only adds overhead.
    workers: int = 2

    # --- local layout -------------------------------------------------------------------------
    @property
    def vault_dir(self) -> Path:
        return self.home / "vault"

    @property
    def catalog_path(self) -> Path:
        return self.home / "catalog.sqlite"

    @property
    def key_file(self) -> Path:
        return self.home / "keys.json"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Parse settings from ``env`` (default ``os.environ``); ``overrides`` (CLI flags) win.
        Raises ``ConfigError`` naming the bad variable."""
        env = os.environ if env is None else env
        mode_text = env.get("ORGVAULT_MODE", "local").strip().lower() or "local"
        try:
            mode = Mode(mode_text)
        except ValueError:
            raise ConfigError(f"ORGVAULT_MODE must be 'local' or 'aws', not {mode_text!r}") from None
        home = Path(env.get("ORGVAULT_HOME") or "~/.orgvault").expanduser()
        master_key = parse_master_key(env.get("ORGVAULT_MASTER_KEY"))
        backup = BackupSettings(
            budget_share=_float(env, "ORGVAULT_BUDGET_SHARE", 0.8, lo=0.01, hi=1.0),
            overlap_seconds=_int(env, "ORGVAULT_OVERLAP_SECONDS", 300, lo=0),
            reconcile_every=_int(env, "ORGVAULT_RECONCILE_EVERY", 7, lo=1),
            chunk_records=_int(env, "ORGVAULT_CHUNK_RECORDS", 20_000, lo=1),
            chunk_bytes=_int(env, "ORGVAULT_CHUNK_BYTES", 8 * 1024 * 1024, lo=1024),
            page_records=_int(env, "ORGVAULT_PAGE_RECORDS", 5_000, lo=1),
            step_seconds=_float(env, "ORGVAULT_STEP_SECONDS", 3600.0, lo=1.0, hi=86400.0),
            only=_names(env.get("ORGVAULT_ONLY", "")),
            include=_names(env.get("ORGVAULT_INCLUDE", "")),
            exclude=_names(env.get("ORGVAULT_EXCLUDE", "")),
        )
        aws = AwsSettings(
            bucket=env.get("ORGVAULT_BUCKET", ""),
            table=env.get("ORGVAULT_TABLE", ""),
            region=env.get("AWS_REGION", env.get("AWS_DEFAULT_REGION", "")),
            values={k: v for k, v in env.items() if k.startswith("ORGVAULT_") and k not in SECRET_VARIABLES},
        )
        workers = _int(env, "ORGVAULT_WORKERS", 2, lo=1)
        settings = cls(mode=mode, home=home, master_key=master_key, backup=backup, aws=aws, workers=workers)
        backup_overrides = {k: v for k, v in overrides.items() if hasattr(BackupSettings, k)}
        other = {k: v for k, v in overrides.items() if not hasattr(BackupSettings, k) and v is not None}
        if backup_overrides:
            settings = replace(settings, backup=replace(settings.backup, **backup_overrides))
        if "home" in other:
            other["home"] = Path(other["home"]).expanduser()
        return replace(settings, **other) if other else settings


def parse_master_key(text: str | None) -> bytes | None:
    """``ORGVAULT_MASTER_KEY``: base64 of exactly 32 bytes (``openssl rand -base64 32``)."""
    if not text:
        return None
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            "ORGVAULT_MASTER_KEY is not valid base64; make one with `openssl rand -base64 32`"
        ) from None
    if len(raw) != 32:
        raise ConfigError(
            f"ORGVAULT_MASTER_KEY must decode to 32 bytes (got {len(raw)}); use `openssl rand -base64 32`"
        )
    return raw


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _int(env: Mapping[str, str], name: str, default: int, *, lo: int) -> int:
    text = env.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {text!r}") from None
    if value < lo:
        raise ConfigError(f"{name} must be >= {lo}, not {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, lo: float, hi: float) -> float:
    text = env.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {text!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, not {value}")
    return value
