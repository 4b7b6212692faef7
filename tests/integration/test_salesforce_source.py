"""SimpleSalesforceSource against the emulator: logins, REST and Bulk reads equal to the org's true
state, fall-back, re-login, retries, dropped connections, API budget, locators, blobs, TLS, secrets."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any

import pytest

import orgvault.adapters.salesforce as sfmod
from orgvault.adapters.salesforce import SimpleSalesforceSource, Tls12Adapter, check_url, translate_error
from orgvault.domain.models import AuthMethod, OrgConnection
from orgvault.domain.plan import ObjectPlan, Strategy, plan_object
from orgvault.domain.records import canonical_from_rest
from orgvault.errors import (
    ApiBudgetExhausted,
    BulkNotSupported,
    ConfigError,
    QueryLocatorExpired,
    SalesforceAuthError,
    SalesforceRequestError,
    SalesforceUnavailable,
)
from orgvault.ports import ObjectSchema

ALL_AUTH = [m.value for m in AuthMethod]


# --- helpers ------------------------------------------------------------------------------------


def plan_of(src: SimpleSalesforceSource, name: str) -> tuple[ObjectSchema, ObjectPlan]:
    entry = next(e for e in src.list_objects() if e["name"] == name)
    schema = src.describe(name)
    plan = plan_object(entry, schema)
    assert isinstance(plan, ObjectPlan), plan
    return schema, plan


def read_all(
    src: SimpleSalesforceSource, schema: ObjectSchema, plan: ObjectPlan, strategy: str, **kw: Any
) -> tuple[list[dict[str, Any]], int]:
    """Every record of a read, and the number of pages that carried records."""
    cursor: dict[str, Any] | None = src.start_read(schema, list(plan.fields), strategy=strategy, **kw)
    records: list[dict[str, Any]] = []
    pages = polls = 0
    while cursor is not None:
        page = src.read_page(cursor)
        if page.wait_seconds > 0 and not page.records:
            assert page.cursor == cursor  # polling hands back the same cursor
            polls += 1
            assert polls < 10_000
        else:
            pages += 1
        records.extend(page.records)
        cursor = page.cursor
    return records, pages


def by_id(records: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    out = {r["Id"]: {k: v for k, v in r.items() if k not in drop} for r in records}
    assert len(out) == len(records), "a record was read twice"
    return out


def _derived(name: str) -> set[str]:
    """Fields the emulator computes on read (formulas), whether or not describe says ``calculated``
    (Salesforce doesn't for e.g. Case.IsClosed)."""
    from salesforce_emulator.schema import builtin_objects

    obj = next((o for o in builtin_objects() if o.name == name), None)
    return {f.name for f in obj.fields if getattr(f, "formula", None)} if obj else set()


def truth(org: Any, plan: ObjectPlan) -> dict[str, dict[str, Any]]:
    """The org's true state in canonical form: stored fields, deleted rows included."""
    rows = list(org.true_records(plan.name, include_deleted=True))
    stored = set().union(*(r.keys() for r in rows)) if rows else set(plan.fields)
    specs = [s for s in plan.specs if s[0] in stored]
    not_stored = set(plan.fields) - stored
    assert not_stored <= set(plan.calculated_fields) | _derived(plan.name), not_stored
    return by_id([canonical_from_rest(r, specs) for r in rows])


def same_as_truth(records: list[dict[str, Any]], org: Any, plan: ObjectPlan) -> bool:
    expected = truth(org, plan)
    keep = set(next(iter(expected.values()), {})) or set(plan.fields)
    got = by_id(records, tuple(f for f in plan.fields if f not in keep))
    if got != expected:  # say where, not just that
        for rid in sorted(set(got) | set(expected)):
            if got.get(rid) != expected.get(rid):
                a, b = got.get(rid) or {}, expected.get(rid) or {}
                diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
                raise AssertionError(f"{plan.name} {rid}: read != true state: {str(diff)[:400]}")
    return True


def secrets_of(emu: Any, jwt_key: str) -> list[str]:
    f = emu.facts
    return [f.password, f.client_secret, f.refresh_token, f.access_token, jwt_key.splitlines()[1]]


def assert_no_secret(
    exc: BaseException, secrets: list[str], src: SimpleSalesforceSource | None = None
) -> None:
    values = list(secrets) + ([src._token] if src is not None and src._token else [])  # noqa: SLF001
    for text in (str(exc), repr(exc), str(exc.__cause__ or ""), str(exc.__context__ or "")):
        for secret in values:
            assert secret not in text


# --- login --------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ALL_AUTH)
def test_every_login_flow_reaches_the_org(
    emulator: Any, emulator_source: Callable[..., Any], auth: str
) -> None:
    src = emulator_source(emulator, auth)
    assert src.org_id() == emulator.facts.org_id
    names = {e["name"] for e in src.list_objects()}
    assert {"Account", "ContentVersion"} <= names
    assert src.logins == 1 and src.calls >= 1
    usage = src.api_usage()
    assert usage is not None and 0 < usage.used <= usage.total
    assert "Bearer" not in repr(src) and src._token not in repr(src)  # noqa: SLF001


def test_password_flow_through_oauth_when_a_connected_app_is_given(
    emulator: Any, emulator_login: Callable[..., Any]
) -> None:
    conn, creds = emulator_login(emulator, "password")
    creds.update(client_id=emulator.facts.client_id, client_secret=emulator.facts.client_secret)
    src = SimpleSalesforceSource(conn, creds)
    assert src.org_id() == emulator.facts.org_id


@pytest.mark.parametrize(
    ("auth", "key", "value"),
    [
        ("client-credentials", "client_secret", "not-the-secret-0001"),
        ("refresh-token", "refresh_token", "5Aep861-not-a-token-0002"),
        ("password", "password", "not-the-password-0003"),
        ("jwt", "username", "someone-else@example.com"),
    ],
)
def test_wrong_credentials_are_an_auth_error_without_secrets(
    emulator: Any, emulator_login: Callable[..., Any], jwt_private_key: str, auth: str, key: str, value: str
) -> None:
    conn, creds = emulator_login(emulator, auth)
    creds[key] = value
    src = SimpleSalesforceSource(conn, creds, sleep=lambda _s: None)
    with pytest.raises(SalesforceAuthError) as info:
        src.org_id()
    assert_no_secret(info.value, [*secrets_of(emulator, jwt_private_key), value], src)
    assert "credentials" in str(info.value) or "username" in str(info.value)


def test_a_bad_jwt_key_is_an_auth_error(emulator: Any, emulator_login: Callable[..., Any]) -> None:
    conn, creds = emulator_login(emulator, "jwt")
    creds["private_key"] = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"
    with pytest.raises(SalesforceAuthError, match="private key"):
        SimpleSalesforceSource(conn, creds).login()


def test_sf_property_is_a_working_simple_salesforce_client(
    emulator: Any, emulator_source: Callable[..., Any]
) -> None:
    src = emulator_source(emulator)
    result = src.sf.query("SELECT Id FROM Account LIMIT 3")
    assert len(result["records"]) == 3


# --- transport ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://example.com", "http://10.0.0.5:8080", "ftp://127.0.0.1", "", "example.my.salesforce.com"]
)
def test_only_https_or_loopback_http_is_accepted(url: str) -> None:
    with pytest.raises(ConfigError):
        check_url(url, "instance URL")
    conn = OrgConnection(name="x", instance_url=url, auth_method=AuthMethod.PASSWORD, login_url=url)
    with pytest.raises(ConfigError):
        SimpleSalesforceSource(conn, {"username": "u", "password": "p"})


