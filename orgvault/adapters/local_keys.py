"""LocalKeyProvider: the KeyProvider port on a local key file or a given master key (local mode).

Master keys are 32 random bytes with a version number. The key file (JSON, mode 0600)::

    {"format": "orgvault-local-keys", "v": 1, "current": 2, "keys": {"1": "<b64>", "2": "<b64>"}}

or a single master key given by the caller (e.g. decoded from ``ORGVAULT_MASTER_KEY``; this adapter
never reads the environment itself), which is version 1.

Per org and version, the wrap key is ``HKDF-SHA256(master_v, salt=none, info="orgvault/org-key/v1/" +
org)``. A data key is 32 random bytes, wrapped as (docs/format.md, "Local key wrapping")::

    "OVK" | 0x01 | master version u32 BE | nonce (12) | AES-256-GCM(wrap key, nonce, data key, AAD)

with ``AAD = canonical JSON {"context": context, "key_ref": key_ref}``: a wrapped key presented with
another context or for another org fails with ``KeyUnavailable``. :meth:`rotate` adds a new master
version used for new data keys; older versions keep unwrapping old ones, so no data is rewritten.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
import threading
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from orgvault.domain.envelope import canonical_json
from orgvault.domain.layout import check_org
from orgvault.errors import ConfigError, KeyUnavailable
from orgvault.ports import DataKey

KEY_FILE_FORMAT = "orgvault-local-keys"
WRAP_MAGIC = b"OVK\x01"
_WRAP_HEAD = struct.Struct(">4sI")
KEY_REF_PREFIX = "local:"


def master_key_from_base64(text: str) -> bytes:
    """Decode a user-supplied master key (``openssl rand -base64 32``); ``ConfigError`` if not 32 bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            "the master key is not valid base64 (make one with: openssl rand -base64 32)"
        ) from None
    if len(key) != 32:
        raise ConfigError(
            f"the master key must be 32 bytes, got {len(key)} (make one with: openssl rand -base64 32)"
        )
    return key


