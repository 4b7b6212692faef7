"""The Salesforce source keeps requests' environment lookup per origin: proxies still apply."""

from __future__ import annotations

import pytest
import requests

from orgvault.adapters.salesforce import _cache_environment


@pytest.mark.parametrize(
    "url",
    ["https://na1.my.salesforce.com/services/data", "https://127.0.0.1:8443/x", "http://login.example/y"],
)
def test_cached_environment_settings_equal_requests_own(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    cached = requests.Session()
    _cache_environment(cached)
    for _ in range(2):  # the second answer comes from the cache
        got = cached.merge_environment_settings(url, {}, True, None, None)
        want = requests.Session().merge_environment_settings(url, {}, True, None, None)
        assert dict(got["proxies"]) == dict(want["proxies"])
        assert (got["verify"], got["stream"], got["cert"]) == (want["verify"], want["stream"], want["cert"])


def test_explicit_proxies_are_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    s = requests.Session()
    _cache_environment(s)
    url = "https://na1.my.salesforce.com/"
    assert s.merge_environment_settings(url, {}, False, None, None)["proxies"] == {}
    explicit = s.merge_environment_settings(url, {"https": "http://p:1"}, False, None, None)
    assert explicit["proxies"]["https"] == "http://p:1"
    assert s.merge_environment_settings(url, {}, False, None, None)["proxies"] == {}
