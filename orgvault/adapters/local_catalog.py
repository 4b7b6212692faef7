"""SqliteCatalog: the Catalog port on one SQLite file (local mode).

WAL journal, one connection per thread, ``BEGIN IMMEDIATE`` around every multi-statement write (so
``record_chunk`` and ``commit_snapshot`` are atomic, and compare-and-set holds across processes).
Each domain value is stored as a row with its key columns plus a ``data`` column holding the JSON of
the whole dataclass (datetimes as ISO 8601, enums as their values). Schema changes are numbered
migrations recorded in ``schema_migrations``. Tables are listed in docs/format.md ("Catalog: SQLite").
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sqlite3
import threading
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar, cast

from orgvault.domain.models import (
    Checkpoint,
    ChunkRecord,
    FileRecord,
    Lock,
    OrgConnection,
    Run,
    SnapshotRecord,
)
from orgvault.errors import (
    ConcurrentCommit,
    ConfigError,
    IntegrityError,
    RunInProgress,
    RunNotFound,
    SnapshotNotFound,
    UnknownOrg,
    VaultUnavailable,
)

T = TypeVar("T")

MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE orgs (name TEXT PRIMARY KEY, data TEXT NOT NULL);
    CREATE TABLE locks (org TEXT PRIMARY KEY, owner TEXT NOT NULL, acquired_at TEXT NOT NULL,
                        expires_at TEXT NOT NULL);
    CREATE TABLE runs (org TEXT NOT NULL, run_id TEXT NOT NULL, started_at TEXT NOT NULL, data TEXT NOT NULL,
                       PRIMARY KEY (org, run_id));
    CREATE TABLE checkpoints (org TEXT NOT NULL, run_id TEXT NOT NULL, object_name TEXT NOT NULL,
                              data TEXT NOT NULL, PRIMARY KEY (org, run_id, object_name));
    CREATE TABLE chunks (org TEXT NOT NULL, run_id TEXT NOT NULL, object_name TEXT NOT NULL, seq INTEGER NOT NULL,
                         data TEXT NOT NULL, PRIMARY KEY (org, run_id, object_name, seq));
    CREATE TABLE files (org TEXT NOT NULL, source TEXT NOT NULL, content_id TEXT NOT NULL, data TEXT NOT NULL,
                        PRIMARY KEY (org, source));
    CREATE INDEX files_by_content ON files (org, content_id);
    CREATE TABLE snapshots (org TEXT NOT NULL, snapshot_id TEXT NOT NULL, created_at TEXT NOT NULL,
                            data TEXT NOT NULL, PRIMARY KEY (org, snapshot_id));
    CREATE TABLE heads (org TEXT PRIMARY KEY, snapshot_id TEXT NOT NULL);
    """,
]


# --- dataclass <-> JSON -------------------------------------------------------------------------


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    """What ``json`` cannot encode by itself, as ``_to_jsonable`` would give it (str and int enums
    are encoded natively, as their value)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode(obj: Any) -> str:
    """JSON text of a domain dataclass (fields by name). The same text as
    ``json.dumps(_to_jsonable(...))``, without first copying every nested cursor (checkpoints are
    written several times per object and carry the field lists and the edge)."""
    return json.dumps(
        {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, sort_keys=True, default=_json_default
    )


def _from_jsonable(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if arg is not type(None):
                return _from_jsonable(arg, value)
    if hint is datetime:
        return datetime.fromisoformat(value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    return value


def _plain(value: Any) -> Any:
    return value


def _field_decoder(hint: Any) -> Callable[[Any], Any]:
    """A one-argument function equal to ``lambda v: _from_jsonable(hint, v)``, resolved once."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if not args:
            return _plain
        hint = args[0]
    if hint is datetime:
        return lambda v: None if v is None else datetime.fromisoformat(v)
    if isinstance(hint, type) and issubclass(hint, Enum):
        enum_cls: type[Enum] = hint

        def enum_value(v: Any) -> Any:
            return None if v is None else enum_cls(v)

        return enum_value
    return _plain


@functools.cache
def _decoders(cls: Any) -> dict[str, Callable[[Any], Any]]:
    """Per dataclass: field name → value decoder (``typing.get_type_hints`` once per class, not per row)."""
    hints = typing.get_type_hints(cls)
    return {f.name: _field_decoder(hints[f.name]) for f in dataclasses.fields(cls)}


def decode(cls: type[T], text: str) -> T:
    decoders = _decoders(cast(Any, cls))
    raw = json.loads(text)
    return cls(**{k: decoders[k](v) for k, v in raw.items() if k in decoders})


def _iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat()


