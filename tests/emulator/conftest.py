"""Fixtures for the emulator's HTTP tests: one shared server per session over a small seeded org, reset
between tests (faults cleared, API usage reset), plus helpers to build simple-salesforce clients."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from simple_salesforce import Salesforce

from salesforce_emulator.client_session import emulator_session
from salesforce_emulator.server import EmulatorServer

SCALE = 300
SEED = 1


def make_org(**kwargs: Any) -> Any:
    from salesforce_emulator.org import Org

    return Org.generate(scale=kwargs.pop("scale", SCALE), seed=kwargs.pop("seed", SEED), **kwargs)


@pytest.fixture(scope="session")
def jwt_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An RSA key and a self-signed certificate, as a connected app would hold them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jwt-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=10))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    directory = tmp_path_factory.mktemp("jwt")
    key_file = directory / "server.key"
    key_file.write_bytes(key_pem)
    return {
        "key_pem": key_pem.decode(),
        "key_file": str(key_file),
        "cert_pem": cert.public_bytes(serialization.Encoding.PEM),
    }


@pytest.fixture(scope="session")
def shared_org() -> Iterator[Any]:
    org = make_org()
    yield org
    org.close()


@pytest.fixture(scope="session")
def _shared_emu(shared_org: Any, jwt_keys: dict[str, Any]) -> Iterator[EmulatorServer]:
    with EmulatorServer.start(shared_org, tls=False, jwt_public_key=jwt_keys["cert_pem"]) as emu:
        yield emu


PAGE_SOQL = "SELECT Id, LastName FROM Lead WHERE LastName LIKE 'Pager%' ORDER BY Id"


PAGER_NAMES = frozenset(f"Pager{i:05d}" for i in range(2001))


def ensure_pager_leads(org: Any) -> None:
    """Make the Leads whose LastName starts with 'Pager' exactly Pager00000..Pager02000, once each, all
    live, with none in the recycle bin (queryAll sees those)."""
    soql = "SELECT Id, LastName, IsDeleted FROM Lead WHERE LastName LIKE 'Pager%'"
    page = org.fetch(org.compile(soql, include_deleted=True), None, 10_000)
    seen: set[str] = set()
    for row in page.rows:
        rid, name, deleted = row[0], row[1], row[2]
        if deleted:
            org.purge(rid)
        elif name not in PAGER_NAMES or name in seen:  # a stray or a duplicate Pager lead
            org.delete("Lead", rid)
            org.purge(rid)
        else:
            seen.add(name)
    for name in sorted(PAGER_NAMES - seen):
        org.create("Lead", {"LastName": name, "Company": "Paging Inc"})


@pytest.fixture
def paging_leads(_shared_emu: EmulatorServer) -> int:
    """Exactly 2001 live Leads named Pager00000..Pager02000 (paging tests select them with PAGE_SOQL).

    Function-scoped and self-healing: whatever an earlier test did to the shared org (deleted, renamed
    or added a Pager lead), the invariant is re-established before each test that relies on it, so no
    test depends on another's order. The check is one indexed query when nothing needs repair."""
    ensure_pager_leads(_shared_emu.org)
    return 2001


@pytest.fixture
def private_emu(jwt_keys: dict[str, Any]) -> Iterator[EmulatorServer]:
    """An emulator over its own freshly generated org, for tests whose mutations are broad or random
    (admin ``mutate``, activity functions): they must never touch the session-shared org."""
    org = make_org()
    try:
        with EmulatorServer.start(org, tls=False, jwt_public_key=jwt_keys["cert_pem"]) as emu:
            yield emu
    finally:
        org.close()


@pytest.fixture
def emu(_shared_emu: EmulatorServer) -> Iterator[EmulatorServer]:
    """The shared emulator with no faults and a fresh API allowance."""
    _shared_emu.faults.clear()
    _shared_emu.usage.reset(100_000)
    _shared_emu.sessions.add(_shared_emu.facts.access_token)  # a test may have expired it
    yield _shared_emu
    _shared_emu.faults.clear()
    _shared_emu.usage.reset(100_000)


@pytest.fixture
def session(emu: EmulatorServer) -> Any:
    return emulator_session(emu.facts)


@pytest.fixture
def sf(emu: EmulatorServer, session: Any) -> Salesforce:
    """simple-salesforce logged in through SOAP (username + password + empty security token)."""
    f = emu.facts
    return Salesforce(username=f.username, password=f.password, security_token="", session=session)


def api(emu: EmulatorServer, version: str = "59.0") -> str:
    return f"{emu.facts.instance_url}/services/data/v{version}"


class _MaskedHeaders(dict):  # type: ignore[type-arg]
    """Headers whose repr hides the token, so a failing assertion never prints a secret."""

    def __repr__(self) -> str:
        return "{'Authorization': 'Bearer ***'}"


def auth(emu: EmulatorServer) -> dict[str, str]:
    return _MaskedHeaders(Authorization=f"Bearer {emu.facts.access_token}")


def conn_threads(port: int) -> int:
    """Live threads of the emulator listening on ``port``."""
    return sum(
        1 for t in threading.enumerate() if t.name.startswith("sf-emulator") and t.name.endswith(f"-{port}")
    )


__all__ = ["PAGE_SOQL", "PAGER_NAMES", "api", "auth", "conn_threads", "ensure_pager_leads", "make_org"]
