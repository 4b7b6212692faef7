"""SecretStore on AWS Secrets Manager: one secret per org, ``orgvault/{org}/salesforce``, holding a
JSON object of strings (JWT private key, client id/secret, refresh token, username/password, ...).

Contract (see ``orgvault.ports.SecretStore``):

- ``get`` reads through Powertools' ``SecretsProvider`` with a ``max_age`` cache (one
  ``GetSecretValue`` per org per cache period in a warm Lambda); ``put``/``delete`` drop the cache.
- Values never appear in logs, exception messages or ``repr``: the dict returned by ``get`` is a
  ``dict`` whose ``repr`` masks the values, and this module logs nothing.
- ``get`` of an unknown org (or of a secret scheduled for deletion) raises ``CredentialsNotFound``;
  throttling/5xx after retries raise ``SecretsUnavailable``; denied access raises ``ConfigError``
  naming the action and secret (never its value).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError
from botocore.exceptions import ClientError

from orgvault.adapters.aws_common import (
    TRANSPORT_ERRORS,
    error_code,
    is_access_denied,
    is_transient,
    make_client,
)
from orgvault.constants import SECRET_CACHE_SECONDS, SECRET_NAME_TEMPLATE
from orgvault.errors import ConfigError, CredentialsNotFound, SecretsUnavailable

_SECRET_MARKERS = ("SecretString", "SecretBinary")
#: botocore loggers that print request parameters or response bodies at DEBUG level.
_SDK_LOGGERS = (
    "botocore.endpoint",
    "botocore.parsers",
    "botocore.client",
    "botocore.hooks",
    "botocore.awsrequest",
)


class _RedactSecretPayloads(logging.Filter):
    """Blanks SDK debug records that carry a Secrets Manager payload (botocore logs request params
    and response bodies at DEBUG): turning on debug logging must not leak credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a broken record is not ours to fix
            return True
        if any(marker in text for marker in _SECRET_MARKERS):
            record.msg, record.args = "<Secrets Manager payload redacted by orgvault>", None
        return True


def _install_log_redaction() -> None:
    for name in _SDK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactSecretPayloads) for f in logger.filters):
            logger.addFilter(_RedactSecretPayloads())


def _marked_deleted(exc: ClientError) -> bool:
    """Secrets Manager refuses operations on a secret scheduled for deletion with this error."""
    text = str(exc).lower()
    return error_code(exc) == "InvalidRequestException" and "marked" in text and "delet" in text


class RedactedDict(dict[str, str]):
    """A plain ``dict`` of credentials whose ``repr``/``str`` show the keys only."""

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: '***'" for k in self) + "}"

    __str__ = __repr__


class SecretsManagerSecretStore:
    """SecretStore on Secrets Manager. ``client`` is a boto3 ``secretsmanager`` client (built with
    adaptive retries when None); ``kms_key_id`` encrypts new secrets with a customer key (else the
    account's ``aws/secretsmanager`` key); ``recovery_days`` is the window before a deleted secret
    is gone (0 = immediately)."""

    def __init__(
        self,
        *,
        client: Any = None,
        name_template: str = SECRET_NAME_TEMPLATE,
        max_age: int = SECRET_CACHE_SECONDS,
        kms_key_id: str | None = None,
        recovery_days: int = 7,
    ) -> None:
        if "{org}" not in name_template:
            raise ConfigError(f"secret name template must contain '{{org}}', not {name_template!r}")
        if recovery_days and not 7 <= recovery_days <= 30:
            raise ConfigError("secret recovery window must be 0 or 7 to 30 days")
        self.name_template = name_template
        self.max_age = max_age
        self.kms_key_id = kms_key_id
        self.recovery_days = recovery_days
        self._client = client if client is not None else make_client("secretsmanager")
        self._provider = SecretsProvider(boto3_client=self._client)
        _install_log_redaction()

    def __repr__(self) -> str:
        return f"SecretsManagerSecretStore(name_template={self.name_template!r}, max_age={self.max_age})"

    def name(self, org: str) -> str:
        return self.name_template.format(org=org)

    def _translate(self, exc: BaseException, action: str, org: str) -> Exception:
        name = self.name(org)
        if isinstance(exc, ClientError):
            code = error_code(exc)
            if code == "ResourceNotFoundException" or _marked_deleted(exc):
                return CredentialsNotFound(
                    f"no Salesforce credentials stored for org {org!r} (secret {name})"
                )
            if is_access_denied(exc):
                return ConfigError(
                    f"access denied: the role lacks secretsmanager:{action} on secret {name} "
                    "(or kms:Decrypt on its KMS key); fix the IAM or key policy"
                )
            if is_transient(exc):
                return SecretsUnavailable(f"Secrets Manager {action} on {name} failed ({code}); retry later")
            return SecretsUnavailable(f"Secrets Manager {action} on {name} failed: {code}")
        return SecretsUnavailable(
            f"Secrets Manager {action} on {name}: cannot reach it ({type(exc).__name__})"
        )

    def put(self, org: str, secret: Mapping[str, str]) -> None:
        """Create or replace the org's credentials (a new secret version)."""
        name = self.name(org)
        body = json.dumps(dict(secret), sort_keys=True)
        try:
            try:
                described = self._client.describe_secret(SecretId=name)
            except ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise
                args: dict[str, Any] = {
                    "Name": name,
                    "SecretString": body,
                    "Description": f"orgvault: Salesforce credentials of connected org {org}",
                    "Tags": [{"Key": "orgvault:org", "Value": org}],
                }
                if self.kms_key_id:
                    args["KmsKeyId"] = self.kms_key_id
                self._client.create_secret(**args)
                return
            if described.get("DeletedDate"):
                self._client.restore_secret(SecretId=name)  # reconnecting an org deleted recently
            self._client.put_secret_value(SecretId=name, SecretString=body)
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "PutSecretValue", org) from None
        finally:
            self._provider.clear_cache()

    def get(self, org: str) -> dict[str, str]:
        """The org's credentials (cached for ``max_age`` seconds)."""
        try:
            value = self._provider.get(self.name(org), max_age=self.max_age, transform="json")
        except TransformParameterError:
            # Never chain: the cause could quote the value.
            raise ConfigError(
                f"secret {self.name(org)} is not a JSON object; store it with `orgvault connect`"
            ) from None
        except GetParameterError as exc:
            cause = exc.__cause__ or exc.__context__
            if cause is not None and isinstance(cause, (ClientError, *TRANSPORT_ERRORS)):
                raise self._translate(cause, "GetSecretValue", org) from None
            raise SecretsUnavailable(f"cannot read secret {self.name(org)}") from None
        if not isinstance(value, dict):
            raise ConfigError(
                f"secret {self.name(org)} is not a JSON object; store it with `orgvault connect`"
            )
        return RedactedDict({str(k): str(v) for k, v in value.items()})

    def delete(self, org: str) -> None:
        """Delete the org's credentials (after ``recovery_days``, or at once when 0). Missing: no error."""
        args: dict[str, Any] = {"SecretId": self.name(org)}
        if self.recovery_days:
            args["RecoveryWindowInDays"] = self.recovery_days
        else:
            args["ForceDeleteWithoutRecovery"] = True
        try:
            self._client.delete_secret(**args)
        except ClientError as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException" or _marked_deleted(exc):
                return
            raise self._translate(exc, "DeleteSecret", org) from None
        except TRANSPORT_ERRORS as exc:
            raise self._translate(exc, "DeleteSecret", org) from None
        finally:
            self._provider.clear_cache()