class LocalKeyProvider:
    """Per-org keys derived from versioned local master keys. Thread-safe."""

    def __init__(
        self, key_file: str | os.PathLike[str] | None = None, *, master_key: bytes | None = None
    ) -> None:
        if (key_file is None) == (master_key is None):
            raise ConfigError("give exactly one of a key file or a master key")
        self.key_file = Path(key_file) if key_file is not None else None
        self._lock = threading.Lock()
        if master_key is not None:
            if len(master_key) != 32:
                raise ConfigError("the master key must be 32 bytes")
            self._masters = {1: bytes(master_key)}
            self._current = 1
        else:
            self._load()

    def __repr__(self) -> str:
        where = str(self.key_file) if self.key_file else "<master key>"
        return f"LocalKeyProvider({where}, versions={sorted(self._masters)})"

    @classmethod
    def create_key_file(cls, path: str | os.PathLike[str]) -> LocalKeyProvider:
        """Create a key file with one fresh master key (mode 0600). If it already exists it is kept
        and used (idempotent)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        doc = {"format": KEY_FILE_FORMAT, "v": 1, "current": 1, "keys": {"1": _b64(os.urandom(32))}}
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls(p)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        return cls(p)

    def _load(self) -> None:
        assert self.key_file is not None
        try:
            doc = json.loads(self.key_file.read_text())
            if doc.get("format") != KEY_FILE_FORMAT or doc.get("v") != 1:
                raise ValueError("format")
            masters = {int(v): base64.b64decode(k, validate=True) for v, k in doc["keys"].items()}
            current = int(doc["current"])
        except FileNotFoundError:
            raise ConfigError(f"key file {self.key_file} does not exist; run `orgvault init`") from None
        except (OSError, ValueError, KeyError, TypeError, binascii.Error):
            raise ConfigError(f"key file {self.key_file} is unreadable or not an orgvault key file") from None
        if current not in masters or any(len(k) != 32 for k in masters.values()):
            raise ConfigError(f"key file {self.key_file} is inconsistent")
        self._masters, self._current = masters, current

    def rotate(self) -> int:
        """Add a new master key version and make it current; returns the version. Old versions stay
        (they unwrap existing data keys). Key file mode only."""
        if self.key_file is None:
            raise ConfigError("rotation needs a key file; a master key given directly cannot rotate")
        with self._lock:
            self._load()
            version = max(self._masters) + 1
            masters = {**self._masters, version: os.urandom(32)}
            doc = {
                "format": KEY_FILE_FORMAT,
                "v": 1,
                "current": version,
                "keys": {str(v): _b64(k) for v, k in sorted(masters.items())},
            }
            tmp = self.key_file.with_name(self.key_file.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.key_file)
            self._masters, self._current = masters, version
            return version

    def rotate_now(self, org: str) -> None:
        """Port-level rotation (same name as the KMS adapter's): rotates the key file's master key,
        which covers every org derived from it."""
        check_org(org)
        self.rotate()

    @property
    def current_version(self) -> int:
        return self._current

    # --- KeyProvider ----------------------------------------------------------------------------

    def create_org_key(self, org: str) -> str:
        """Per-org keys are derived, so nothing is stored; returns ``local:{org}``. Idempotent."""
        return KEY_REF_PREFIX + check_org(org)

    def _org(self, key_ref: str, context: Mapping[str, str]) -> tuple[str, str]:
        if not key_ref:
            org = context.get("org", "")
            if not org:
                raise KeyUnavailable("no key_ref and no org in the encryption context: cannot pick a key")
            key_ref = KEY_REF_PREFIX + org
        if not key_ref.startswith(KEY_REF_PREFIX):
            raise KeyUnavailable(f"key {key_ref!r} is not a local key; configure the matching key provider")
        org = key_ref[len(KEY_REF_PREFIX) :]
        try:
            check_org(org)
        except ValueError:
            raise KeyUnavailable(f"key {key_ref!r} is not a valid local key reference") from None
        return key_ref, org

    def _wrap_key(self, version: int, org: str) -> bytes:
        master = self._masters.get(version)
        if master is None and self.key_file is not None:
            with self._lock:
                self._load()  # another process may have rotated
            master = self._masters.get(version)
        if master is None:
            raise KeyUnavailable(
                f"master key version {version} is not in {self.key_file or 'the given master key'}; "
                "restore the key file that wrote this data"
            )
        return HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"orgvault/org-key/v1/" + org.encode()
        ).derive(master)

    @staticmethod
    def _aad(key_ref: str, context: Mapping[str, str]) -> bytes:
        return canonical_json({"context": {str(k): str(v) for k, v in context.items()}, "key_ref": key_ref})

    def generate_data_key(self, key_ref: str, context: Mapping[str, str]) -> DataKey:
        key_ref, org = self._org(key_ref, context)
        version = self._current
        plaintext = os.urandom(32)
        nonce = os.urandom(12)
        sealed = AESGCM(self._wrap_key(version, org)).encrypt(nonce, plaintext, self._aad(key_ref, context))
        return DataKey(
            plaintext=plaintext,
            wrapped=_WRAP_HEAD.pack(WRAP_MAGIC, version) + nonce + sealed,
            key_ref=key_ref,
        )

    def decrypt_data_key(self, key_ref: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        key_ref, org = self._org(key_ref, context)
        if len(wrapped) != _WRAP_HEAD.size + 12 + 48 or wrapped[:4] != WRAP_MAGIC:
            raise KeyUnavailable(
                "the wrapped data key is not a local orgvault key (wrong provider or corrupted)"
            )
        _, version = _WRAP_HEAD.unpack_from(wrapped)
        nonce = wrapped[_WRAP_HEAD.size : _WRAP_HEAD.size + 12]
        try:
            return AESGCM(self._wrap_key(version, org)).decrypt(
                nonce, wrapped[_WRAP_HEAD.size + 12 :], self._aad(key_ref, context)
            )
        except InvalidTag:
            raise KeyUnavailable(
                f"the data key does not unwrap with key {key_ref} and this encryption context: it was sealed "
                "for another org, object or chunk, or with another key file"
            ) from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
