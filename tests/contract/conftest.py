"""Contract suites: one per port, each test run against every adapter of that port.

How adapters plug in (AWS engineer: follow this):

- A *factories module* exposes, per port, a dict ``name -> factory``. Accepted dict names:
  ``OBJECT_STORES``, ``CATALOGS``, ``KEY_PROVIDERS``, ``SECRET_STORES`` (or one ``FACTORIES`` dict of
  the form ``{"object_store": {...}, "catalog": {...}, "key_provider": {...}, "secret_store": {...}}``).
- A *factory* is called with no arguments and is either a generator function (yield one fresh, empty
  adapter, then clean up — pytest yield-fixture style) or returns a context manager that does the same.
- The secret-store factory receives no key provider; it builds whatever it needs.
- Modules: ``tests/contract/factories_local.py`` (local adapters) and ``tests/contract/factories_aws.py``
  (AWS adapters under moto), imported with ``try/except ModuleNotFoundError``.

Fixtures: ``object_store``, ``catalog``, ``key_provider``, ``secret_store`` — parametrized with ids like
``local`` or ``s3``. Run one adapter only with ``-k local`` / ``-k s3``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest

_PORTS = {
    "object_store": "OBJECT_STORES",
    "catalog": "CATALOGS",
    "key_provider": "KEY_PROVIDERS",
    "secret_store": "SECRET_STORES",
}


def _collect() -> dict[str, dict[str, Callable[[], Any]]]:
    found: dict[str, dict[str, Callable[[], Any]]] = {port: {} for port in _PORTS}
    for module_name in ("tests.contract.factories_local", "tests.contract.factories_aws"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (exc.name == module_name or module_name.startswith(exc.name)):
                continue
            raise
        factories = getattr(module, "FACTORIES", {})
        for port, attr in _PORTS.items():
            found[port].update(factories.get(port, {}))
            found[port].update(getattr(module, attr, {}))
    return found


FACTORIES = _collect()


@contextlib.contextmanager
def _enter(factory: Callable[[], Any]) -> Iterator[Any]:
    if inspect.isgeneratorfunction(factory):
        gen = factory()
        try:
            yield next(gen)
        finally:
            gen.close()
        return
    with factory() as adapter:
        yield adapter


def _fixture(port: str) -> Any:
    names = sorted(FACTORIES[port])

    @pytest.fixture(params=names, ids=names, name=port)
    def fixture(request: pytest.FixtureRequest) -> Iterator[Any]:
        with _enter(FACTORIES[port][request.param]) as adapter:
            yield adapter

    return fixture


object_store = _fixture("object_store")
catalog = _fixture("catalog")
key_provider = _fixture("key_provider")
secret_store = _fixture("secret_store")
