"""One exception tree for orgvault.

Every error raised by orgvault derives from :class:`OrgVaultError` and is either
:class:`RetryableError` (try again later: throttling, 5xx, an exhausted API allowance) or
:class:`PermanentError` (retrying cannot help: bad input, integrity failure, unknown format).
Step Functions ``Retry``/``Catch`` clauses match on these class names, never on message text.
Messages say what to do; they never contain secrets.
"""

from __future__ import annotations


class OrgVaultError(Exception):
    """Root of every orgvault error."""


class RetryableError(OrgVaultError):
    """The operation may succeed if retried later."""


class PermanentError(OrgVaultError):
    """The operation cannot succeed as asked; retrying will not help."""


# --- Salesforce -------------------------------------------------------------------------------


class SalesforceUnavailable(RetryableError):
    """Salesforce answered 5xx, timed out or dropped the connection."""


class ApiBudgetExhausted(RetryableError):
    """The configured share of the daily API allowance is used, or Salesforce said
    REQUEST_LIMIT_EXCEEDED. Not a failure: the run checkpoints and resumes on the next run."""


class SalesforceAuthError(PermanentError):
    """Login failed: wrong or revoked credentials, or a connected app misconfiguration."""


class SalesforceRequestError(PermanentError):
    """Salesforce refused a request (bad query, unknown field or object, ...)."""

    def __init__(self, message: str, *, error_code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.status = status


class BulkNotSupported(SalesforceRequestError):
    """Bulk API 2.0 refused the object or query; the caller falls back to REST."""


class QueryLocatorExpired(RetryableError):
    """A query cursor expired (INVALID_QUERY_LOCATOR); restart the object from its checkpoint."""


# --- Vault, catalog, keys ---------------------------------------------------------------------


class ConfigError(PermanentError):
    """Settings or command-line input are missing or invalid."""


class UnknownOrg(PermanentError):
    """No connection with that name exists in the catalog."""


class RunInProgress(PermanentError):
    """Another backup or restore of the same org holds the run lock."""


class ConcurrentCommit(RetryableError):
    """The snapshot head moved while committing; re-read and retry."""


class ObjectExists(PermanentError):
    """A write-once object already exists with different content."""


class ObjectNotFound(PermanentError):
    """The vault has no object at that key."""


class VaultUnavailable(RetryableError):
    """The object store could not be reached or answered with a transient error."""


class KeyUnavailable(PermanentError):
    """A data key could not be generated or unwrapped (missing key, wrong permissions, wrong context)."""


class IntegrityError(PermanentError):
    """Sealed data failed authentication, a hash mismatched, or a chunk is missing or misplaced."""


class UnknownFormatVersion(PermanentError):
    """The object was written by a newer (or unknown) format version; refuse to guess."""


class WorkerFailed(PermanentError):
    """A backup worker process raised an error that is not an ``OrgVaultError`` (its type and message
    are in this message), or died without a word (killed, out of memory). The run is FAILED and, like
    any failed run, resumes from its checkpoints on the next backup."""


class RunNotFound(PermanentError):
    """No run with that id for the org."""


class SnapshotNotFound(PermanentError):
    """No committed snapshot matches the request."""


class CredentialsNotFound(PermanentError):
    """No stored Salesforce credentials for the org."""


# --- AWS services other than the vault (retryable after the SDK's own retries gave up) -------


class CatalogUnavailable(RetryableError):
    """The catalog (DynamoDB) throttled, timed out or answered 5xx; retry later."""


class KeyServiceUnavailable(RetryableError):
    """The key service (KMS) throttled, timed out or answered 5xx; retry later."""


class SecretsUnavailable(RetryableError):
    """The secret store (Secrets Manager) throttled, timed out or answered 5xx; retry later."""


class WriteMaybeApplied(SalesforceUnavailable):
    """The connection dropped after a write was sent: it may or may not have been applied.
    A restore reconciles that batch (looks for what it created) before sending it again."""
