"""SecretStore contract: every adapter (see conftest.py) must pass all of these."""

from __future__ import annotations

import logging

import pytest

from orgvault.errors import CredentialsNotFound

SECRET = {"client_id": "3MVG9-client", "private_key": "-----BEGIN KEY-----s3cr3t-material-----END KEY-----"}


def test_put_get(secret_store):
    secret_store.put("acme", SECRET)
    assert dict(secret_store.get("acme")) == SECRET


def test_put_replaces(secret_store):
    secret_store.put("acme", SECRET)
    secret_store.put("acme", {"refresh_token": "rt-2"})
    assert dict(secret_store.get("acme")) == {"refresh_token": "rt-2"}


def test_orgs_are_separate(secret_store):
    secret_store.put("acme", SECRET)
    secret_store.put("beta", {"password": "pw-beta"})
    assert dict(secret_store.get("beta")) == {"password": "pw-beta"}
    assert dict(secret_store.get("acme")) == SECRET


def test_unknown_org(secret_store):
    with pytest.raises(CredentialsNotFound):
        secret_store.get("nobody")


def test_delete(secret_store):
    secret_store.put("acme", SECRET)
    secret_store.delete("acme")
    with pytest.raises(CredentialsNotFound):
        secret_store.get("acme")
    secret_store.delete("acme")  # already gone: no error


def test_secrets_never_in_repr_or_logs(secret_store, caplog):
    # orgvault's own loggers at DEBUG (SDK wire logs are outside this contract)
    caplog.set_level(logging.DEBUG, logger="orgvault")
    secret_store.put("acme", SECRET)
    got = secret_store.get("acme")
    for text in (repr(secret_store), str(secret_store), repr(got), str(got), caplog.text):
        assert "s3cr3t" not in text
        assert "3MVG9-client" not in text
