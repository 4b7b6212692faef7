"""Connect an org: validate its settings and credentials, create its key, store the secret, record it.

Contract of :func:`connect_org`: either everything is stored (key created, credentials stored
encrypted, connection recorded in the catalog) or, when validation or the optional test login
fails, nothing in the catalog or secret store changes. Secret values never appear in messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlparse

from orgvault.domain.models import AuthMethod, OrgConnection
from orgvault.errors import ConfigError, UnknownOrg
from orgvault.ports import Catalog, KeyProvider, SalesforceSource, SecretStore

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

# Which credential keys each auth flow needs (the SalesforceSource adapter reads the same names).
REQUIRED_SECRETS: dict[AuthMethod, tuple[str, ...]] = {
    AuthMethod.JWT: ("consumer_key", "username", "private_key"),
    AuthMethod.CLIENT_CREDENTIALS: ("client_id", "client_secret"),
    AuthMethod.REFRESH_TOKEN: ("client_id", "refresh_token"),
    AuthMethod.PASSWORD: ("username", "password"),
}
OPTIONAL_SECRETS: tuple[str, ...] = ("security_token", "client_secret", "client_id", "consumer_key")

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def validate_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise ConfigError(
            f"org name {name!r} is not valid: use 1-63 lowercase letters, digits, '-' or '_' (e.g. acme-prod)"
        )
    return name


def validate_url(url: str, what: str) -> str:
    parsed = urlparse(url or "")
    host = (parsed.hostname or "").lower()
    if parsed.scheme == "https" and host:
        return url.rstrip("/")
    if parsed.scheme == "http" and host in _LOOPBACK:
        return url.rstrip("/")
    raise ConfigError(f"{what} must be an https:// URL (http:// only for a local emulator), not {url!r}")


def validate_secrets(auth: AuthMethod, secret: Mapping[str, str]) -> dict[str, str]:
    missing = [k for k in REQUIRED_SECRETS[auth] if not secret.get(k)]
    if missing:
        raise ConfigError(
            f"--auth {auth.value} needs: {', '.join(missing)} (give them as flags, env or --secrets-file)"
        )
    return {k: str(v) for k, v in secret.items() if v}


def connect_org(
    *,
    catalog: Catalog,
    keys: KeyProvider,
    secrets: SecretStore,
    name: str,
    instance_url: str,
    auth_method: AuthMethod | str,
    credentials: Mapping[str, str],
    login_url: str | None = None,
    api_version: str = "59.0",
    test_login: Callable[[OrgConnection, dict[str, str]], SalesforceSource] | None = None,
    replace_existing: bool = False,
    now: datetime | None = None,
) -> OrgConnection:
    """Record a connection. With ``test_login`` (a source factory) the credentials are tried first
    and the Salesforce org id recorded; a failed login raises (``SalesforceAuthError``) and stores
    nothing. An existing name raises ``ConfigError`` unless ``replace_existing``."""
    validate_name(name)
    try:
        auth = AuthMethod(auth_method)
    except ValueError:
        choices = ", ".join(m.value for m in AuthMethod)
        raise ConfigError(f"--auth must be one of {choices}, not {auth_method!r}") from None
    instance_url = validate_url(instance_url, "--instance-url")
    login_url = validate_url(login_url, "--login-url") if login_url else instance_url
    secret = validate_secrets(auth, credentials)
    if not replace_existing:
        try:
            catalog.get_org(name)
        except UnknownOrg:
            pass
        else:
            raise ConfigError(f"org {name!r} already exists; remove it first or pass --replace")
    conn = OrgConnection(
        name=name,
        instance_url=instance_url,
        auth_method=auth,
        login_url=login_url,
        api_version=api_version,
        created_at=now or datetime.now(UTC),
    )
    if test_login is not None:
        source = test_login(conn, secret)
        conn = replace(conn, salesforce_org_id=source.org_id())
    key_ref = keys.create_org_key(name)
    conn = replace(conn, key_ref=key_ref)
    secrets.put(name, secret)
    catalog.put_org(conn)
    return conn
