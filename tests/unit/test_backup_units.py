"""Pure parts of the backup service, settings and CLI: parsing, ids, exit codes."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orgvault import cli
from orgvault.errors import (
    ApiBudgetExhausted,
    ConfigError,
    IntegrityError,
    RunInProgress,
    SalesforceAuthError,
)
from orgvault.services.backup import local_owner_alive, new_run_id, sf_datetime, soql_datetime
from orgvault.services.orgs import validate_name, validate_secrets, validate_url
from orgvault.settings import Mode, Settings, parse_master_key


def test_settings_defaults_and_overrides(tmp_path):
    s = Settings.from_env({}, home=str(tmp_path))
    assert s.mode is Mode.LOCAL
    assert s.vault_dir == tmp_path / "vault"
    assert s.backup.budget_share == 0.8
    s2 = Settings.from_env(
        {"ORGVAULT_BUDGET_SHARE": "0.5", "ORGVAULT_EXCLUDE": "Task, Event"}, reconcile_every=3
    )
    assert s2.backup.budget_share == 0.5
    assert s2.backup.exclude == ("Task", "Event")
    assert s2.backup.reconcile_every == 3


@pytest.mark.parametrize(
    "env",
    [
        {"ORGVAULT_MODE": "cloud"},
        {"ORGVAULT_BUDGET_SHARE": "2"},
        {"ORGVAULT_OVERLAP_SECONDS": "soon"},
        {"ORGVAULT_WORKERS": "0"},
        {"ORGVAULT_WORKERS": "two"},
    ],
)
def test_settings_reject_bad_values_naming_the_variable(env):
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert next(iter(env)) in str(err.value)


def test_workers_default_to_two_and_come_from_the_environment_or_a_flag(tmp_path):
    assert Settings.from_env({}).workers == 2
    assert Settings.from_env({"ORGVAULT_WORKERS": "1"}).workers == 1
    assert Settings.from_env({"ORGVAULT_WORKERS": "1"}, workers=3).workers == 3


def test_backup_help_lists_the_settings_including_workers(capsys):
    assert cli.main(["backup", "--help"], env={}) == 0
    out = capsys.readouterr().out
    assert "ORGVAULT_WORKERS" in out and "ORGVAULT_BUDGET_SHARE" in out
    assert "ORGVAULT_PAGE_RECORDS" in out and "full backup extracts at once" in out
    assert "6 incomplete" in out  # the exit code a scheduler must watch for


def test_master_key_must_be_32_bytes_and_is_not_in_repr():
    key = base64.b64encode(bytes(range(32))).decode()
    s = Settings.from_env({"ORGVAULT_MASTER_KEY": key})
    assert s.master_key == bytes(range(32))
    assert key not in repr(s) and "master_key" not in repr(s)
    with pytest.raises(ConfigError, match="32 bytes"):
        parse_master_key(base64.b64encode(b"short").decode())
    with pytest.raises(ConfigError, match="base64"):
        parse_master_key("not base64 !!!")


def test_run_ids_sort_by_time_and_are_unique():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [new_run_id(t + timedelta(microseconds=i)) for i in range(50)]
    assert ids == sorted(ids)
    assert len({new_run_id(t) for _ in range(200)}) > 190


def test_salesforce_datetimes_round_trip_to_soql():
    assert sf_datetime("2024-03-01T10:20:30.000+0000") == datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)
    assert sf_datetime("2024-03-01T10:20:30Z") == datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)
    assert (
        soql_datetime(sf_datetime("2024-03-01T10:20:30.000+0000") - timedelta(minutes=5))
        == "2024-03-01T10:15:30Z"
    )


def test_owner_liveness_only_for_this_host():
    import os
    import socket

    assert local_owner_alive(f"{socket.gethostname()}:{os.getpid()}") is True
    assert local_owner_alive(f"{socket.gethostname()}:999999999") is False
    assert local_owner_alive("some-other-host:1") is None


def test_org_input_validation():
    assert validate_name("acme-prod") == "acme-prod"
    for bad in ("", "Acme", "a b", "x" * 70, "../etc"):
        with pytest.raises(ConfigError):
            validate_name(bad)
    assert validate_url("https://acme.my.salesforce.com/", "u") == "https://acme.my.salesforce.com"
    assert validate_url("http://127.0.0.1:8443", "u") == "http://127.0.0.1:8443"
    with pytest.raises(ConfigError, match="https"):
        validate_url("http://acme.my.salesforce.com", "--instance-url")
    from orgvault.domain.models import AuthMethod

    with pytest.raises(ConfigError, match="client_secret"):
        validate_secrets(AuthMethod.CLIENT_CREDENTIALS, {"client_id": "x"})


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ApiBudgetExhausted("x"), cli.EXIT_PAUSED),
        (RunInProgress("x"), cli.EXIT_LOCKED),
        (IntegrityError("x"), cli.EXIT_VERIFY),
        (ConfigError("x"), cli.EXIT_USAGE),
        (SalesforceAuthError("x"), cli.EXIT_ERROR),
    ],
)
def test_exit_codes(exc, code):
    assert cli.exit_code_for(exc) == code


def test_cli_usage_error_exits_2(capsys):
    assert cli.main(["backup"], env={}) == 2
    assert cli.main(["frobnicate"], env={}) == 2


def test_cli_unknown_vault_is_one_clear_line(tmp_path, capsys):
    code = cli.main(["--home", str(tmp_path / "nope"), "snapshots", "acme"], env={}, stdin=io.StringIO())
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE
    assert "orgvault init" in err
    assert "Traceback" not in err
    assert not (tmp_path / "nope").exists()


def test_step_results_and_plans_serialize_for_step_functions():
    import json

    from orgvault.domain.models import RunKind
    from orgvault.services.backup import RunPlan, SkippedObject, StepResult, StepStatus

    plan = RunPlan(
        "acme", "r1", RunKind.FULL, False, None, ("Account",), (SkippedObject("AccountFeed", "name_rule"),)
    )
    step = StepResult("acme", "r1", "Account", StepStatus.WAIT, wait_seconds=4.6, records=10)
    assert json.loads(json.dumps(plan.to_json()))["objects"] == ["Account"]
    assert json.loads(json.dumps(step.to_json())) | {} == step.to_json()
    assert step.to_json()["status"] == "wait" and step.to_json()["wait_seconds"] == 5


def test_chunk_ids_match_full_decoding():
    """The fast Id reader used for counts and reconciliation agrees with decoding whole rows."""
    from orgvault.domain.chunks import decode_chunk, encode_records
    from orgvault.services.backup_glue import chunk_ids

    records = [
        {"Id": f"001000000000{i:03d}AAA", "Name": f'a, "quoted" [{i}]', "N": i, "X": None} for i in range(50)
    ]
    enc = encode_records(records)

    from types import SimpleNamespace

    Ref = SimpleNamespace(key="k", records=len(records))  # noqa: N806

    class FakeVault:
        def read_chunk_payload(self, org, obj, ref):
            return enc.payload

    assert chunk_ids(FakeVault(), "o", "Account", Ref) == [r["Id"] for r in decode_chunk(enc.payload)]
    tombs = encode_records([{"Id": "001000000000001AAA", "deletedDate": None}])
    Ref.records = 1
    FakeVault.read_chunk_payload = lambda self, o, b, r: tombs.payload
    assert chunk_ids(FakeVault(), "o", "Account", Ref) == ["001000000000001AAA"]


def test_buffer_keeps_each_chunks_ids_for_its_index():
    """A change of field set closes a chunk early; each closed chunk's Ids (what its id index is
    built from) are exactly the Ids its payload holds, in order."""
    from orgvault.domain.chunks import decode_chunk
    from orgvault.services.backup import _Buffer

    buf = _Buffer()
    rows = [{"Id": f"001{i:015d}", "Name": f"n{i}"} for i in range(5)]
    rows += [{"Id": f"001{i:015d}", "Name": f"n{i}", "Extra__c": i} for i in range(5, 8)]
    rows += [{"Id": f"001{i:015d}", "Name": f"n{i}"} for i in range(8, 10)]
    for r in rows:
        buf.add(r)
    chunks = buf.chunks()
    assert len(chunks) == 3 and buf.count == 0
    assert [len(ids) for _, ids in chunks] == [5, 3, 2]
    for encoded, ids in chunks:
        assert ids == [r["Id"] for r in decode_chunk(encoded.payload)]
    assert [i for _, ids in chunks for i in ids] == [r["Id"] for r in rows]


def test_edge_keeps_only_records_near_the_watermark_and_gives_up_beyond_the_cap():
    from orgvault.services.backup import EDGE_MAX, _Edge

    e = _Edge({}, overlap_s=300)
    e.add("a", "2026-01-01T00:00:00.000+0000", None)  # long before the final watermark
    e.add("b", "2026-01-01T09:56:00.000+0000", "2026-01-01T00:00:00.000+0000")
    e.add("c", "2026-01-01T10:00:00.000+0000", "2026-01-01T09:56:00.000+0000")
    assert e.final("2026-01-01T10:00:00.000+0000") == {
        "b": "2026-01-01T09:56:00.000+0000",
        "c": "2026-01-01T10:00:00.000+0000",
    }
    busy = _Edge({}, overlap_s=300)  # a mass update: too many rows in the window to keep
    for i in range(EDGE_MAX + 1):
        busy.add(f"id{i}", "2026-01-01T10:00:00.000+0000", "2026-01-01T10:00:00.000+0000")
    assert busy.final("2026-01-01T10:00:00.000+0000") is None
    other = _Edge({}, overlap_s=300)  # a stamp format it cannot shift: nothing kept
    other.add("x", "2026-01-01T10:00:00Z", None)
    assert other.final("2026-01-01T10:00:00Z") is None


def test_a_failed_describe_is_named_on_its_own_warning_line_not_only_in_the_skipped_list():
    import io

    from orgvault.cli import Progress, warn_unread_objects
    from orgvault.services.backup import SkippedObject

    stream = io.StringIO()
    skipped = [
        SkippedObject("AccountFeed", "feed"),
        SkippedObject("Account", "describe_failed: SERVER_UNAVAILABLE"),
        SkippedObject("AccountChangeEvent", "change_event"),
    ]
    warn_unread_objects(Progress(stream), skipped)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("WARNING: Account was NOT read this run")
    assert "SERVER_UNAVAILABLE" in lines[0]


_S1, _S2 = "2026-01-01T09:58:00.000+0000", "2026-01-01T10:00:00.000+0000"


def _probed_checkpoint(**cursor: object) -> object:
    from orgvault.domain.models import Checkpoint, ObjectState

    base = {
        "mode": "delta",
        "since": "2026-01-01T09:55:00Z",
        "count_check": True,
        "reconcile": False,
        "prev_records": 10,
        "sf_count": 10,
        "parent_edge": {"001A": _S1, "001B": _S2},
        "phase": "records",
        "read": None,
    }
    return Checkpoint(
        org="o",
        run_id="r",
        object_name="Account",
        state=ObjectState.PENDING,
        cursor={**base, **cursor},
        watermark=_S2,
    )


def _rows(*pairs: tuple[str, str]) -> list[dict[str, object]]:
    """A probe answer: the delta's records (every backup field), here only Id, stamp and a name."""
    return [{"Id": rid, "SystemModstamp": stamp, "Name": "n"} for rid, stamp in pairs]


