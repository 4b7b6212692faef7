"""Authentication for the emulator: credentials, sessions, OAuth 2.0 grants and SOAP partner login.

Contract:
- :class:`Credentials` holds the single user / connected app of the emulated org. Secrets never appear in
  ``repr`` or error messages.
- :class:`SessionStore` issues opaque access tokens (``<org id>!<random>``) and validates them, applying
  the session-expiry faults (after N calls or T seconds by the org clock). An expired or unknown token is
  ``401 INVALID_SESSION_ID``.
- :func:`oauth_token` implements ``POST /services/oauth2/token`` for the grants ``password``,
  ``refresh_token``, ``client_credentials`` (HTTP Basic or form client id/secret) and
  ``urn:ietf:params:oauth:grant-type:jwt-bearer`` (RS256, verified against the configured certificate or
  public key; ``iss`` = client id, ``sub`` = username, ``aud`` = a login host, ``exp`` in the future).
  Errors are :class:`OAuthError` (``{"error", "error_description"}``, 400).
- :func:`soap_login` implements the partner ``login`` call; failures are :class:`SoapFault`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .errors import SalesforceError

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class OAuthError(Exception):
    """An OAuth token endpoint failure: ``{"error": ..., "error_description": ...}``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class SoapFault(Exception):
    """A SOAP login fault carrying ``sf:exceptionCode`` / ``sf:exceptionMessage``."""

    def __init__(self, code: str, message: str, status: int = 500) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    def xml(self) -> bytes:
        code, msg = escape(self.code), escape(self.message)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:sf="urn:fault.partner.soap.sforce.com" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>'
            f"<faultcode>sf:{code}</faultcode><faultstring>{code}: {msg}</faultstring>"
            f'<detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode>'
            f"<sf:exceptionMessage>{msg}</sf:exceptionMessage></sf:LoginFault></detail>"
            "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        ).encode()


@dataclass(frozen=True)
class Credentials:
    """The emulated org's user and connected app. ``jwt_public_key`` is a PEM certificate or public key
    (``None``: JWT bearer is refused). ``audiences`` are the accepted JWT ``aud`` values."""

    username: str = "admin@emulator.example.com"
    password: str = field(default="emulator-password", repr=False)
    security_token: str = field(default="", repr=False)
    client_id: str = "3MVG9emulatorClientId"
    client_secret: str = field(default="emulator-client-secret", repr=False)
    refresh_token: str = field(default="", repr=False)
    jwt_public_key: bytes | None = field(default=None, repr=False)
    audiences: tuple[str, ...] = ("https://login.salesforce.com", "https://test.salesforce.com")


@dataclass
class _Session:
    issued_at: datetime
    requests: int = 0


class SessionStore:
    """Issued access tokens; thread-safe."""

    def __init__(self, org_id: str, clock: Any) -> None:
        self._org_id = org_id
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def issue(self) -> str:
        token = f"{self._org_id[:15]}!AQ{secrets.token_urlsafe(48)}"
        with self._lock:
            self._sessions[token] = _Session(self._clock.now())
        return token

    def add(self, token: str) -> None:
        """Register a token chosen by the caller (the server's initial token)."""
        with self._lock:
            self._sessions[token] = _Session(self._clock.now())

    def is_known(self, token: str) -> bool:
        with self._lock:
            return token in self._sessions

    def check(self, token: str | None, *, max_requests: int | None, ttl_seconds: float | None) -> None:
        """Count one call on the session or raise 401 ``INVALID_SESSION_ID`` (expired sessions are
        forgotten, so they stay invalid)."""
        with self._lock:
            session = self._sessions.get(token or "")
            if session is not None:
                expired = (max_requests is not None and session.requests >= max_requests) or (
                    ttl_seconds is not None
                    and (self._clock.now() - session.issued_at).total_seconds() >= ttl_seconds
                )
                if expired:
                    del self._sessions[token or ""]
                    session = None
            if session is None:
                raise SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            session.requests += 1

    def revoke(self, token: str) -> bool:
        with self._lock:
            return self._sessions.pop(token, None) is not None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer``/``OAuth`` header, else ``None``."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return None


def _load_public_key(pem: bytes) -> Any:
    if b"CERTIFICATE" in pem:
        return x509.load_pem_x509_certificate(pem).public_key()
    return serialization.load_pem_public_key(pem)