def test_https_sessions_require_tls_1_2() -> None:
    conn = OrgConnection(
        name="x", instance_url="https://acme.my.salesforce.com", auth_method=AuthMethod.PASSWORD
    )
    src = SimpleSalesforceSource(conn, {"username": "u", "password": "p"})
    adapter = src._session.get_adapter("https://acme.my.salesforce.com/services/data")  # noqa: SLF001
    assert isinstance(adapter, Tls12Adapter)
    assert adapter.ssl_context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert adapter.ssl_context.verify_mode == ssl.CERT_REQUIRED


def test_reads_over_tls_from_an_emulator_with_its_own_ca(
    fresh_emulator: Callable[..., Any], emulator_login: Callable[..., Any]
) -> None:
    import requests

    emu = fresh_emulator(tls=True)
    conn, creds = emulator_login(emu, "client-credentials")
    untrusted = SimpleSalesforceSource(conn, creds, sleep=lambda _s: None, max_attempts=1)
    with pytest.raises(ConfigError, match="TLS"):
        untrusted.org_id()  # the emulator's CA is not trusted by default: refused, not silently accepted
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides ``verify``
    session.verify = emu.facts.ca_cert
    src = SimpleSalesforceSource(conn, creds, session=session)
    assert src.org_id() == emu.facts.org_id
    assert isinstance(session.get_adapter(emu.facts.instance_url + "/x"), Tls12Adapter)


# --- reads ----------------------------------------------------------------------------------------