@pytest.mark.parametrize(
    ("cursor", "probe", "why"),
    [
        ({}, None, "the probe failed or was not made"),
        (
            {},
            _rows(("001A", _S1), ("001B", _S2), ("001C", _S1)),
            "a row the parent never read (a late commit)",
        ),
        (
            {},
            _rows(("001A", _S1), ("001B", "2026-01-01T10:01:00.000+0000")),
            "a newer version (update, delete)",
        ),
        ({}, _rows(("001A", _S1)) * 3, "more rows than the parent edge holds"),
        ({"sf_count": 9}, _rows(("001A", _S1)), "the count moved (a purge)"),
        ({"sf_count": None}, _rows(("001A", _S1)), "no count"),
        ({"parent_edge": None}, [], "the parent kept no edge"),
        ({"parent_edge": {}}, [], "an empty edge"),
        ({"reconcile": True}, _rows(("001A", _S1)), "a reconciliation is due"),
        ({"count_check": False}, _rows(("001A", _S1)), "not count-checked"),
        ({"mode": "full"}, _rows(("001A", _S1)), "a full read"),
    ],
)
def test_an_object_is_only_unchanged_when_the_probe_proves_it(cursor, probe, why):
    from orgvault.services.backup import _unchanged

    assert _unchanged(_probed_checkpoint(**cursor), probe) is False, why


