"""A ``requests.Session`` that sends Salesforce-bound traffic to a local emulator.

simple-salesforce (and other clients) always build ``https://`` URLs and log in at
``https://login.salesforce.com`` / ``https://test.salesforce.com`` / ``https://<domain>.salesforce.com``.
:func:`emulator_session` mounts an adapter that rewrites:

- ``https://<anything>.salesforce.com[...]`` → the emulator's base URL (login hosts, My Domain hosts);
- ``https://HOST:PORT`` of the emulator → ``http://HOST:PORT`` when the emulator serves plain HTTP.

Over TLS the scheme stays ``https`` and the session trusts the emulator's generated CA. The environment
variable ``REQUESTS_CA_BUNDLE`` would override ``verify``, so the session ignores the environment
(``trust_env = False``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter


class RewritingAdapter(HTTPAdapter):
    """Rewrites request URLs to the emulator before sending."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        target = urlsplit(base_url)
        self._scheme = target.scheme
        self._netloc = target.netloc

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host.endswith(".salesforce.com") or host == "salesforce.com" or parts.netloc == self._netloc:
            return urlunsplit((self._scheme, self._netloc, parts.path, parts.query, parts.fragment))
        return url

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        request.url = self.rewrite(request.url or "")
        return super().send(request, *args, **kwargs)


def emulator_session(facts: Any, *, ca_cert: str | None = None, pool_maxsize: int = 10) -> requests.Session:
    """A session for the emulator described by ``facts`` (an ``EmulatorFacts``, its ``as_dict()`` or any
    mapping with ``instance_url`` and optionally ``ca_cert``)."""
    data: Mapping[str, Any] = facts if isinstance(facts, Mapping) else facts.as_dict()
    base = data["instance_url"]
    session = requests.Session()
    session.trust_env = False
    adapter = RewritingAdapter(base, pool_maxsize=pool_maxsize)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    ca = ca_cert or data.get("ca_cert")
    if base.startswith("https://"):
        session.verify = ca if ca else True
    return session


__all__ = ["RewritingAdapter", "emulator_session"]