def test_rest_reads_every_page_of_a_multi_page_object(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    emu = fresh_emulator(default_batch_size=7)
    src = emulator_source(emu, rest_batch_size=None)
    schema, plan = plan_of(src, "Account")
    records, pages = read_all(src, schema, plan, "rest")
    expected = truth(emu.org, plan)
    assert pages >= 3 and pages == -(-len(expected) // 7)
    assert same_as_truth(records, emu.org, plan)
    assert list(records[0]) == list(plan.fields)  # canonical key order


def test_bulk_read_equals_rest_read_equals_the_org_for_every_object(
    emulator: Any, emulator_source: Callable[..., Any]
) -> None:
    src = emulator_source(emulator, bulk_page_records=23)
    entries = {e["name"]: e for e in src.list_objects()}
    from orgvault.domain.plan import skip_reason

    checked = 0
    for name in sorted(entries):
        if skip_reason(entries[name]) is not None:
            continue
        schema = src.describe(name)
        plan = plan_object(entries[name], schema)
        assert isinstance(plan, ObjectPlan)
        rest, _ = read_all(src, schema, plan, "rest")
        try:
            bulk, _ = read_all(src, schema, plan, plan.strategy.value)
        except BulkNotSupported:
            bulk, _ = read_all(src, schema, plan, "rest")
        assert by_id(bulk) == by_id(rest), name  # calculated fields included: same value either way
        assert same_as_truth(rest, emulator.org, plan), name
        checked += 1
    assert checked >= 10


def test_bulk_pages_by_locator_and_a_page_can_be_replayed(
    emulator: Any, emulator_source: Callable[..., Any]
) -> None:
    src = emulator_source(emulator, bulk_page_records=5)
    schema, plan = plan_of(src, "Contact")
    cursor = src.start_read(schema, list(plan.fields), strategy="bulk")
    first = src.read_page(cursor)
    while first.wait_seconds and not first.records:
        first = src.read_page(first.cursor)  # type: ignore[arg-type]
    assert first.cursor is not None and len(first.records) == 5
    second = src.read_page(first.cursor)
    again = src.read_page(first.cursor)  # a crashed step replays its cursor: same page
    assert second.records == again.records and second.cursor == again.cursor
    assert {r["Id"] for r in second.records}.isdisjoint({r["Id"] for r in first.records})


def test_queryall_includes_deleted_rows_and_query_does_not(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    emu = fresh_emulator()
    src = emulator_source(emu)
    schema, plan = plan_of(src, "Account")
    victim = next(iter(truth(emu.org, plan)))
    emu.org.delete("Account", victim)
    for strategy in ("rest", "bulk"):
        everything = by_id(read_all(src, schema, plan, strategy)[0])
        live = by_id(read_all(src, schema, plan, strategy, include_deleted=False)[0])
        assert everything[victim]["IsDeleted"] is True
        assert victim not in live


def test_where_clause_restricts_the_read(emulator: Any, emulator_source: Callable[..., Any]) -> None:
    src = emulator_source(emulator)
    schema, plan = plan_of(src, "Account")
    all_records, _ = read_all(src, schema, plan, "rest")
    some_id = all_records[0]["Id"]
    for strategy in ("rest", "bulk"):
        records, _ = read_all(src, schema, plan, strategy, where=f"Id = '{some_id}'")
        assert [r["Id"] for r in records] == [some_id]


def test_bulk_polling_returns_the_same_cursor_until_the_job_is_done(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    emu = fresh_emulator(bulk_delay=0.3)
    src = emulator_source(emu, bulk_poll_seconds=0.05)
    schema, plan = plan_of(src, "Account")
    cursor = src.start_read(schema, list(plan.fields), strategy="bulk")
    page = src.read_page(cursor)
    assert page.records == [] and page.cursor == cursor and page.wait_seconds == 0.05
    records, _ = read_all(src, schema, plan, "bulk")
    assert same_as_truth(records, emu.org, plan)


# --- bulk refusals and failures --------------------------------------------------------------------


def test_bulk_refused_objects_and_fields_fall_back_to_rest(
    emulator: Any, emulator_source: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = emulator_source(emulator)
    schema, plan = plan_of(src, "Attachment")
    assert plan.strategy is Strategy.REST
    before = src.calls
    with pytest.raises(BulkNotSupported):
        src.start_read(schema, list(plan.fields), strategy="bulk")
    assert src.calls == before  # known refusal: no call spent
    # the server's own refusal (INVALIDENTITY) is BulkNotSupported too
    monkeypatch.setattr(sfmod, "BULK_UNSUPPORTED", frozenset())
    with pytest.raises(BulkNotSupported) as info:
        src.start_read(schema, list(plan.fields), strategy="bulk")
    assert info.value.error_code == "INVALIDENTITY"
    records, _ = read_all(src, schema, plan, "rest")
    assert same_as_truth(records, emulator.org, plan)
    cv_schema, cv_plan = plan_of(src, "ContentVersion")
    with pytest.raises(BulkNotSupported):
        src.start_read(cv_schema, [*cv_plan.fields, *cv_plan.file_fields], strategy="bulk")


def test_a_failed_bulk_job_is_a_request_error_with_its_message(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    emu = fresh_emulator()
    emu.faults.bulk_fail = True
    src = emulator_source(emu)
    schema, plan = plan_of(src, "Account")
    with pytest.raises(SalesforceRequestError) as info:
        read_all(src, schema, plan, "bulk")
    assert not isinstance(info.value, BulkNotSupported)
    assert "Account" in str(info.value) and "failed" in str(info.value)


# --- faults -----------------------------------------------------------------------------------------


def test_expired_sessions_mid_read_are_renewed(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any], jwt_private_key: str
) -> None:
    emu = fresh_emulator(default_batch_size=5)
    emu.faults.session_max_requests = 3
    for auth in ALL_AUTH:
        src = emulator_source(emu, auth, rest_batch_size=None, bulk_page_records=10)
        schema, plan = plan_of(src, "Account")
        for strategy in ("rest", "bulk"):
            records, _ = read_all(src, schema, plan, strategy)
            assert same_as_truth(records, emu.org, plan)
        assert src.logins >= 3, auth


def test_503s_are_retried_with_backoff(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    emu = fresh_emulator(default_batch_size=10)
    emu.faults.error_rate = 0.3
    emu.faults.seed = 7
    delays: list[float] = []
    src = emulator_source(
        emu, rest_batch_size=None, bulk_page_records=10, sleep=delays.append, max_attempts=8
    )
    schema, plan = plan_of(src, "Contact")
    for strategy in ("rest", "bulk"):
        records, _ = read_all(src, schema, plan, strategy)
        assert same_as_truth(records, emu.org, plan)
    assert src.retries > 0 and len(delays) == src.retries
    assert all(0 < d <= src.backoff_max for d in delays)


def test_persistent_503_gives_up_after_max_attempts(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    from salesforce_emulator.faults import FaultRule

    emu = fresh_emulator()
    delays: list[float] = []
    src = emulator_source(emu, max_attempts=4, backoff_base=1.0, sleep=delays.append, rng=lambda: 1.0)
    src.login()
    emu.faults.rules.append(FaultRule(pattern=r"/sobjects$", count=-1))
    with pytest.raises(SalesforceUnavailable):
        src.list_objects()
    assert src.calls == 4
    assert delays == [1.0, 2.0, 4.0]  # exponential (jitter pinned by rng=1.0)


def test_dropped_connections_mid_body_are_read_again(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    from salesforce_emulator.faults import FaultRule, RuleAction

    emu = fresh_emulator(default_batch_size=10)
    src = emulator_source(emu, rest_batch_size=None, bulk_page_records=15)
    schema, plan = plan_of(src, "Contact")
    emu.faults.rules.append(
        FaultRule(pattern=r"/results$", count=2, action=RuleAction.DROP, drop_after_bytes=300)
    )
    records, _ = read_all(src, schema, plan, "bulk")
    assert same_as_truth(records, emu.org, plan)
    emu.faults.rules.append(
        FaultRule(pattern=r"/query", count=2, action=RuleAction.DROP, drop_after_bytes=200)
    )
    records, _ = read_all(src, schema, plan, "rest")
    assert same_as_truth(records, emu.org, plan)
    assert src.retries >= 4


def test_allowance_exhausted_is_api_budget_exhausted_not_retried(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any], jwt_private_key: str
) -> None:
    emu = fresh_emulator(daily_limit=6)
    src = emulator_source(emu, budget_share=1.0)
    with pytest.raises(ApiBudgetExhausted) as info:
        for _ in range(10):
            src.describe("Account")
    assert emu.usage.used == 6
    assert_no_secret(info.value, secrets_of(emu, jwt_private_key), src)
    # Salesforce's own refusal (another client used the allowance up): not retried either
    emu.faults.limit_exceeded = True
    emu.usage.reset()
    other = emulator_source(emu)
    with pytest.raises(ApiBudgetExhausted, match="REQUEST_LIMIT_EXCEEDED"):
        other.list_objects()
    assert other.calls == 1


def test_budget_share_stops_before_the_call_that_would_exceed_it(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    emu = fresh_emulator(daily_limit=20)
    src = emulator_source(emu, budget_share=0.5)
    with pytest.raises(ApiBudgetExhausted, match="50%"):
        for _ in range(30):
            src.describe("Account")
    assert emu.usage.used == 10  # exactly the share: the 11th call was never sent
    assert src.api_usage() is not None and src.api_usage().used == 10  # type: ignore[union-attr]


def test_expired_query_locator_is_query_locator_expired(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    emu = fresh_emulator(default_batch_size=5)
    src = emulator_source(emu, rest_batch_size=None)
    schema, plan = plan_of(src, "Account")
    cursor = src.start_read(schema, list(plan.fields), strategy="rest")
    page = src.read_page(cursor)
    assert page.cursor is not None
    emu.faults.invalid_locator = True
    with pytest.raises(QueryLocatorExpired):
        src.read_page(page.cursor)


# --- blobs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "field"), [("ContentVersion", "VersionData"), ("Attachment", "Body"), ("Document", "Body")]
)
def test_blob_downloads_equal_the_org_bytes(
    emulator: Any, emulator_source: Callable[..., Any], obj: str, field: str
) -> None:
    src = emulator_source(emulator)
    schema, plan = plan_of(src, obj)
    assert field in plan.file_fields
    records, _ = read_all(src, schema, plan, "rest")
    assert records
    from salesforce_emulator import SalesforceError

    compared = 0
    for rec in records[:12]:
        try:
            expected = bytes(emulator.org.read_blob(obj, rec["Id"], field))
        except SalesforceError:  # no body (a URL Document, a deleted record): Salesforce says 404
            with pytest.raises(SalesforceRequestError) as info:
                b"".join(src.download(obj, rec["Id"], field))
            assert info.value.status == 404
            continue
        assert b"".join(src.download(obj, rec["Id"], field)) == expected
        compared += 1
    assert compared > 0


def test_blob_download_survives_a_dropped_connection(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    from salesforce_emulator.faults import FaultRule, RuleAction

    emu = fresh_emulator()
    src = emulator_source(emu)
    schema, plan = plan_of(src, "ContentVersion")
    records, _ = read_all(src, schema, plan, "rest")
    rec = max(records, key=lambda r: r.get("ContentSize") or 0)
    expected = bytes(emu.org.read_blob("ContentVersion", rec["Id"], "VersionData"))
    assert len(expected) > 100
    emu.faults.rules.append(
        FaultRule(
            pattern=r"/VersionData$", count=2, action=RuleAction.DROP, drop_after_bytes=len(expected) // 2
        )
    )
    assert b"".join(src.download("ContentVersion", rec["Id"], "VersionData")) == expected
    assert src.retries == 2


def test_download_rejects_malformed_ids_without_a_call(
    emulator: Any, emulator_source: Callable[..., Any]
) -> None:
    src = emulator_source(emulator)
    with pytest.raises(SalesforceRequestError):
        src.download("ContentVersion", "../../limits", "VersionData")
    with pytest.raises(SalesforceRequestError):
        src.download("Content/Version", "068000000000001AAA", "VersionData")
    assert src.calls == 0


# --- the one place that maps errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "message", "bulk", "expected"),
    [
        (403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", False, ApiBudgetExhausted),
        (400, "INVALID_QUERY_LOCATOR", "invalid query locator", False, QueryLocatorExpired),
        (401, "INVALID_SESSION_ID", "Session expired", False, SalesforceAuthError),
        (503, "SERVER_UNAVAILABLE", "busy", False, SalesforceUnavailable),
        (500, "", "oops", False, SalesforceUnavailable),
        (400, "QUERY_TIMEOUT", "too long", False, SalesforceUnavailable),
        (
            400,
            "INVALIDENTITY",
            "Entity 'Attachment' is not supported by the Bulk API.",
            True,
            BulkNotSupported,
        ),
        (400, "API_ERROR", "Compound fields are not supported by the Bulk API", True, BulkNotSupported),
        (400, "INVALIDENTITY", "x", False, SalesforceRequestError),
        (400, "MALFORMED_QUERY", "unexpected token", True, SalesforceRequestError),
        (404, "NOT_FOUND", "no such record", False, SalesforceRequestError),
    ],
)
def test_translate_error(status: int, code: str, message: str, bulk: bool, expected: type[Exception]) -> None:
    err = translate_error(status, code, message, bulk=bulk)
    assert type(err) is expected
    if isinstance(err, SalesforceRequestError):
        assert err.error_code == code and err.status == status


def test_no_secret_reaches_logs_or_errors_across_faults(
    fresh_emulator: Callable[..., Any],
    emulator_source: Callable[..., Any],
    emulator_login: Callable[..., Any],
    jwt_private_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from salesforce_emulator.faults import FaultRule, RuleAction

    caplog.set_level(logging.DEBUG)
    emu = fresh_emulator(default_batch_size=10)
    emu.faults.session_max_requests = 2
    emu.faults.error_rate = 0.2
    errors: list[BaseException] = []
    sources = []
    for auth in ALL_AUTH:
        src = emulator_source(emu, auth, rest_batch_size=None, max_attempts=8)
        sources.append(src)
        schema, plan = plan_of(src, "Account")
        emu.faults.rules.append(
            FaultRule(pattern=r"/query", count=1, action=RuleAction.DROP, drop_after_bytes=50)
        )
        read_all(src, schema, plan, "rest")
        emu.faults.invalid_locator = True
        try:
            read_all(src, schema, plan, "rest")
        except QueryLocatorExpired as exc:
            errors.append(exc)
        emu.faults.invalid_locator = False
        conn, creds = emulator_login(emu, auth)
        creds = {
            k: (v + "x" if k in ("password", "client_secret", "refresh_token", "username") else v)
            for k, v in creds.items()
        }
        try:
            SimpleSalesforceSource(conn, creds, sleep=lambda _s: None).login()
        except SalesforceAuthError as exc:
            errors.append(exc)
    assert len(errors) == 2 * len(ALL_AUTH)
    secrets = secrets_of(emu, jwt_private_key) + [s._token for s in sources if s._token]  # noqa: SLF001
    for exc in errors:
        assert_no_secret(exc, secrets)
    for secret in secrets:
        assert secret not in caplog.text
    assert "retrying" in caplog.text or "logging in again" in caplog.text  # the faults did happen


def test_unreachable_salesforce_is_unavailable_after_bounded_attempts(
    emulator_login: Callable[..., Any],
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = OrgConnection(
        name="x",
        instance_url=f"http://127.0.0.1:{port}",
        login_url=f"http://127.0.0.1:{port}",
        auth_method=AuthMethod.CLIENT_CREDENTIALS,
    )
    delays: list[float] = []
    src = SimpleSalesforceSource(
        conn, {"client_id": "id", "client_secret": "secret-value"}, sleep=delays.append
    )
    with pytest.raises(SalesforceUnavailable, match="cannot reach") as info:
        src.org_id()
    assert src.logins == src.max_attempts and len(delays) == src.max_attempts - 1
    assert "secret-value" not in str(info.value)


def test_malformed_answers_are_clear_request_errors(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    from salesforce_emulator.faults import FaultRule

    emu = fresh_emulator()
    src = emulator_source(emu)
    src.login()
    # a 200 whose body is not what describeGlobal returns
    emu.faults.rules.append(FaultRule(pattern=r"/sobjects$", count=1, status=200, error_code="WEIRD"))
    with pytest.raises(SalesforceRequestError, match="sobjects") as info:
        src.list_objects()
    assert info.value.error_code == "MALFORMED"
    schema = src.describe("Account")
    before = src.calls
    with pytest.raises(SalesforceRequestError, match="no field"):
        src.start_read(schema, ["Id", "NoSuchField__c"], strategy="rest")
    with pytest.raises(ConfigError):
        src.start_read(schema, ["Id"], strategy="soap")
    with pytest.raises(SalesforceRequestError, match="cursor"):
        src.read_page({"kind": "rest", "v": 99})
    assert src.calls == before


def test_objects_that_need_a_parent_filter_are_read_in_batches_of_parent_ids(
    emulator: Any, emulator_source: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sfmod, "FILTER_BATCH", 1)
    src = emulator_source(emulator, rest_batch_size=None)
    schema, plan = plan_of(src, "ContentDocumentLink")
    assert plan.strategy is Strategy.REST
    with pytest.raises(BulkNotSupported):
        src.start_read(schema, list(plan.fields), strategy="bulk")
    cursor: dict[str, Any] | None = src.start_read(schema, list(plan.fields), strategy="rest")
    records: list[dict[str, Any]] = []
    pages = 0
    while cursor is not None:
        page = src.read_page(cursor)
        assert src.read_page(cursor).records == page.records  # a replayed cursor reads the same page
        records.extend(page.records)
        cursor = page.cursor
        pages += 1
    documents = list(emulator.org.true_records("ContentDocument", include_deleted=True))
    assert pages == len(documents) >= 2 and records  # one query per parent id
    assert same_as_truth(records, emulator.org, plan)
    some = records[0]
    filtered, _ = read_all(src, schema, plan, "rest", where=f"Id = '{some['Id']}'")
    assert [r["Id"] for r in filtered] == [some["Id"]]


def test_a_read_already_filtered_by_parent_ids_is_one_query_per_page(
    emulator: Any, emulator_source: Callable[..., Any]
) -> None:
    """The backup batches ContentDocumentLink by ContentDocumentId itself: such a read is sent as
    it is (one query), not wrapped in another pass over every parent id (which cost a read of all
    parent ids plus one query per batch, for every batch: quadratic in the number of files)."""
    src = emulator_source(emulator, rest_batch_size=None)
    schema, plan = plan_of(src, "ContentDocumentLink")
    docs = [d["Id"] for d in emulator.org.true_records("ContentDocument", include_deleted=True)][:3]
    where = "ContentDocumentId IN (" + ", ".join(f"'{d}'" for d in docs) + ")"
    before = src.calls
    records, _ = read_all(src, schema, plan, "rest", where=where)
    assert src.calls - before == 1
    want = [
        r
        for r in emulator.org.true_records("ContentDocumentLink", include_deleted=True)
        if r["ContentDocumentId"] in docs
    ]
    assert sorted(r["Id"] for r in records) == sorted(r["Id"] for r in want) and want


# --- prefetch of the next Bulk page ------------------------------------------------------------


def test_prefetched_bulk_pages_give_the_same_records_and_calls(
    emulator: Any, emulator_source: Callable[..., Any]
) -> None:
    """With ``prefetch_pages`` the next results page downloads while the caller works on this one:
    the records, their order and the number of API calls are those of a plain read."""
    plain = emulator_source(emulator, bulk_page_records=7)
    eager = emulator_source(emulator, bulk_page_records=7, prefetch_pages=True)
    for src in (plain, eager):
        src.login()
    schema, plan = plan_of(plain, "Contact")
    c0 = plain.calls
    expected, pages = read_all(plain, schema, plan, "bulk")
    plain_calls = plain.calls - c0
    c0 = eager.calls
    served: list[int] = []
    take = eager._take_prefetched_bulk

    def spy(cursor: Any, specs: Any) -> Any:
        page = take(cursor, specs)
        served.append(page is not None)
        return page

    eager._take_prefetched_bulk = spy  # type: ignore[method-assign]
    got, eager_pages = read_all(eager, schema, plan, "bulk")
    assert pages >= 3 and eager_pages == pages
    assert got == expected and [list(r) for r in got] == [list(r) for r in expected]
    assert same_as_truth(got, emulator.org, plan)
    assert eager.calls - c0 == plain_calls
    assert sum(served) == pages - 1  # every page after the first came from the prefetch


def test_a_prefetched_page_cut_short_is_read_again(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    from salesforce_emulator.faults import FaultRule, RuleAction

    emu = fresh_emulator(default_batch_size=10)
    src = emulator_source(emu, rest_batch_size=None, bulk_page_records=15, prefetch_pages=True)
    schema, plan = plan_of(src, "Contact")
    emu.faults.rules.append(
        FaultRule(pattern=r"/results$", count=3, action=RuleAction.DROP, drop_after_bytes=300)
    )
    records, _ = read_all(src, schema, plan, "bulk")
    assert same_as_truth(records, emu.org, plan)
    assert len(by_id(records)) == len(truth(emu.org, plan))


# --- prefetch of the next REST query page --------------------------------------------------------


def plain_and_eager(fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]) -> Any:
    """An emulator with 10-record REST pages, a source without and one with ``prefetch_pages``
    (both logged in), and Contact's schema and plan."""
    emulator = fresh_emulator(default_batch_size=10)
    plain = emulator_source(emulator, rest_batch_size=None)
    eager = emulator_source(emulator, rest_batch_size=None, prefetch_pages=True)
    for src in (plain, eager):
        src.login()
    schema, plan = plan_of(plain, "Contact")
    return emulator, plain, eager, schema, plan


def served_from_prefetch(src: Any) -> list[bool]:
    """Whether each page ``src`` takes from its prefetcher was there (appended as it reads)."""
    served: list[bool] = []
    take = src._ahead.take

    def spy(read: str, page: str) -> Any:
        got = take(read, page)
        served.append(got is not None)
        return got

    src._ahead.take = spy
    return served


def test_prefetched_rest_pages_give_the_same_records_and_calls(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    """A REST query read with ``prefetch_pages`` asks for each next page (its nextRecordsUrl) while
    the caller works on this one: the same records in the same order, the same number of calls, and
    every page after the first served from the prefetch."""
    emulator, plain, eager, schema, plan = plain_and_eager(fresh_emulator, emulator_source)
    c0 = plain.calls
    expected, pages = read_all(plain, schema, plan, "rest")
    plain_calls = plain.calls - c0
    c0 = eager.calls
    served = served_from_prefetch(eager)
    got, eager_pages = read_all(eager, schema, plan, "rest")
    assert pages >= 3 and eager_pages == pages
    assert got == expected and [list(r) for r in got] == [list(r) for r in expected]
    assert same_as_truth(got, emulator.org, plan)
    assert eager.calls - c0 == plain_calls
    assert served == [False] + [True] * (pages - 1)  # the first page is asked for, not prefetched


def test_a_failed_rest_prefetch_is_read_again(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    """Query-more answers that fail (503, a connection dropped mid-body) while fetched ahead are
    simply read again the ordinary way: every record once, none lost."""
    from salesforce_emulator.faults import FaultRule, RuleAction

    emu = fresh_emulator(default_batch_size=10)
    src = emulator_source(emu, rest_batch_size=None, prefetch_pages=True)
    schema, plan = plan_of(src, "Contact")
    emu.faults.rules.append(FaultRule(pattern=r"/query/", count=2))  # 503
    emu.faults.rules.append(
        FaultRule(pattern=r"/query/", count=2, action=RuleAction.DROP, drop_after_bytes=300)
    )
    records, pages = read_all(src, schema, plan, "rest")
    assert pages >= 3
    assert same_as_truth(records, emu.org, plan)
    assert len(by_id(records)) == len(truth(emu.org, plan))


def test_prefetch_holds_a_bounded_number_of_reads(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    """Many reads started at once (as an incremental's first pages are) fetch ahead for at most
    ``PREFETCH_READS_MAX`` of them; the others are read the ordinary way, and all are complete."""
    from orgvault.adapters.salesforce import PREFETCH_READS_MAX

    emulator = fresh_emulator(default_batch_size=10)
    src = emulator_source(emulator, rest_batch_size=None, prefetch_pages=True)
    src.login()
    schema, plan = plan_of(src, "Contact")
    n = PREFETCH_READS_MAX + 2
    cursors = [src.start_read(schema, list(plan.fields), strategy="rest") for _ in range(n)]
    firsts = [src.read_page(c) for c in cursors]
    assert all(p.cursor is not None for p in firsts)
    assert src._ahead.reads() == PREFETCH_READS_MAX
    expected = truth(emulator.org, plan)
    for first in firsts:
        records, cursor = list(first.records), first.cursor
        while cursor is not None:
            page = src.read_page(cursor)
            records += page.records
            cursor = page.cursor
        assert len(by_id(records)) == len(expected)
    assert src._ahead.reads() == 0 and src._ahead.held_bytes == 0


def test_a_read_started_ahead_is_served_from_its_prefetch(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    """``prefetch_read`` (used for the next batch of a filter-required object) sends the read's
    first query at once, and the pages after it follow on their own; the reader takes every page
    from there: same records, not one extra call. Without ``prefetch_pages`` it does nothing."""
    emulator, plain, eager, schema, plan = plain_and_eager(fresh_emulator, emulator_source)
    where = "LastName != null"
    c0 = plain.calls
    plain.prefetch_read(plain.start_read(schema, list(plan.fields), strategy="rest", where=where))
    assert plain.calls == c0 and plain._ahead.reads() == 0
    expected, pages = read_all(plain, schema, plan, "rest", where=where)
    plain_calls = plain.calls - c0

    cursor = eager.start_read(schema, list(plan.fields), strategy="rest", where=where)
    c0 = eager.calls
    eager.prefetch_read(cursor)
    assert eager._ahead.reads() == 1
    served = served_from_prefetch(eager)
    records: list[dict[str, Any]] = []
    next_cursor: dict[str, Any] | None = cursor
    while next_cursor is not None:
        page = eager.read_page(next_cursor)
        records += page.records
        next_cursor = page.cursor
    assert pages >= 3 and served == [True] * pages  # the first page too
    assert records == expected and eager.calls - c0 == plain_calls


def test_a_long_rest_read_runs_ahead_of_its_reader_within_the_depth(
    fresh_emulator: Callable[..., Any], emulator_source: Callable[..., Any]
) -> None:
    """A REST read fetched ahead goes on by itself from each answer to the next, up to
    ``PREFETCH_DEPTH`` pages ahead of a reader that is busy elsewhere, and no further; the reader
    then gets every page from there, and the calls are those of a plain read."""
    from orgvault.adapters.salesforce import PREFETCH_DEPTH

    emulator, plain, eager, schema, plan = plain_and_eager(fresh_emulator, emulator_source)
    c0 = plain.calls
    expected, pages = read_all(plain, schema, plan, "rest")
    plain_calls = plain.calls - c0
    assert pages > PREFETCH_DEPTH + 2

    c0 = eager.calls
    first = eager.read_page(eager.start_read(schema, list(plan.fields), strategy="rest"))
    assert first.cursor is not None
    read = first.cursor["next"].rsplit("/", 1)[-1].rsplit("-", 1)[0]
    deadline = time.monotonic() + 10
    while eager._ahead.pages(f"rest:{read}") < PREFETCH_DEPTH and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # room for a page too many, if the bound did not hold
    assert eager._ahead.pages(f"rest:{read}") == PREFETCH_DEPTH
    assert eager.calls - c0 == 1 + PREFETCH_DEPTH
    records, cursor = list(first.records), first.cursor
    while cursor is not None:
        page = eager.read_page(cursor)
        records += page.records
        cursor = page.cursor
    assert records == expected and eager.calls - c0 == plain_calls
    assert eager._ahead.reads() == 0 and eager._ahead.held_bytes == 0
