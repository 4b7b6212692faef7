"""Salesforce-shaped errors raised by the emulator's org model.

The HTTP layer turns a :class:`SalesforceError` into a response with ``status`` and the JSON array
returned by :meth:`SalesforceError.body` -- exactly the shape real Salesforce sends.
"""

from __future__ import annotations


class SalesforceError(Exception):
    """An error as Salesforce reports it: HTTP status, ``errorCode``, message and field names."""

    def __init__(self, status: int, error_code: str, message: str, fields: list[str] | None = None):
        super().__init__(f"{error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = list(fields or [])

    def body(self) -> list[dict]:
        """The JSON body Salesforce sends: ``[{"message", "errorCode", "fields"}]``."""
        return [{"message": self.message, "errorCode": self.error_code, "fields": list(self.fields)}]

    def __repr__(self) -> str:
        return f"SalesforceError({self.status}, {self.error_code!r}, {self.message!r}, {self.fields!r})"


def malformed(message: str) -> SalesforceError:
    """400 MALFORMED_QUERY."""
    return SalesforceError(400, "MALFORMED_QUERY", message)


def invalid_field(message: str, fields: list[str] | None = None) -> SalesforceError:
    """400 INVALID_FIELD."""
    return SalesforceError(400, "INVALID_FIELD", message, fields)


def invalid_type(sobject: str) -> SalesforceError:
    """400 INVALID_TYPE for an unknown / unsupported sObject in a query."""
    return SalesforceError(
        400,
        "INVALID_TYPE",
        f"sObject type '{sobject}' is not supported. If you are attempting to use a custom object, be sure "
        "to append the '__c' after the entity name. Please reference your WSDL or the describe call for the "
        "appropriate names.",
    )


def not_found(message: str = "The requested resource does not exist") -> SalesforceError:
    """404 NOT_FOUND."""
    return SalesforceError(404, "NOT_FOUND", message)
