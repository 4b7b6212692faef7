"""ObjectStore contract: every adapter (see conftest.py) must pass all of these."""

from __future__ import annotations

import os

import pytest

from orgvault.errors import ObjectExists, ObjectNotFound


def test_put_get_roundtrip(object_store):
    object_store.put("orgs/acme/a/b.ovc", b"hello")
    assert object_store.get("orgs/acme/a/b.ovc") == b"hello"
    assert object_store.exists("orgs/acme/a/b.ovc")
    assert object_store.size("orgs/acme/a/b.ovc") == 5


def test_empty_object(object_store):
    object_store.put("orgs/acme/empty", b"")
    assert object_store.get("orgs/acme/empty") == b""
    assert object_store.size("orgs/acme/empty") == 0


def test_put_same_bytes_again_is_a_noop(object_store):
    object_store.put("k/x", b"same")
    object_store.put("k/x", b"same")
    assert object_store.get("k/x") == b"same"


def test_put_different_bytes_is_refused_and_keeps_the_original(object_store):
    object_store.put("k/x", b"first")
    with pytest.raises(ObjectExists):
        object_store.put("k/x", b"second")
    with pytest.raises(ObjectExists):
        object_store.put("k/x", b"firsT")
    assert object_store.get("k/x") == b"first"


def test_put_stream_is_write_once_too(object_store):
    size = object_store.put_stream("k/s", iter([b"ab", b"cd", b"e"]))
    assert size == 5
    assert object_store.get("k/s") == b"abcde"
    assert object_store.put_stream("k/s", iter([b"abc", b"de"])) == 5  # same bytes: no-op
    with pytest.raises(ObjectExists):
        object_store.put_stream("k/s", iter([b"abcdX"]))
    assert object_store.get("k/s") == b"abcde"


def test_put_stream_large_body_in_many_parts(object_store):
    part = os.urandom(1024 * 1024)
    parts = [part] * 6 + [b"tail"]
    size = object_store.put_stream("big/body", iter(parts))
    assert size == 6 * len(part) + 4
    got = b"".join(object_store.get_stream("big/body", part_size=1024 * 1024))
    assert got == b"".join(parts)


def test_get_stream_yields_bounded_parts(object_store):
    data = os.urandom(3 * 1024 * 1024 + 17)
    object_store.put("k/stream", data)
    parts = list(object_store.get_stream("k/stream", part_size=1024 * 1024))
    assert b"".join(parts) == data
    assert all(len(p) <= 1024 * 1024 for p in parts)  # never more than asked for: bounded memory
    assert len(parts) >= 4


def test_missing_objects(object_store):
    assert not object_store.exists("nope/x")
    with pytest.raises(ObjectNotFound):
        object_store.get("nope/x")
    with pytest.raises(ObjectNotFound):
        object_store.size("nope/x")
    with pytest.raises(ObjectNotFound):
        b"".join(object_store.get_stream("nope/x"))


def test_list_is_lexicographic_and_prefix_exact(object_store):
    keys = ["orgs/a/x/2", "orgs/a/x/10", "orgs/a/x-y", "orgs/a/x/1/z", "orgs/ab/x/1", "orgs/b/1"]
    for k in keys:
        object_store.put(k, k.encode())
    assert list(object_store.list("orgs/a/")) == sorted(
        ["orgs/a/x/2", "orgs/a/x/10", "orgs/a/x-y", "orgs/a/x/1/z"]
    )
    assert list(object_store.list("orgs/a")) == sorted(k for k in keys if k.startswith("orgs/a"))
    assert list(object_store.list("orgs/a/x/1")) == ["orgs/a/x/1/z", "orgs/a/x/10"]
    assert list(object_store.list("orgs/zzz/")) == []
    assert list(object_store.list("")) == sorted(keys)


def test_delete(object_store):
    object_store.put("d/1", b"x")
    object_store.delete("d/1")
    assert not object_store.exists("d/1")
    object_store.delete("d/1")  # missing: no error
    object_store.put("d/1", b"y")  # a deleted key may be written again (GC then re-write)
    assert object_store.get("d/1") == b"y"


def test_failed_stream_leaves_nothing_at_the_key(object_store):
    def parts():
        yield b"partial"
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError):
        object_store.put_stream("k/partial", parts())
    assert not object_store.exists("k/partial")
    assert list(object_store.list("k/")) == []