def _basic_auth(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, pwd = decoded.partition(":")
    return (user, pwd) if sep else None


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def oauth_token(
    creds: Credentials,
    sessions: SessionStore,
    *,
    body: bytes,
    authorization: str | None,
    instance_url: str,
    login_url: str,
    user_id: str,
    org_id: str,
) -> dict[str, Any]:
    """Serve one token request; returns the JSON body or raises :class:`OAuthError`."""
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    grant = form.get("grant_type")
    if grant == "password":
        if not (
            _same(form.get("client_id"), creds.client_id)
            and _same(form.get("client_secret"), creds.client_secret)
        ):
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not (
            _same(form.get("username"), creds.username)
            and _same(form.get("password"), creds.password + creds.security_token)
        ):
            raise OAuthError("invalid_grant", "authentication failure")
    elif grant == "refresh_token":
        if form.get("client_id") is not None and not _same(form.get("client_id"), creds.client_id):
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not creds.refresh_token or not _same(form.get("refresh_token"), creds.refresh_token):
            raise OAuthError("invalid_grant", "expired access/refresh token")
    elif grant == "client_credentials":
        pair = _basic_auth(authorization) or (form.get("client_id"), form.get("client_secret"))
        if not (_same(pair[0], creds.client_id) and _same(pair[1], creds.client_secret)):
            raise OAuthError("invalid_client", "invalid client credentials")
    elif grant == JWT_GRANT:
        _verify_jwt(creds, form.get("assertion") or "", login_url)
    else:
        raise OAuthError("unsupported_grant_type", "grant type not supported")
    token = sessions.issue()
    issued = str(int(time.time() * 1000))
    signature = base64.b64encode(
        hmac.new(creds.client_secret.encode(), f"{instance_url}{issued}".encode(), hashlib.sha256).digest()
    ).decode()
    out: dict[str, Any] = {
        "access_token": token,
        "instance_url": instance_url,
        "id": f"{login_url}/id/{org_id}/{user_id}",
        "token_type": "Bearer",
        "issued_at": issued,
        "signature": signature,
        "scope": "api refresh_token",
    }
    if grant == "password" and creds.refresh_token:
        out["refresh_token"] = creds.refresh_token
    return out


def _verify_jwt(creds: Credentials, assertion: str, login_url: str) -> None:
    if creds.jwt_public_key is None:
        raise OAuthError("invalid_grant", "invalid assertion: no certificate configured for JWT bearer")
    try:
        key = _load_public_key(creds.jwt_public_key)
        claims = jwt.decode(
            assertion,
            key,
            algorithms=["RS256"],
            audience=[*creds.audiences, login_url],
            options={"require": ["exp", "iss", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise OAuthError("invalid_grant", "expired authorization code") from exc
    except jwt.InvalidAudienceError as exc:
        raise OAuthError("invalid_grant", "audience is invalid") from exc
    except jwt.InvalidTokenError as exc:
        raise OAuthError("invalid_grant", "invalid assertion") from exc
    if claims.get("iss") != creds.client_id:
        raise OAuthError("invalid_client_id", "client identifier invalid")
    if claims.get("sub") != creds.username:
        raise OAuthError("invalid_grant", "user hasn't approved this consumer")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def soap_login(
    creds: Credentials,
    sessions: SessionStore,
    *,
    body: bytes,
    instance_url: str,
    api_version: str,
    user_id: str,
    org_id: str,
) -> bytes:
    """Serve a partner ``login`` call; returns the SOAP response XML or raises :class:`SoapFault`."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise SoapFault("INVALID_LOGIN", "Invalid SOAP request") from exc
    values: dict[str, str] = {}
    for el in root.iter():
        name = _local(el.tag)
        if name in ("username", "password", "organizationId") and name not in values:
            values[name] = el.text or ""
    if not any(_local(el.tag) == "login" for el in root.iter()):
        raise SoapFault("UNKNOWN_EXCEPTION", "Only the login call is supported by this endpoint")
    org_scope = values.get("organizationId")
    if org_scope is not None and org_scope[:15] != org_id[:15]:
        raise SoapFault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
    if not (
        _same(values.get("username"), creds.username)
        and _same(values.get("password"), creds.password + creds.security_token)
    ):
        raise SoapFault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
    token = sessions.issue()
    server_url = f"{instance_url}/services/Soap/u/{api_version}/{org_id[:15]}"
    meta_url = f"{instance_url}/services/Soap/m/{api_version}/{org_id[:15]}"
    user = escape(creds.username)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><loginResponse><result>"
        f"<metadataServerUrl>{meta_url}</metadataServerUrl><passwordExpired>false</passwordExpired>"
        f"<sandbox>false</sandbox><serverUrl>{server_url}</serverUrl><sessionId>{token}</sessionId>"
        f"<userId>{user_id}</userId><userInfo><organizationId>{org_id}</organizationId>"
        f"<organizationName>Emulated Org</organizationName><userEmail>{user}</userEmail>"
        f"<userFullName>Emulator Admin</userFullName><userId>{user_id}</userId>"
        f"<userName>{user}</userName></userInfo></result></loginResponse></soapenv:Body>"
        "</soapenv:Envelope>"
    ).encode()
