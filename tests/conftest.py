"""Shared fixtures: a running Salesforce emulator and the means to connect orgvault to it.

Fixtures
--------
``emulator`` (session scope)
    One ``EmulatorServer`` on a free 127.0.0.1 port, plain http, serving ``Org.generate(scale=300,
    seed=1)`` with JWT bearer enabled (see ``jwt_private_key``). Shared by every test of the worker:
    **do not mutate its org or its faults** — use ``fresh_emulator`` for that.
``fresh_emulator`` (function scope)
    A factory: ``fresh_emulator(scale=300, seed=1, faults=None, **server_options)`` starts a new
    emulator with its own org (``server_options`` are ``ServerOptions`` fields: ``daily_limit``,
    ``bulk_delay``, ``tls``, ...). Every emulator it started is stopped when the test ends.
``jwt_private_key`` (session scope)
    The RSA private key (PEM text) whose public key every emulator here trusts for JWT bearer.
``emulator_login`` (function scope)
    ``emulator_login(emu, auth="client-credentials", name="emulated") -> (OrgConnection, credentials)``
    for any of the four auth flows, ready for ``SimpleSalesforceSource(conn, creds)``; ``creds`` is a
    ``SecretDict`` (its repr shows keys only).
``emulator_source`` (function scope)
    ``emulator_source(emu, auth="client-credentials", **source_options) -> SimpleSalesforceSource``
    with test-friendly settings (no real sleeping, short back-off).

The emulator modules are imported inside the fixtures so that test files that don't use them still
collect while the emulator is being worked on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orgvault.domain.models import AuthMethod, OrgConnection, SecretDict


class _SecretText(str):
    """A string whose repr hides it, so pytest's tracebacks never print a key."""

    def __repr__(self) -> str:
        return "'<secret>'"


@pytest.fixture(scope="session")
def jwt_private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _SecretText(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    )


def _public_pem(private_pem: str) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _start(private_pem: str, *, scale: int = 300, seed: int = 1, faults: Any = None, **options: Any) -> Any:
    from salesforce_emulator import Org
    from salesforce_emulator.auth import Credentials
    from salesforce_emulator.server import EmulatorServer

    options.setdefault("credentials", Credentials(jwt_public_key=_public_pem(private_pem)))
    return EmulatorServer.start(Org.generate(scale=scale, seed=seed), faults=faults, **options)


@pytest.fixture(scope="session")
def emulator(jwt_private_key: str) -> Iterator[Any]:
    server = _start(jwt_private_key)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_emulator(jwt_private_key: str) -> Iterator[Callable[..., Any]]:
    started: list[Any] = []

    def make(scale: int = 300, seed: int = 1, faults: Any = None, **options: Any) -> Any:
        server = _start(jwt_private_key, scale=scale, seed=seed, faults=faults, **options)
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()


def login_for(
    emu: Any, auth: AuthMethod | str, private_pem: str, name: str = "emulated"
) -> tuple[OrgConnection, dict[str, str]]:
    """The connection and credentials for ``auth`` against ``emu`` (see ``emulator_login``)."""
    facts = emu.facts
    method = AuthMethod(auth)
    creds: dict[str, str] = {
        AuthMethod.JWT: {
            "consumer_key": facts.client_id,
            "username": facts.username,
            "private_key": private_pem,
        },
        AuthMethod.CLIENT_CREDENTIALS: {"client_id": facts.client_id, "client_secret": facts.client_secret},
        AuthMethod.REFRESH_TOKEN: {"client_id": facts.client_id, "refresh_token": facts.refresh_token},
        AuthMethod.PASSWORD: {"username": facts.username, "password": facts.password},
    }[method]
    conn = OrgConnection(
        name=name, instance_url=facts.instance_url, login_url=facts.login_url, auth_method=method
    )
    return conn, SecretDict(creds)


@pytest.fixture
def emulator_login(jwt_private_key: str) -> Callable[..., tuple[OrgConnection, dict[str, str]]]:
    def make(
        emu: Any, auth: AuthMethod | str = AuthMethod.CLIENT_CREDENTIALS, name: str = "emulated"
    ) -> tuple[OrgConnection, dict[str, str]]:
        return login_for(emu, auth, jwt_private_key, name)

    return make


@pytest.fixture
def emulator_source(jwt_private_key: str) -> Callable[..., Any]:
    from orgvault.adapters.salesforce import SimpleSalesforceSource

    def make(emu: Any, auth: AuthMethod | str = AuthMethod.CLIENT_CREDENTIALS, **options: Any) -> Any:
        conn, creds = login_for(emu, auth, jwt_private_key)
        options.setdefault("sleep", lambda _s: None)
        options.setdefault("backoff_base", 0.01)
        options.setdefault("bulk_poll_seconds", 0.0)
        return SimpleSalesforceSource(conn, creds, **options)

    return make
