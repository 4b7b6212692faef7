"""What every AWS adapter shares: how clients are built and how SDK errors are classified.

Only modules named ``orgvault/adapters/aws_*.py`` import boto3/botocore.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

#: Adaptive retries: client-side rate limiting plus exponential back-off on throttling and 5xx.
#: Used when an adapter builds its own client; a client passed in is used as given.
DEFAULT_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10}, user_agent_extra="orgvault")

#: Errors raised by botocore before any HTTP answer: the network, not the request, failed.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)

_THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "TransactionInProgressException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "KMSInternalException",
    "DependencyTimeoutException",
    "InternalServiceError",
    "InternalServiceErrorException",
    "RequestTimeout",
    "RequestTimeoutException",
}


def make_client(service: str, **kwargs: Any) -> Any:
    """A boto3 client for ``service`` with adaptive retries (region etc. from the environment)."""
    kwargs.setdefault("config", DEFAULT_CONFIG)
    return boto3.client(service, **kwargs)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx and network failures: worth retrying later (the SDK already retried)."""
    if isinstance(exc, TRANSPORT_ERRORS):
        return True
    if isinstance(exc, ClientError):
        return error_code(exc) in _THROTTLING or http_status(exc) >= 500
    return False


def is_access_denied(exc: ClientError) -> bool:
    code = error_code(exc)
    return (
        code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"} or http_status(exc) == 403
    )
