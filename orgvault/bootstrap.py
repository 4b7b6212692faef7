"""Wire adapters from settings, once.

Local mode: a vault directory (``FilesystemObjectStore``), an SQLite catalog, a local key file (or
``ORGVAULT_MASTER_KEY``) and credentials encrypted under the org key. AWS mode (the seam):
:func:`open_app` builds the same :class:`App` from the ``aws_*`` adapters (S3, DynamoDB, KMS,
Secrets Manager); services never know which.

Contracts: :func:`init_local` is idempotent (an existing vault is reused, never overwritten; the
key file is created with mode 0600 and never replaced). :func:`open_app` never creates anything:
a missing or unreadable vault is a ``ConfigError`` that says to run ``orgvault init``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orgvault.constants import ENV_LOCK_DAYS, ENV_LOCK_MODE, ENV_VAULT_KMS_KEY
from orgvault.domain.models import OrgConnection
from orgvault.errors import ConfigError
from orgvault.ports import Catalog, KeyProvider, ObjectStore, SalesforceSource, SecretStore
from orgvault.settings import Mode, Settings

SourceFactory = Callable[[OrgConnection, dict[str, str]], SalesforceSource]


@dataclass
class App:
    """The wired adapters of one process. ``make_source(conn, credentials)`` builds a Salesforce
    source; ``source_for(conn)`` does so with the stored credentials."""

    settings: Settings
    store: ObjectStore
    catalog: Catalog
    keys: KeyProvider
    secrets: SecretStore
    vault: Any
    make_source: SourceFactory
    closers: list[Callable[[], None]] = field(default_factory=list)
    # True when ``make_source`` is built from the settings alone (no factory injected), so that a
    # worker process can build the same source itself.
    default_source: bool = False

    def source_for(self, conn: OrgConnection) -> SalesforceSource:
        return self.make_source(conn, self.secrets.get(conn.name))

    def backup_service(self, **kwargs: Any) -> Any:
        """The backup service. In local mode with ``settings.workers`` > 1 and the default source
        factory, ``run_backup`` extracts objects in that many worker processes, each building its
        own App from the same settings (:class:`BackupWorkerFactory`). An injected source factory
        (tests: fault sessions, fake sleeps) cannot be rebuilt in another process: sequential."""
        from orgvault.services.backup import BackupService

        if "extract_pool" not in kwargs and self.parallel_backup:
            from orgvault.adapters.local_workers import ProcessExtractPool

            kwargs["extract_pool"] = ProcessExtractPool(
                self.settings.workers, BackupWorkerFactory(self.settings)
            )
        return BackupService(
            catalog=self.catalog,
            vault=self.vault,
            source_factory=self.source_for,
            settings=self.settings.backup,
            **kwargs,
        )

    @property
    def parallel_backup(self) -> bool:
        return self.settings.mode is Mode.LOCAL and self.settings.workers > 1 and self.default_source

    def close(self) -> None:
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):  # closing is best effort
                close()
        self.closers.clear()


@dataclass(frozen=True)
class BackupWorkerFactory:
    """Picklable recipe for a backup worker process: ``factory()`` opens the App of ``settings``
    (its own catalog connection, key provider and secret store; sources from the default factory)
    and returns ``(backup service, close)``. The worker's service extracts in-process (workers=1)."""

    settings: Settings

    def __call__(self) -> tuple[Any, Callable[[], None]]:
        app = open_app(replace(self.settings, workers=1))
        return app.backup_service(), app.close


def default_source_factory(settings: Settings, **options: Any) -> SourceFactory:
    def make(conn: OrgConnection, credentials: dict[str, str]) -> SalesforceSource:
        from orgvault.adapters.salesforce_backup import BackupSalesforceSource

        # Memory stays flat whatever the org's size: one Bulk results page being read and the next
        # one downloading meanwhile (its wait overlaps the sealing of this one), plus one chunk.
        options.setdefault("bulk_page_records", settings.backup.page_records)
        options.setdefault("prefetch_pages", True)
        return BackupSalesforceSource(conn, credentials, budget_share=settings.backup.budget_share, **options)

    return make


# --- local mode --------------------------------------------------------------------------------


