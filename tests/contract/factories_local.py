"""Factories for the local adapters (see the docstring of ``tests/contract/conftest.py``)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

from orgvault.adapters.local_catalog import SqliteCatalog
from orgvault.adapters.local_keys import LocalKeyProvider
from orgvault.adapters.local_secrets import LocalSecretStore
from orgvault.adapters.local_store import FilesystemObjectStore


def local_object_store() -> Iterator[FilesystemObjectStore]:
    with tempfile.TemporaryDirectory() as d:
        yield FilesystemObjectStore(Path(d) / "vault")


def local_catalog() -> Iterator[SqliteCatalog]:
    with tempfile.TemporaryDirectory() as d:
        catalog = SqliteCatalog(Path(d) / "catalog.sqlite")
        try:
            yield catalog
        finally:
            catalog.close()


def local_key_provider() -> Iterator[LocalKeyProvider]:
    with tempfile.TemporaryDirectory() as d:
        yield LocalKeyProvider.create_key_file(Path(d) / "keys.json")


def local_secret_store() -> Iterator[LocalSecretStore]:
    with tempfile.TemporaryDirectory() as d:
        keys = LocalKeyProvider.create_key_file(Path(d) / "keys.json")
        yield LocalSecretStore(Path(d) / "secrets", keys)


OBJECT_STORES = {"local": local_object_store}
CATALOGS = {"local": local_catalog}
KEY_PROVIDERS = {"local": local_key_provider}
SECRET_STORES = {"local": local_secret_store}
