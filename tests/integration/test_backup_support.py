"""Helpers shared by the backup/CLI integration tests (no tests here).

``make_app(home, ...)`` builds a local-mode App (real filesystem vault, SQLite catalog, key file)
whose Salesforce sources are test-friendly (no real sleeping, small pages so that objects span
several pages and chunks). ``connect(app, emu)`` records the emulator org as ``acme``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from orgvault.bootstrap import App, init_local, open_app
from orgvault.services.orgs import connect_org
from orgvault.settings import Settings

ORG = "acme"
SMALL_CHUNKS = {"chunk_records": 120, "chunk_bytes": 64 * 1024, "reconcile_every": 1}


def source_factory(**overrides: Any) -> Any:
    from orgvault.adapters.salesforce_backup import BackupSalesforceSource

    options: dict[str, Any] = {
        "sleep": lambda _s: None,
        "backoff_base": 0.001,
        "bulk_poll_seconds": 0.0,
        "rest_batch_size": 200,
        "bulk_page_records": 150,
    }
    options.update(overrides)

    def make(conn: Any, creds: dict[str, str]) -> Any:
        return BackupSalesforceSource(conn, creds, **options)

    return make


def make_app(home: Path, *, source_options: dict[str, Any] | None = None, **backup: Any) -> App:
    settings = Settings.from_env({}, home=str(home), **{**SMALL_CHUNKS, **backup})
    init_local(settings)
    return open_app(settings, source_factory=source_factory(**(source_options or {})))


def connect(app: App, emu: Any, name: str = ORG, auth: str = "client-credentials") -> Any:
    facts = emu.facts
    creds = {
        "client-credentials": {"client_id": facts.client_id, "client_secret": facts.client_secret},
        "password": {"username": facts.username, "password": facts.password},
    }[auth]
    return connect_org(
        catalog=app.catalog,
        keys=app.keys,
        secrets=app.secrets,
        name=name,
        instance_url=facts.instance_url,
        login_url=facts.login_url,
        auth_method=auth,
        credentials=creds,
        test_login=app.make_source,
    )


def assert_identical(app: App, emu: Any, name: str = ORG, snapshot_id: str | None = None) -> Any:
    from orgvault.demo import compare_snapshot_with_org

    cmp = compare_snapshot_with_org(app, name, emu.org, snapshot_id)
    assert cmp.ok, "snapshot differs from the org:\n" + "\n".join(cmp.differences[:30])
    assert cmp.records > 0
    return cmp


def vault_files(home: Path) -> dict[str, bytes]:
    root = home / "vault"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def change_org(
    org: Any, seed: int, *, update_share: float = 0.05, delete_share: float = 0.02
) -> dict[str, Any]:
    """A working day: a new custom field, updates, deletes, new files; then some of the deleted
    records are undeleted and some purged (so they vanish without a trace: only id reconciliation
    can notice). Advances the org clock past the overlap window first."""
    from salesforce_emulator import activity

    org.clock.advance(900)
    field = activity.add_custom_field(org, "Account", f"Score{seed}__c", "double", seed=seed, fill_share=0.3)
    first = activity.mutate(org, seed=seed, update_share=update_share, delete_share=delete_share, new_files=3)
    org.clock.advance(60)
    second = activity.mutate(org, seed=seed + 1, update_share=0.0, delete_share=0.0, undelete=2, purge=2)
    org.clock.advance(60)
    summary = {"field": field, "first": first, "second": second}
    assert any(second["purged"].values()) and any(second["undeleted"].values()), summary
    return summary


REPO = Path(__file__).resolve().parents[2]


def cli_backup(env: dict[str, str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`orgvault backup ORG --json` in a process of its own (as a user or scheduler runs it), to the end."""
    return subprocess.run(
        [sys.executable, "-m", "orgvault.cli", "backup", ORG, "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