def test_an_unchanged_object_is_finished_as_a_delta_that_found_only_the_parents_rows():
    from orgvault.domain.models import ObjectState
    from orgvault.services.backup import _finished_unchanged, _unchanged

    cp = _probed_checkpoint()
    assert _unchanged(cp, _rows(("001A", _S1), ("001B", _S2))) and _unchanged(cp, [])
    done = _finished_unchanged(cp)
    assert done.state is ObjectState.DONE and done.next_seq == 0 and done.records == 0
    assert done.watermark == cp.watermark  # the parent's watermark, unchanged
    assert done.cursor["edge"] == cp.cursor["parent_edge"]  # what the next run compares with
    assert done.cursor["live_count"] == 10 and done.cursor["phase"] == "done"
    assert done.cursor["new_records"] == done.cursor["gone_records"] == 0


@given(st.lists(st.sampled_from(["/query?q=x", "/queryAll?q=x", "/query/01gX-2000", "/sobjects/A/describe"])))
def test_composite_batches_respect_salesforce_limits_in_the_fewest_calls(paths):
    from orgvault.adapters.salesforce_backup import _composite_batches

    batches = _composite_batches(paths)
    queries = sum(1 for p in paths if not p.startswith("/sobjects"))
    assert sorted(i for b in batches for i in b) == list(range(len(paths))), "every path once"
    assert all(len(b) <= 25 and sum(not paths[i].startswith("/sobjects") for i in b) <= 5 for b in batches)
    assert len(batches) == max(-(-queries // 5), -(-len(paths) // 25))
