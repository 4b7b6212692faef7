"""What only the local adapters promise (beyond the port contracts): files, permissions, migrations."""

from __future__ import annotations

import base64
import sqlite3
import stat
from pathlib import Path

import pytest

from orgvault.adapters.local_catalog import MIGRATIONS, SqliteCatalog
from orgvault.adapters.local_keys import LocalKeyProvider, master_key_from_base64
from orgvault.adapters.local_secrets import LocalSecretStore
from orgvault.adapters.local_store import FilesystemObjectStore
from orgvault.domain.models import AuthMethod, OrgConnection
from orgvault.errors import ConfigError, IntegrityError, KeyUnavailable

CTX = {"org": "acme", "object": "Account"}


def test_store_rejects_keys_that_escape_the_root(tmp_path):
    store = FilesystemObjectStore(tmp_path / "v")
    for key in ("../x", "a/../../x", "/etc/passwd", "a//b", ".tmp/x", "a/.hidden", ""):
        with pytest.raises(ValueError):
            store.put(key, b"x")
    assert list(store.list("../")) == []


def test_store_in_flight_writes_are_invisible(tmp_path):
    store = FilesystemObjectStore(tmp_path / "v")
    (tmp_path / "v" / ".tmp" / "junk.part").write_bytes(b"partial")
    store.put("a/b", b"x")
    assert list(store.list("")) == ["a/b"]


def test_store_on_a_file_is_a_config_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError):
        FilesystemObjectStore(tmp_path / "file")


def test_catalog_persists_and_migrates_once(tmp_path):
    path = tmp_path / "c.sqlite"
    cat = SqliteCatalog(path)
    assert cat.schema_version() == len(MIGRATIONS)
    cat.put_org(OrgConnection("acme", "https://x", AuthMethod.PASSWORD))
    cat.close()
    again = SqliteCatalog(path)
    assert [o.name for o in again.list_orgs()] == ["acme"]
    assert again.schema_version() == len(MIGRATIONS)
    assert again._query("SELECT COUNT(*) FROM schema_migrations")[0][0] == len(MIGRATIONS)
    assert again._query("PRAGMA journal_mode")[0][0] == "wal"


def test_catalog_refuses_a_newer_schema_and_garbage(tmp_path):
    path = tmp_path / "c.sqlite"
    SqliteCatalog(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_migrations VALUES (99, 'later')")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="newer"):
        SqliteCatalog(path)
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError):
        SqliteCatalog(tmp_path / "junk.sqlite")


def test_key_file_is_private_and_survives_reopen(tmp_path):
    path = tmp_path / "keys.json"
    kp = LocalKeyProvider.create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    dk = kp.generate_data_key("local:acme", CTX)
    assert (
        LocalKeyProvider.create_key_file(path).decrypt_data_key(dk.key_ref, dk.wrapped, CTX) == dk.plaintext
    )


def test_rotation_is_persisted_and_seen_by_other_instances(tmp_path):
    path = tmp_path / "keys.json"
    a = LocalKeyProvider.create_key_file(path)
    b = LocalKeyProvider(path)
    old = a.generate_data_key("local:acme", CTX)
    assert a.rotate() == 2
    new = a.generate_data_key("local:acme", CTX)
    assert new.wrapped[4:8] == b"\0\0\0\2"
    assert b.decrypt_data_key(new.key_ref, new.wrapped, CTX) == new.plaintext  # b reloads the file
    assert LocalKeyProvider(path).decrypt_data_key(old.key_ref, old.wrapped, CTX) == old.plaintext
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_another_key_file_cannot_unwrap(tmp_path):
    a = LocalKeyProvider.create_key_file(tmp_path / "a.json")
    b = LocalKeyProvider.create_key_file(tmp_path / "b.json")
    dk = a.generate_data_key("local:acme", CTX)
    with pytest.raises(KeyUnavailable):
        b.decrypt_data_key(dk.key_ref, dk.wrapped, CTX)


def test_master_key_from_env_text():
    key = bytes(range(32))
    assert master_key_from_base64(base64.b64encode(key).decode() + "\n") == key
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ConfigError) as info:
            master_key_from_base64(bad)
        assert "openssl rand -base64 32" in str(info.value)
    kp = LocalKeyProvider(master_key=key)
    dk = kp.generate_data_key("", CTX)  # "" = the org's key, from the context
    assert dk.key_ref == "local:acme"
    with pytest.raises(ConfigError):
        kp.rotate()


def test_missing_or_broken_key_file(tmp_path):
    with pytest.raises(ConfigError, match="orgvault init"):
        LocalKeyProvider(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError):
        LocalKeyProvider(tmp_path / "bad.json")


def test_secret_file_is_sealed_private_and_bound_to_its_org(tmp_path):
    keys = LocalKeyProvider.create_key_file(tmp_path / "k.json")
    store = LocalSecretStore(tmp_path / "s", keys)
    store.put("acme", {"password": "hunter2-secret"})
    store.put("beta", {"password": "other"})
    path = tmp_path / "s" / "acme.secret"
    assert b"hunter2" not in path.read_bytes() and path.read_bytes()[:4] == b"OVLT"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (tmp_path / "s" / "acme.secret").write_bytes((tmp_path / "s" / "beta.secret").read_bytes())
    with pytest.raises(IntegrityError) as info:
        store.get("acme")
    assert "other" not in str(info.value)


def test_files_left_behind_are_not_secrets(tmp_path: Path):
    keys = LocalKeyProvider.create_key_file(tmp_path / "k.json")
    store = LocalSecretStore(tmp_path / "s", keys)
    store.put("acme", {"password": "x"})
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["acme.secret"]


def _record_chunks(path: str, obj: str, n: int) -> None:
    """In a child process: ``n`` chunks of ``obj``, each committed with its checkpoint."""
    from tests.contract.test_catalog import checkpoint, chunk

    catalog = SqliteCatalog(path)
    for seq in range(n):
        catalog.record_chunk(chunk(seq, obj=obj), checkpoint(seq + 1, obj=obj))
    catalog.close()


def test_catalog_is_shared_by_processes_writing_at_once(tmp_path):
    """Backup workers are processes with their own connection to one catalog file: their commits
    interleave with each other and with the parent's lock refreshes, none fails as busy, none is lost."""
    import multiprocessing
    from datetime import UTC, datetime

    path = str(tmp_path / "catalog.sqlite")
    parent = SqliteCatalog(path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_record_chunks, args=(path, obj, 150)) for obj in ("Account", "Contact")]
    for p in procs:
        p.start()
    refreshes = 0
    while any(p.is_alive() for p in procs):
        parent.acquire_lock("acme", "parent:1", now=datetime.now(UTC), ttl_seconds=60)
        refreshes += 1
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0]
    assert refreshes > 0
    for obj in ("Account", "Contact"):
        assert [c.seq for c in parent.list_chunks("acme", "r1", obj)] == list(range(150))
    assert {c.object_name: c.next_seq for c in parent.list_checkpoints("acme", "r1")} == {
        "Account": 150,
        "Contact": 150,
    }
    parent.close()
