"""LocalSecretStore: the SecretStore port as files sealed under each org's key (local mode).

``{directory}/{org}.secret`` is an envelope (docs/format.md) of kind ``secret`` whose plaintext is the
canonical JSON of the credentials, sealed with a data key from the KeyProvider under the context
``{org, purpose: "salesforce-credentials"}``. Files are written atomically with mode 0600. Values never
appear in repr, logs or error messages.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from orgvault.domain.envelope import (
    Compression,
    EnvelopeHeader,
    check_context,
    new_nonce_prefix,
    open_envelope,
    seal,
)
from orgvault.domain.layout import check_org, secret_context
from orgvault.domain.models import SecretDict
from orgvault.errors import ConfigError, CredentialsNotFound, IntegrityError
from orgvault.ports import KeyProvider


class LocalSecretStore:
    def __init__(self, directory: str | os.PathLike[str], key_provider: KeyProvider) -> None:
        self.directory = Path(directory)
        self.keys = key_provider
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"cannot use {self.directory} for credentials: {exc.strerror}") from exc

    def __repr__(self) -> str:
        return f"LocalSecretStore({str(self.directory)!r})"

    def _path(self, org: str) -> Path:
        return self.directory / f"{check_org(org)}.secret"

    def put(self, org: str, secret: Mapping[str, str]) -> None:
        """Store (or replace) the org's credentials. Values must be strings."""
        if any(not isinstance(k, str) or not isinstance(v, str) for k, v in secret.items()):
            raise ConfigError("credential names and values must be strings")
        path = self._path(org)
        ctx = secret_context(org)
        dk = self.keys.generate_data_key(self.keys.create_org_key(org), ctx)
        header = EnvelopeHeader(
            kind="secret",
            key_ref=dk.key_ref,
            wrapped_key=dk.wrapped,
            nonce_prefix=new_nonce_prefix(),
            context=ctx,
            compression=Compression.NONE,
        )
        sealed = seal(dk.plaintext, header, json.dumps(dict(secret), sort_keys=True).encode("utf-8"))
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(sealed)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, org: str) -> dict[str, str]:
        """The org's credentials (a dict whose repr hides the values). ``CredentialsNotFound`` if none;
        ``IntegrityError``/``KeyUnavailable`` if the file was altered or belongs to another org."""
        path = self._path(org)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CredentialsNotFound(
                f"no stored Salesforce credentials for org {org}; run `orgvault org add`"
            ) from None
        ctx = secret_context(org)
        what = f"credentials of org {org}"

        def resolve(header: EnvelopeHeader) -> bytes:
            check_context(header, ctx, what=what)
            return self.keys.decrypt_data_key(header.key_ref, header.wrapped_key, ctx)

        header, plain = open_envelope(data, resolve, what=what)
        if header.kind != "secret":
            raise IntegrityError(f"{what}: the file is not a sealed secret")
        return SecretDict(json.loads(plain))

    def delete(self, org: str) -> None:
        self._path(org).unlink(missing_ok=True)