class SqliteCatalog:
    """The catalog in one SQLite file. Safe for threads (a connection each) and processes (WAL +
    immediate transactions). ``close()`` closes this thread's connection."""

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} is not a usable orgvault catalog: {exc}") from exc

    def __repr__(self) -> str:
        return f"SqliteCatalog({str(self.path)!r})"

    # --- plumbing -------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise VaultUnavailable(f"the catalog {self.path} is busy or locked: {exc}") from exc
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise VaultUnavailable(f"the catalog {self.path} could not be read: {exc}") from exc

    def _migrate(self) -> None:
        with self._tx() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            if done and max(done) > len(MIGRATIONS):
                raise ConfigError(
                    f"the catalog {self.path} has schema version {max(done)}, newer than this orgvault; upgrade"
                )
            for version, script in enumerate(MIGRATIONS, start=1):
                if version in done:
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, datetime.now(UTC).isoformat()),
                )

    def schema_version(self) -> int:
        return int(self._query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")[0][0])

    # --- orgs -----------------------------------------------------------------------------------

    def put_org(self, org: OrgConnection) -> None:
        with self._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO orgs (name, data) VALUES (?, ?)", (org.name, encode(org)))

    def get_org(self, name: str) -> OrgConnection:
        rows = self._query("SELECT data FROM orgs WHERE name = ?", (name,))
        if not rows:
            raise UnknownOrg(
                f"no connected org named {name!r}; see `orgvault org list` or add it with `orgvault org add`"
            )
        return decode(OrgConnection, rows[0][0])

    def list_orgs(self) -> list[OrgConnection]:
        return [decode(OrgConnection, r[0]) for r in self._query("SELECT data FROM orgs ORDER BY name")]

    def delete_org(self, name: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM orgs WHERE name = ?", (name,))

    # --- lock -----------------------------------------------------------------------------------

    def acquire_lock(
        self, org: str, owner: str, *, now: datetime, ttl_seconds: int, force: bool = False
    ) -> Lock:
        from datetime import timedelta

        lock = Lock(org=org, owner=owner, acquired_at=now, expires_at=now + timedelta(seconds=ttl_seconds))
        with self._tx() as conn:
            row = conn.execute(
                "SELECT owner, acquired_at, expires_at FROM locks WHERE org = ?", (org,)
            ).fetchone()
            if row is not None and not force and row[0] != owner:
                expires = datetime.fromisoformat(row[2])
                if expires > (now if now.tzinfo else now.replace(tzinfo=UTC)):
                    raise RunInProgress(
                        f"org {org} is locked by {row[0]} until {row[2]}; wait for that run to finish, or "
                        "force the lock if it is dead"
                    )
            conn.execute(
                "INSERT OR REPLACE INTO locks (org, owner, acquired_at, expires_at) VALUES (?, ?, ?, ?)",
                (org, owner, _iso(lock.acquired_at), _iso(lock.expires_at)),
            )
        return lock

    def release_lock(self, org: str, owner: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM locks WHERE org = ? AND owner = ?", (org, owner))

    def get_lock(self, org: str) -> Lock | None:
        rows = self._query("SELECT owner, acquired_at, expires_at FROM locks WHERE org = ?", (org,))
        if not rows:
            return None
        owner, acquired, expires = rows[0]
        return Lock(org, owner, datetime.fromisoformat(acquired), datetime.fromisoformat(expires))

    # --- runs -----------------------------------------------------------------------------------

    def put_run(self, run: Run) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO runs (org, run_id, started_at, data) VALUES (?, ?, ?, ?)",
                (run.org, run.run_id, _iso(run.started_at), encode(run)),
            )

    def get_run(self, org: str, run_id: str) -> Run:
        rows = self._query("SELECT data FROM runs WHERE org = ? AND run_id = ?", (org, run_id))
        if not rows:
            raise RunNotFound(f"no run {run_id} for org {org}")
        return decode(Run, rows[0][0])

    def list_runs(self, org: str) -> list[Run]:
        rows = self._query("SELECT data FROM runs WHERE org = ? ORDER BY started_at, run_id", (org,))
        return [decode(Run, r[0]) for r in rows]

    # --- checkpoints ----------------------------------------------------------------------------

    def put_checkpoint(self, checkpoint: Checkpoint) -> None:
        with self._tx() as conn:
            self._put_checkpoint(conn, checkpoint)

    @staticmethod
    def _put_checkpoint(conn: sqlite3.Connection, cp: Checkpoint) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO checkpoints (org, run_id, object_name, data) VALUES (?, ?, ?, ?)",
            (cp.org, cp.run_id, cp.object_name, encode(cp)),
        )

    def list_checkpoints(self, org: str, run_id: str) -> list[Checkpoint]:
        rows = self._query(
            "SELECT data FROM checkpoints WHERE org = ? AND run_id = ? ORDER BY object_name", (org, run_id)
        )
        return [decode(Checkpoint, r[0]) for r in rows]

    # --- chunks ---------------------------------------------------------------------------------

    def record_chunk(self, chunk: ChunkRecord, checkpoint: Checkpoint) -> None:
        """Add the chunk and store the checkpoint in one transaction. The same chunk again: no-op
        (the checkpoint is not moved back). Another chunk at the same (org, run, object, seq):
        ``IntegrityError``, and nothing changes."""
        if (checkpoint.org, checkpoint.run_id, checkpoint.object_name) != (
            chunk.org,
            chunk.run_id,
            chunk.object_name,
        ):
            raise ValueError("the checkpoint must belong to the chunk's org, run and object")
        data = encode(chunk)
        with self._tx() as conn:
            row = conn.execute(
                "SELECT data FROM chunks WHERE org = ? AND run_id = ? AND object_name = ? AND seq = ?",
                (chunk.org, chunk.run_id, chunk.object_name, chunk.seq),
            ).fetchone()
            if row is not None:
                if decode(ChunkRecord, row[0]) == chunk:
                    return
                raise IntegrityError(
                    f"chunk {chunk.seq} of {chunk.object_name} in run {chunk.run_id} is already recorded as "
                    f"{decode(ChunkRecord, row[0]).key}; refusing {chunk.key}"
                )
            conn.execute(
                "INSERT INTO chunks (org, run_id, object_name, seq, data) VALUES (?, ?, ?, ?, ?)",
                (chunk.org, chunk.run_id, chunk.object_name, chunk.seq, data),
            )
            self._put_checkpoint(conn, checkpoint)

    def list_chunks(self, org: str, run_id: str, object_name: str | None = None) -> list[ChunkRecord]:
        if object_name is None:
            rows = self._query(
                "SELECT data FROM chunks WHERE org = ? AND run_id = ? ORDER BY object_name, seq",
                (org, run_id),
            )
        else:
            rows = self._query(
                "SELECT data FROM chunks WHERE org = ? AND run_id = ? AND object_name = ? ORDER BY seq",
                (org, run_id, object_name),
            )
        return [decode(ChunkRecord, r[0]) for r in rows]

    # --- files ----------------------------------------------------------------------------------

    def put_file(self, file: FileRecord) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO files (org, source, content_id, data) VALUES (?, ?, ?, ?)",
                (file.org, file.source, file.content_id, encode(file)),
            )

    def get_file(self, org: str, source: str) -> FileRecord | None:
        rows = self._query("SELECT data FROM files WHERE org = ? AND source = ?", (org, source))
        return decode(FileRecord, rows[0][0]) if rows else None

    def list_files(self, org: str) -> list[FileRecord]:
        rows = self._query("SELECT data FROM files WHERE org = ? ORDER BY source", (org,))
        return [decode(FileRecord, r[0]) for r in rows]

    # --- snapshots ------------------------------------------------------------------------------

    def commit_snapshot(self, snapshot: SnapshotRecord, *, expected_head: str | None) -> None:
        with self._tx() as conn:
            row = conn.execute("SELECT snapshot_id FROM heads WHERE org = ?", (snapshot.org,)).fetchone()
            head = row[0] if row else None
            existing = conn.execute(
                "SELECT data FROM snapshots WHERE org = ? AND snapshot_id = ?",
                (snapshot.org, snapshot.snapshot_id),
            ).fetchone()
            if (
                head == snapshot.snapshot_id
                and existing is not None
                and decode(SnapshotRecord, existing[0]) == snapshot
            ):
                return  # the same commit again
            if head != expected_head:
                raise ConcurrentCommit(
                    f"the head snapshot of {snapshot.org} is {head!r}, not {expected_head!r}: another run "
                    "committed first; re-read the head and retry"
                )
            if existing is not None:
                raise IntegrityError(f"snapshot {snapshot.snapshot_id} of {snapshot.org} already exists")
            conn.execute(
                "INSERT INTO snapshots (org, snapshot_id, created_at, data) VALUES (?, ?, ?, ?)",
                (snapshot.org, snapshot.snapshot_id, _iso(snapshot.created_at), encode(snapshot)),
            )
            conn.execute(
                "INSERT OR REPLACE INTO heads (org, snapshot_id) VALUES (?, ?)",
                (snapshot.org, snapshot.snapshot_id),
            )

    def get_snapshot(self, org: str, snapshot_id: str) -> SnapshotRecord:
        rows = self._query("SELECT data FROM snapshots WHERE org = ? AND snapshot_id = ?", (org, snapshot_id))
        if not rows:
            raise SnapshotNotFound(
                f"no committed snapshot {snapshot_id} for org {org}; see `orgvault snapshots {org}`"
            )
        return decode(SnapshotRecord, rows[0][0])

    def head_snapshot(self, org: str) -> SnapshotRecord | None:
        rows = self._query(
            "SELECT s.data FROM heads h JOIN snapshots s ON s.org = h.org AND s.snapshot_id = h.snapshot_id "
            "WHERE h.org = ?",
            (org,),
        )
        return decode(SnapshotRecord, rows[0][0]) if rows else None

    def list_snapshots(self, org: str) -> list[SnapshotRecord]:
        rows = self._query(
            "SELECT data FROM snapshots WHERE org = ? ORDER BY created_at, snapshot_id", (org,)
        )
        return [decode(SnapshotRecord, r[0]) for r in rows]
