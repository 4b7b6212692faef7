"""Where things live in the vault, what their encryption contexts are, and how records refer to files.

Keys (see docs/format.md, "Layout")::

    orgs/{org}/snapshots/{run_id}/objects/{Object}/{seq:06d}-{kind}-{rand}.ovc   sealed chunk
    orgs/{org}/files/{content_id}.ovf                                         sealed file body
    orgs/{org}/manifests/{snapshot_id}-{rand}.ovm                             sealed manifest
    orgs/{org}/keys/content-id.key                                            wrapped content-id key

``rand`` is a random suffix: a retried write (which seals with a fresh data key, so different bytes)
never collides with an orphan a crashed attempt left behind. Orphans are sealed objects no manifest
references; they are harmless and a garbage collector may delete them.

Contexts are the encryption context given to the KeyProvider (what KMS logs to CloudTrail) and are
also in the envelope header (authenticated). All values are strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orgvault.domain.envelope import FORMAT_VERSION

_ORG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_OBJECT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,254}$")
_RUN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_CONTENT_ID = re.compile(r"^[0-9a-f]{64}$")
_RAND = re.compile(r"^[0-9a-z]{1,32}$")

CHUNK_EXT = ".ovc"
FILE_EXT = ".ovf"
MANIFEST_EXT = ".ovm"
MANIFEST_OBJECT = "$manifest"  # the "object" named in a manifest's context


def _check(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value) or ".." in value:
        raise ValueError(f"invalid {what}: {value!r}")
    return value


def check_org(org: str) -> str:
    """Validate a connection name for use in keys (letters, digits, ``.``, ``_``, ``-``)."""
    return _check(org, _ORG, "org name")


def check_object(name: str) -> str:
    return _check(name, _OBJECT, "object name")


def check_run_id(run_id: str) -> str:
    return _check(run_id, _RUN, "run/snapshot id")


def org_prefix(org: str) -> str:
    return f"orgs/{check_org(org)}/"


def run_prefix(org: str, run_id: str) -> str:
    return f"{org_prefix(org)}snapshots/{check_run_id(run_id)}/"


def chunk_key(org: str, run_id: str, object_name: str, seq: int, kind: str, rand: str) -> str:
    if not 0 <= seq < 10**9:
        raise ValueError(f"invalid chunk sequence: {seq}")
    _check(kind, _KIND, "chunk kind")
    _check(rand, _RAND, "random suffix")
    return f"{run_prefix(org, run_id)}objects/{check_object(object_name)}/{seq:06d}-{kind}-{rand}{CHUNK_EXT}"


def file_key(org: str, content_id: str) -> str:
    return f"{org_prefix(org)}files/{_check(content_id, _CONTENT_ID, 'content id')}{FILE_EXT}"


def manifest_prefix(org: str, snapshot_id: str | None = None) -> str:
    """``orgs/{org}/manifests/`` or, with a snapshot id, the prefix of that snapshot's manifest(s)."""
    base = f"{org_prefix(org)}manifests/"
    return base if snapshot_id is None else f"{base}{check_run_id(snapshot_id)}-"


def manifest_key(org: str, snapshot_id: str, rand: str) -> str:
    return f"{manifest_prefix(org, snapshot_id)}{_check(rand, _RAND, 'random suffix')}{MANIFEST_EXT}"


def content_key_key(org: str) -> str:
    return f"{org_prefix(org)}keys/content-id.key"


# --- encryption contexts ----------------------------------------------------------------------


def chunk_context(org: str, run_id: str, object_name: str, seq: int) -> dict[str, str]:
    """Context of a chunk: it belongs to this org, written by this run (snapshot), for this object,
    at this sequence number, in this format version."""
    return {"org": org, "snapshot": run_id, "object": object_name, "seq": str(seq), "v": str(FORMAT_VERSION)}


def file_context(org: str, content_id: str) -> dict[str, str]:
    """Context of a file body: files are shared by snapshots, so they are bound to their content id."""
    return {"org": org, "object": "$file", "file": content_id, "v": str(FORMAT_VERSION)}


def manifest_context(org: str, snapshot_id: str) -> dict[str, str]:
    return {"org": org, "snapshot": snapshot_id, "object": MANIFEST_OBJECT, "v": str(FORMAT_VERSION)}


def content_key_context(org: str) -> dict[str, str]:
    """Context of the org's content-id key (a data key used as an HMAC key, never to encrypt)."""
    return {"org": org, "purpose": "content-id"}


def secret_context(org: str) -> dict[str, str]:
    return {"org": org, "purpose": "salesforce-credentials"}


# --- file references inside records -------------------------------------------------------------

FILE_REF_MARK = "$file"


@dataclass(frozen=True)
class FileRef:
    """How a backed-up record refers to a file body stored in the vault: the field's value is
    ``{"$file": "<content_id>", "size": <bytes>}``. The record chunk is the index of files."""

    content_id: str
    size: int

    def to_value(self) -> dict[str, Any]:
        return {FILE_REF_MARK: self.content_id, "size": self.size}

    @staticmethod
    def from_value(value: Any) -> FileRef | None:
        """The reference in a field value, or ``None`` if the value is not a file reference."""
        if (
            isinstance(value, Mapping)
            and set(value) == {FILE_REF_MARK, "size"}
            and isinstance(value[FILE_REF_MARK], str)
            and _CONTENT_ID.match(value[FILE_REF_MARK])
            and isinstance(value["size"], int)
        ):
            return FileRef(value[FILE_REF_MARK], value["size"])
        return None


def file_refs(record: Mapping[str, Any]) -> list[FileRef]:
    """Every file reference among a record's field values."""
    return [ref for v in record.values() if (ref := FileRef.from_value(v)) is not None]