def init_local(settings: Settings) -> dict[str, str]:
    """Create (or reuse) a local vault at ``settings.home``. Returns where things are."""
    if settings.mode is not Mode.LOCAL:
        raise ConfigError("`orgvault init` sets up local mode; AWS mode is deployed with `cdk deploy`")
    home = settings.home
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        settings.vault_dir.mkdir(exist_ok=True, mode=0o700)
        settings.secrets_dir.mkdir(exist_ok=True, mode=0o700)
        key_desc = "ORGVAULT_MASTER_KEY (from the environment)"
        if settings.master_key is None:
            from orgvault.adapters.local_keys import LocalKeyProvider

            key_desc = str(settings.key_file)
            LocalKeyProvider.create_key_file(settings.key_file)  # kept as is when it exists
    except OSError as exc:
        raise ConfigError(
            f"cannot create the vault at {home}: {exc.strerror}; choose another --vault"
        ) from None
    app = _open_local(settings)  # creates the catalog schema
    app.close()
    return {
        "home": str(home),
        "vault_dir": str(settings.vault_dir),
        "catalog": str(settings.catalog_path),
        "key": key_desc,
    }


def _open_local(settings: Settings, source_factory: SourceFactory | None = None) -> App:
    if not settings.vault_dir.is_dir():
        raise ConfigError(
            f"no vault at {settings.home}: run `orgvault init` (or pass --home / set ORGVAULT_HOME)"
        )
    if not os.access(settings.vault_dir, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(
            f"the vault at {settings.home} is not readable/writable by this user; check its permissions"
        )

    from orgvault.adapters.local_catalog import SqliteCatalog
    from orgvault.adapters.local_keys import LocalKeyProvider
    from orgvault.adapters.local_secrets import LocalSecretStore
    from orgvault.adapters.local_store import FilesystemObjectStore
    from orgvault.services.vault import Vault

    if settings.master_key is not None:
        keys = LocalKeyProvider(master_key=settings.master_key)
    else:
        keys = LocalKeyProvider(settings.key_file)
    store = FilesystemObjectStore(settings.vault_dir)
    catalog = SqliteCatalog(settings.catalog_path)
    secrets = LocalSecretStore(settings.secrets_dir, keys)
    app = App(
        settings=settings,
        store=store,
        catalog=catalog,
        keys=keys,
        secrets=secrets,
        vault=Vault(store, keys),
        make_source=source_factory or default_source_factory(settings),
        default_source=source_factory is None,
    )
    if hasattr(catalog, "close"):
        app.closers.append(catalog.close)
    return app


# --- AWS mode (seam) ---------------------------------------------------------------------------


def _open_aws(settings: Settings, source_factory: SourceFactory | None = None) -> App:
    """AWS mode: S3 vault, DynamoDB catalog, KMS keys, Secrets Manager credentials. Resource names
    come from the environment (see ``orgvault.constants``)."""
    from orgvault.adapters.aws_dynamodb import DynamoCatalog
    from orgvault.adapters.aws_kms import KmsKeyProvider
    from orgvault.adapters.aws_s3 import S3ObjectStore
    from orgvault.adapters.aws_secrets import SecretsManagerSecretStore
    from orgvault.services.vault import Vault

    if not settings.aws.bucket or not settings.aws.table:
        raise ConfigError("AWS mode needs ORGVAULT_BUCKET and ORGVAULT_TABLE")
    values = settings.aws.values
    # SSE-KMS (second layer) and Object Lock on every put, as deployed; bad values raise ConfigError.
    store: Any = S3ObjectStore.configured(
        settings.aws.bucket,
        kms_key_id=values.get(ENV_VAULT_KMS_KEY, ""),
        lock_mode=values.get(ENV_LOCK_MODE, ""),
        lock_days=values.get(ENV_LOCK_DAYS, ""),
    )
    keys: Any = KmsKeyProvider()
    catalog: Any = DynamoCatalog(settings.aws.table)
    secrets: Any = SecretsManagerSecretStore()
    return App(
        settings=settings,
        store=store,
        catalog=catalog,
        keys=keys,
        secrets=secrets,
        vault=Vault(store, keys),
        make_source=source_factory or default_source_factory(settings),
    )


def open_app(settings: Settings, *, source_factory: SourceFactory | None = None) -> App:
    """Build the :class:`App` for ``settings.mode``. Local mode needs an initialised vault."""
    if settings.mode is Mode.AWS:
        return _open_aws(settings, source_factory)
    return _open_local(settings, source_factory)


def local_paths(home: Path) -> dict[str, Path]:
    s = Settings(home=home)
    return {"vault": s.vault_dir, "catalog": s.catalog_path, "key": s.key_file, "secrets": s.secrets_dir}
