"""API errors and the ONE table mapping orgvault exceptions to HTTP statuses.

Contract: every error response body is ``{"error": <class name>, "message": <what to do>, "status": int}``
(validation errors add ``detail``). Messages come from the exception (orgvault messages never contain
secrets); anything that is not an :class:`OrgVaultError` becomes a 500 with a reference id only — no
stack trace, no exception text.
"""

from __future__ import annotations

from orgvault import errors as e
from orgvault.services.restore import RestoreRefused
from orgvault.services.restore_journal import UnknownRestoreJob


class ApiError(e.PermanentError):
    """Base of errors raised by the API layer itself."""


class Unauthenticated(ApiError):
    """No valid credentials were presented (401)."""


class Forbidden(ApiError):
    """The caller is signed in but lacks the role for this org (403)."""


class BadRequest(ApiError):
    """The request is malformed (400): bad paging token, bad filter, ..."""


class PayloadTooLarge(ApiError):
    """The request body exceeds the configured limit (413)."""


class NotFound(ApiError):
    """No such resource (404)."""


class Conflict(ApiError):
    """The resource is not in a state that allows the operation (409)."""


# Most specific first: the first matching class wins.
STATUS_TABLE: tuple[tuple[type[BaseException], int], ...] = (
    (Unauthenticated, 401),
    (Forbidden, 403),
    (PayloadTooLarge, 413),
    (NotFound, 404),
    (Conflict, 409),
    (BadRequest, 400),
    (e.UnknownOrg, 404),
    (e.RunNotFound, 404),
    (e.SnapshotNotFound, 404),
    (e.ObjectNotFound, 404),
    (UnknownRestoreJob, 404),
    (e.CredentialsNotFound, 409),
    (e.RunInProgress, 409),
    (e.ObjectExists, 409),
    (RestoreRefused, 422),
    (e.ConfigError, 400),
    (e.BulkNotSupported, 422),
    (e.SalesforceRequestError, 422),
    (e.SalesforceAuthError, 502),
    (e.ApiBudgetExhausted, 429),
    (e.ConcurrentCommit, 409),
    (e.RetryableError, 503),  # Salesforce/vault/catalog/KMS/secrets unavailable: retry later
    (e.IntegrityError, 500),
    (e.UnknownFormatVersion, 500),
    (e.KeyUnavailable, 500),
    (e.PermanentError, 400),
    (e.OrgVaultError, 500),
)

RETRY_AFTER_SECONDS = {429: 3600, 503: 30}


def status_for(exc: BaseException) -> int:
    """The HTTP status for ``exc`` (500 for anything unknown)."""
    for cls, status in STATUS_TABLE:
        if isinstance(exc, cls):
            return status
    return 500
