from __future__ import annotations

import pytest

from salesforce_emulator.ids import IdFactory, is_valid_id, normalize_id, to_15, to_18


def test_known_answer_checksum():
    # the example from Salesforce's documentation and every client library
    assert to_18("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert to_15("001A0000006Vm9rIAC") == "001A0000006Vm9r"


def test_18_char_id_is_case_insensitive():
    assert to_15("001a0000006vm9riac") == "001A0000006Vm9r"
    assert to_15("001A0000006VM9RIAC") == "001A0000006Vm9r"
    assert normalize_id("001a0000006vm9riac") == "001A0000006Vm9rIAC"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "001",
        "001A0000006Vm9r!",
        "001A0000006Vm9rIA",
        "001A0000006Vm9rIA9",
        "0010000000000009AA",
        None,
        123,
    ],
)
def test_invalid_ids(bad):
    assert not is_valid_id(bad)


def test_mixed_case_18_must_match_checksum():
    assert is_valid_id("001A0000006Vm9rIAC")
    assert not is_valid_id("001a0000006Vm9rIAC")  # mixed case that contradicts the suffix


def test_factory_is_deterministic_and_valid():
    a = IdFactory(seed=7).new_ids("001", 1000)
    b = IdFactory(seed=7).new_ids("001", 1000)
    c = IdFactory(seed=8).new_ids("001", 1000)
    assert a == b and a != c
    assert len(set(a)) == 1000
    for i in a[:50] + a[-50:]:
        assert i.startswith("001") and len(i) == 18 and is_valid_id(i) and to_18(i[:15]) == i


def test_factory_continues_from_counters():
    f = IdFactory(seed=1)
    first = f.new_ids("003", 5)
    g = IdFactory(seed=1, counters=f.counters)
    assert g.new_id("003") not in first
    # ids stay unique across the boundary of the fast path's 3-character block
    f2 = IdFactory(seed=1, counters={"00Q": 238320})
    ids = f2.new_ids("00Q", 20)
    assert len(set(ids)) == 20 and all(to_18(i[:15]) == i for i in ids)


def test_factory_ids_across_a_counter_chunk_boundary_have_correct_checksums():
    f = IdFactory(seed=3, counters={"003": 238_328 - 5})  # the 3-character tail wraps after 238,328
    ids = f.new_ids("003", 10)
    assert len(set(ids)) == 10
    assert all(is_valid_id(i) and to_18(i[:15]) == i for i in ids)
    assert ids[3][:12] != ids[4][:12]  # the upper part moved on
