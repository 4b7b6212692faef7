"""KeyProvider contract: every adapter (see conftest.py) must pass all of these."""

from __future__ import annotations

import pytest

from orgvault.errors import KeyUnavailable

CTX = {"org": "acme", "snapshot": "run-1", "object": "Account", "seq": "0", "v": "1"}


def test_create_org_key_is_idempotent(key_provider):
    ref1 = key_provider.create_org_key("acme")
    ref2 = key_provider.create_org_key("acme")
    assert ref1 == ref2
    assert key_provider.create_org_key("other") != ref1


def test_data_key_roundtrip(key_provider):
    ref = key_provider.create_org_key("acme")
    dk = key_provider.generate_data_key(ref, CTX)
    assert len(dk.plaintext) == 32
    assert dk.wrapped and dk.plaintext not in dk.wrapped
    assert key_provider.decrypt_data_key(dk.key_ref, dk.wrapped, dict(CTX)) == dk.plaintext


def test_each_data_key_is_fresh(key_provider):
    ref = key_provider.create_org_key("acme")
    a = key_provider.generate_data_key(ref, CTX)
    b = key_provider.generate_data_key(ref, CTX)
    assert a.plaintext != b.plaintext and a.wrapped != b.wrapped


@pytest.mark.parametrize(
    "change",
    [{"org": "evil"}, {"object": "Contact"}, {"seq": "1"}, {"snapshot": "run-2"}, {"v": "2"}, {"extra": "x"}],
)
def test_wrong_context_fails(key_provider, change):
    ref = key_provider.create_org_key("acme")
    dk = key_provider.generate_data_key(ref, CTX)
    with pytest.raises(KeyUnavailable) as info:
        key_provider.decrypt_data_key(dk.key_ref, dk.wrapped, {**CTX, **change})
    assert dk.plaintext.hex() not in str(info.value)


def test_missing_context_key_fails(key_provider):
    ref = key_provider.create_org_key("acme")
    dk = key_provider.generate_data_key(ref, CTX)
    ctx = dict(CTX)
    del ctx["seq"]
    with pytest.raises(KeyUnavailable):
        key_provider.decrypt_data_key(dk.key_ref, dk.wrapped, ctx)


def test_another_orgs_key_cannot_unwrap(key_provider):
    ref_a = key_provider.create_org_key("acme")
    ref_b = key_provider.create_org_key("beta")
    dk = key_provider.generate_data_key(ref_a, CTX)
    with pytest.raises(KeyUnavailable):
        key_provider.decrypt_data_key(ref_b, dk.wrapped, CTX)


def test_tampered_wrapped_key_fails(key_provider):
    ref = key_provider.create_org_key("acme")
    dk = key_provider.generate_data_key(ref, CTX)
    bad = bytearray(dk.wrapped)
    bad[len(bad) // 2] ^= 0x01
    with pytest.raises(KeyUnavailable):
        key_provider.decrypt_data_key(dk.key_ref, bytes(bad), CTX)


def test_rotation_keeps_old_data_readable(key_provider):
    if not hasattr(key_provider, "rotate_now"):
        pytest.skip("adapter has no on-demand rotation")
    ref = key_provider.create_org_key("acme")
    old = key_provider.generate_data_key(ref, CTX)
    key_provider.rotate_now("acme")
    new = key_provider.generate_data_key(ref, CTX)
    assert key_provider.decrypt_data_key(old.key_ref, old.wrapped, CTX) == old.plaintext
    assert key_provider.decrypt_data_key(new.key_ref, new.wrapped, CTX) == new.plaintext


def test_repr_has_no_key_material(key_provider):
    ref = key_provider.create_org_key("acme")
    dk = key_provider.generate_data_key(ref, CTX)
    text = repr(key_provider)
    assert dk.plaintext.hex() not in text
