"""KeyProvider on AWS KMS: one customer master key per connected org, one data key per chunk.

Contract (see ``orgvault.ports.KeyProvider``):

- ``generate_data_key`` calls KMS ``GenerateDataKey`` (AES-256) with the encryption context given;
  ``decrypt_data_key`` calls ``Decrypt`` with the same context and the expected key, so CloudTrail
  records, for every decrypt, which org/snapshot/object/chunk was opened. A wrapped key presented
  with another context (a chunk copied elsewhere) or another key fails with ``KeyUnavailable``.
- ``create_org_key(org)`` returns the key behind alias ``alias/orgvault/{org}``, creating the key and
  alias when missing (idempotent, race-safe). An org may instead be configured with an existing key
  (``org_keys={"acme": "arn:aws:kms:..."}``), including a BYOK key with imported material; it is
  checked (enabled, symmetric, encrypt/decrypt) and returned as is.
- Rotation (automatic yearly, or on demand) keeps old key material for decryption: no data rewrite.
- ``schedule_shred(org, confirm=...)`` schedules deletion of the org key (crypto-shredding every
  backup of the org) only when ``confirm`` is exactly ``shred {org}``.
- Errors: ``KeyUnavailable`` says what to fix (which principal lacks which permission on which key
  and context, wrong context, disabled or pending-deletion key); ``KeyServiceUnavailable`` for
  throttling/5xx after the SDK's adaptive retries. Key material never appears in messages or repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from orgvault.adapters.aws_common import (
    TRANSPORT_ERRORS,
    error_code,
    is_access_denied,
    is_transient,
    make_client,
)
from orgvault.constants import KMS_ALIAS_PREFIX
from orgvault.errors import ConfigError, KeyServiceUnavailable, KeyUnavailable
from orgvault.ports import DataKey


@dataclass(frozen=True)
class RotationStatus:
    key_ref: str
    automatic: bool
    period_days: int | None
    on_demand_rotations: int


class KmsKeyProvider:
    """KeyProvider on KMS. ``client`` is a boto3 KMS client (built with adaptive retries if None)."""

    def __init__(
        self,
        *,
        client: Any = None,
        alias_prefix: str = KMS_ALIAS_PREFIX,
        org_keys: Mapping[str, str] | None = None,
        default_key: str = "",
        enable_rotation: bool = True,
        rotation_period_days: int = 365,
        key_policy: str | None = None,
        tags: Mapping[str, str] | None = None,
        sts_client: Any = None,
    ) -> None:
        if not alias_prefix.startswith("alias/"):
            raise ConfigError(f"KMS alias prefix must start with 'alias/', not {alias_prefix!r}")
        if not 90 <= rotation_period_days <= 2560:
            raise ConfigError("KMS rotation period must be between 90 and 2560 days")
        self.alias_prefix = alias_prefix if alias_prefix.endswith("/") else alias_prefix + "/"
        self.org_keys = dict(org_keys or {})
        self.default_key = default_key
        self.enable_rotation = enable_rotation
        self.rotation_period_days = rotation_period_days
        self.key_policy = key_policy
        self.tags = dict(tags or {})
        self._client = client if client is not None else make_client("kms")
        self._sts = sts_client

    def __repr__(self) -> str:
        return (
            f"KmsKeyProvider(alias_prefix={self.alias_prefix!r}, configured_orgs={sorted(self.org_keys)!r})"
        )

    # --- org keys -----------------------------------------------------------------------------

    def alias(self, org: str) -> str:
        return f"{self.alias_prefix}{org}"

    def create_org_key(self, org: str) -> str:
        """The org's key ARN: the configured key, else the key behind ``alias/orgvault/{org}``,
        created (with automatic rotation) when missing. Idempotent per org name."""
        if org in self.org_keys:
            return self._check_usable(self.org_keys[org], org)
        existing = self._describe_alias(org)
        if existing is not None:
            return existing
        return self._create(org, origin="AWS_KMS")

    def create_external_key(self, org: str) -> str:
        """BYOK: create a key with no material (``Origin=EXTERNAL``) behind the org's alias and return
        its ARN. Import your material with ``aws kms get-parameters-for-import`` and
        ``aws kms import-key-material``; automatic rotation does not apply to imported material.
        Idempotent: returns the aliased key if there is one."""
        existing = self._describe_alias(org)
        if existing is not None:
            return existing
        return self._create(org, origin="EXTERNAL")

    def _describe_alias(self, org: str) -> str | None:
        try:
            return str(self._client.describe_key(KeyId=self.alias(org))["KeyMetadata"]["Arn"])
        except ClientError as exc:
            if error_code(exc) == "NotFoundException":
                return None
            raise self._translate(exc, "DescribeKey", self.alias(org), None) from exc
        except TRANSPORT_ERRORS as exc:
            raise self._translate(exc, "DescribeKey", self.alias(org), None) from exc

    def _create(self, org: str, *, origin: str) -> str:
        args: dict[str, Any] = {
            "Description": f"orgvault master key of connected org {org}",
            "KeyUsage": "ENCRYPT_DECRYPT",
            "KeySpec": "SYMMETRIC_DEFAULT",
            "Origin": origin,
            "Tags": [{"TagKey": k, "TagValue": v} for k, v in {"orgvault:org": org, **self.tags}.items()],
        }
        if self.key_policy:
            args["Policy"] = self.key_policy
        try:
            meta = self._client.create_key(**args)["KeyMetadata"]
            arn = str(meta["Arn"])
            try:
                self._client.create_alias(AliasName=self.alias(org), TargetKeyId=meta["KeyId"])
            except ClientError as exc:
                if error_code(exc) != "AlreadyExistsException":
                    raise
                # Another caller connected the same org concurrently: keep theirs, retire ours.
                self._client.schedule_key_deletion(KeyId=meta["KeyId"], PendingWindowInDays=7)
                winner = self._describe_alias(org)
                if winner is None:
                    raise KeyUnavailable(f"alias {self.alias(org)} exists but cannot be resolved") from exc
                return winner
            if self.enable_rotation and origin == "AWS_KMS":
                self._client.enable_key_rotation(
                    KeyId=meta["KeyId"], RotationPeriodInDays=self.rotation_period_days
                )
            return arn
        except ClientError as exc:
            raise self._translate(exc, "CreateKey", self.alias(org), None) from exc
        except TRANSPORT_ERRORS as exc:
            raise self._translate(exc, "CreateKey", self.alias(org), None) from exc

    def _check_usable(self, key_ref: str, org: str) -> str:
        try:
            meta = self._client.describe_key(KeyId=key_ref)["KeyMetadata"]
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "DescribeKey", key_ref, None) from exc
        if (
            meta.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT"
            or meta.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT"
        ):
            raise ConfigError(
                f"the key configured for org {org!r} ({key_ref}) must be a symmetric ENCRYPT_DECRYPT KMS key"
            )
        if meta.get("KeyState") not in {"Enabled"}:
            raise KeyUnavailable(
                f"the key configured for org {org!r} ({key_ref}) is {meta.get('KeyState')}: "
                "enable it, cancel its deletion or import its key material"
            )
        return str(meta["Arn"])

    def _resolve(self, key_ref: str) -> str:
        ref = key_ref or self.default_key
        if not ref:
            raise KeyUnavailable("no KMS key given: connect the org (create_org_key) or set a default key")
        return ref

    # --- data keys ----------------------------------------------------------------------------

    def generate_data_key(self, key_ref: str, context: Mapping[str, str]) -> DataKey:
        ref = self._resolve(key_ref)
        try:
            answer = self._client.generate_data_key(
                KeyId=ref, KeySpec="AES_256", EncryptionContext=dict(context)
            )
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "GenerateDataKey", ref, context) from exc
        return DataKey(
            plaintext=answer["Plaintext"], wrapped=answer["CiphertextBlob"], key_ref=answer["KeyId"]
        )

    def decrypt_data_key(self, key_ref: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        ref = self._resolve(key_ref)
        try:
            answer = self._client.decrypt(CiphertextBlob=wrapped, KeyId=ref, EncryptionContext=dict(context))
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "Decrypt", ref, context) from exc
        return bytes(answer["Plaintext"])

    # --- rotation and shredding ---------------------------------------------------------------

    def _org_key(self, org: str) -> str:
        return self.org_keys.get(org) or self.alias(org)

    def _key_id(self, org: str) -> str:
        """Rotation and deletion calls want the key id, not an alias (and only work in the key's
        own account)."""
        ref = self._org_key(org)
        try:
            return str(self._client.describe_key(KeyId=ref)["KeyMetadata"]["KeyId"])
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "DescribeKey", ref, None) from exc

    def enable_automatic_rotation(self, org: str, *, period_days: int | None = None) -> None:
        key = self._key_id(org)
        try:
            self._client.enable_key_rotation(
                KeyId=key, RotationPeriodInDays=period_days or self.rotation_period_days
            )
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "EnableKeyRotation", key, None) from exc

    def rotate_now(self, org: str) -> None:
        """On-demand rotation: new material for new data keys; old data keys still decrypt."""
        key = self._key_id(org)
        try:
            self._client.rotate_key_on_demand(KeyId=key)
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "RotateKeyOnDemand", key, None) from exc

    def rotation_status(self, org: str) -> RotationStatus:
        key = self._key_id(org)
        try:
            status = self._client.get_key_rotation_status(KeyId=key)
            rotations: list[dict[str, Any]] = []
            for page in self._client.get_paginator("list_key_rotations").paginate(KeyId=key):
                rotations.extend(page.get("Rotations", []))
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "GetKeyRotationStatus", key, None) from exc
        return RotationStatus(
            key_ref=key,
            automatic=bool(status.get("KeyRotationEnabled")),
            period_days=status.get("RotationPeriodInDays"),
            on_demand_rotations=sum(1 for r in rotations if r.get("RotationType") == "ON_DEMAND"),
        )

    @staticmethod
    def shred_confirmation(org: str) -> str:
        """The exact text ``schedule_shred`` requires as ``confirm``."""
        return f"shred {org}"

    def schedule_shred(self, org: str, *, confirm: str, pending_days: int = 30) -> datetime:
        """Schedule deletion of the org's key: after ``pending_days`` (7..30) every backup of the org
        becomes unreadable, forever. Until then ``cancel_shred`` undoes it. Requires ``confirm`` to be
        exactly ``shred {org}``. Returns the deletion date."""
        expected = self.shred_confirmation(org)
        if confirm != expected:
            raise ConfigError(
                f"refusing to shred org {org!r}: pass confirm={expected!r} to schedule its key deletion"
            )
        if not 7 <= pending_days <= 30:
            raise ConfigError("the pending window of a key deletion must be 7 to 30 days")
        key = self._key_id(org)
        try:
            answer = self._client.schedule_key_deletion(KeyId=key, PendingWindowInDays=pending_days)
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "ScheduleKeyDeletion", key, None) from exc
        return answer["DeletionDate"]

    def cancel_shred(self, org: str) -> None:
        key = self._key_id(org)
        try:
            self._client.cancel_key_deletion(KeyId=key)
            self._client.enable_key(KeyId=key)
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "CancelKeyDeletion", key, None) from exc

    # --- errors -------------------------------------------------------------------------------

    def _principal(self) -> str:
        """Who we are, for error messages (best effort, only on the error path)."""
        try:
            if self._sts is None:
                self._sts = make_client("sts", region_name=self._client.meta.region_name)
            return str(self._sts.get_caller_identity()["Arn"])
        except Exception:  # only decorates an error message; never mask the original
            return "this role"

    def _translate(
        self, exc: Exception, action: str, key: str, context: Mapping[str, str] | None
    ) -> Exception:
        ctx = f" with encryption context {dict(sorted(context.items()))}" if context is not None else ""
        if not isinstance(exc, ClientError):
            return KeyServiceUnavailable(
                f"KMS {action} on {key}: cannot reach KMS ({type(exc).__name__}); retry later"
            )
        code = error_code(exc)
        if is_access_denied(exc):
            return KeyUnavailable(
                f"{self._principal()} is not allowed kms:{action} on key {key}{ctx}: allow kms:{action} for this "
                "role in the key policy (and its IAM policy), with a kms:EncryptionContext condition matching the org"
            )
        if code == "InvalidCiphertextException":
            return KeyUnavailable(
                f"KMS cannot open this wrapped data key with key {key}{ctx}: the context differs from the one it "
                "was sealed with (was the chunk moved or renamed?), or the blob is damaged"
            )
        if code == "IncorrectKeyException":
            return KeyUnavailable(
                f"this data key was wrapped by another KMS key than {key}{ctx}: check the org's key_ref"
            )
        if code == "NotFoundException":
            return KeyUnavailable(
                f"KMS key {key} not found in region {self._client.meta.region_name}: connect the org (creates the key) "
                "or fix the org's key_ref"
            )
        if code == "DisabledException":
            return KeyUnavailable(
                f"KMS key {key} is disabled: enable it (kms:EnableKey) to back up or restore"
            )
        if code == "KMSInvalidStateException":
            return KeyUnavailable(
                f"KMS key {key} cannot be used in its current state (pending deletion, or material not imported): "
                "cancel the deletion (kms:CancelKeyDeletion) or import the key material"
            )
        if code in {"KeyUnavailableException"} or is_transient(exc):
            return KeyServiceUnavailable(f"KMS {action} on {key} failed ({code}); retry later")
        return KeyUnavailable(f"KMS {action} on {key}{ctx} failed: {code}")
