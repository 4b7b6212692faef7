"""``SalesforceSource`` on simple-salesforce: login, describe, REST/Bulk 2.0 reads, blob downloads.

Contract (see :class:`orgvault.ports.SalesforceSource`):

* **Login** (lazy: the first call logs in; :meth:`SimpleSalesforceSource.login` forces it). Credential
  keys per :class:`AuthMethod` (the same names ``orgvault.services.orgs.REQUIRED_SECRETS`` checks):

  - ``jwt``: ``consumer_key``, ``username``, ``private_key`` (PEM); optional ``audience`` (default: the
    login URL, e.g. ``https://login.salesforce.com``).
  - ``client-credentials``: ``client_id``, ``client_secret``. Sent to the login URL's token endpoint,
    or to the instance's (My Domain) when the login URL is the generic login/test host.
  - ``refresh-token``: ``client_id``, ``refresh_token``; optional ``client_secret``.
  - ``password``: ``username``, ``password``, optional ``security_token``. With ``client_id`` (or
    ``consumer_key``) and ``client_secret``: the OAuth username-password grant; without: the SOAP
    partner ``login`` call.

  The HTTP exchanges are done here rather than through ``simple_salesforce.SalesforceLogin``
  because that helper hard-codes ``https://{domain}.salesforce.com`` (no My Domain login host, no
  local emulator) and reports a 503 from the token endpoint as bad credentials. The session is then
  handed to ``simple_salesforce.Salesforce`` (``session_id`` + ``instance_url``): :attr:`sf` is a
  ready client for code that wants simple-salesforce's own API (e.g. restore).
* **Transport**: ``https://`` with TLS 1.2 or newer, certificate verified; ``http://`` only for a
  loopback host (the local emulator), for which https URLs that simple-salesforce builds are rewritten
  to http. Anything else is a ``ConfigError``, and so is a failed TLS handshake (untrusted
  certificate, TLS < 1.2): retrying cannot fix it.
* **Retries**: 5xx, connection errors, time-outs and bodies cut off mid-way are retried with
  exponential backoff and jitter, at most ``max_attempts`` times, then ``SalesforceUnavailable``. An
  expired session (401) triggers one re-login and one retry; a second 401 is ``SalesforceAuthError``.
* **API budget**: ``Sforce-Limit-Info`` is read from every response (:meth:`api_usage`). Before each
  call, if ``used + 1`` would exceed ``budget_share × total``, ``ApiBudgetExhausted`` is raised and
  no call is made. ``REQUEST_LIMIT_EXCEEDED`` is ``ApiBudgetExhausted`` too. :attr:`calls` counts
  every request sent to the REST/Bulk API (logins are counted apart, in :attr:`logins`).
* **Errors** are translated in one place (:func:`translate_error`); messages never contain tokens,
  passwords, keys or other credential values (they are scrubbed even from Salesforce's own text).
* **Requests** go through ``sf.session`` with the session's bearer token but not through
  ``Salesforce.query``/``query_more``/``_call_salesforce``: those re-login only for flows they ran
  themselves, read ``Sforce-Limit-Info`` only from successful answers, don't retry 503s or dropped
  bodies, and return whole results where a resumable page per call is needed. One wrapper
  (``_request``) does budget, counting, re-login, retry and translation for every call.
* **Reads** are resumable: every cursor is plain JSON, and ``read_page(cursor)`` may be repeated
  after a crash (REST: the ``nextRecordsUrl``; Bulk: job id + locator). Records come back in the
  canonical form of :mod:`orgvault.domain.records`.
"""

from __future__ import annotations

import codecs
import csv
import http.client
import io
import itertools
import json
import logging
import operator
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import orjson
import requests
import urllib3
from requests.adapters import HTTPAdapter

from orgvault.adapters.salesforce_prefetch import PagePrefetcher, Prefetched
from orgvault.domain.models import AuthMethod, OrgConnection
from orgvault.domain.plan import BULK_UNSUPPORTED, FILTER_REQUIRED, soql
from orgvault.domain.records import (
    COMPOUND_TYPES,
    CsvRowMapper,
    FieldSpec,
    RestRecordMapper,
    field_specs,
)
from orgvault.errors import (
    ApiBudgetExhausted,
    BulkNotSupported,
    ConfigError,
    OrgVaultError,
    QueryLocatorExpired,
    SalesforceAuthError,
    SalesforceRequestError,
    SalesforceUnavailable,
)
from orgvault.ports import ApiUsage, FieldInfo, ObjectSchema, RecordPage

if TYPE_CHECKING:  # simple-salesforce (and its SOAP stack: zeep, lxml) is imported only when used:
    from simple_salesforce import Salesforce  # ~10 MB and ~70 ms in every backup worker otherwise

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_GENERIC_LOGIN_HOSTS = frozenset({"login.salesforce.com", "test.salesforce.com"})
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ID_RE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_CSV_BATCH = 2000  # Bulk CSV rows converted at a time
_CSV_READ = 1 << 18  # bytes of a results body read (and decoded) at a time
# ``prefetch_pages`` bounds (see ``salesforce_prefetch``): reads fetched ahead at once, pages ahead of
# the reader per REST read (a Bulk read: one), and answer bytes held ahead across reads.
PREFETCH_READS_MAX = 8
PREFETCH_DEPTH = 4
PREFETCH_BYTES = 32 << 20


def _csv_lines(raw: Any) -> Iterator[str]:
    """The text lines of a UTF-8 (optionally BOM-prefixed) binary stream, each ending in ``\n``
    (``\r\n`` kept whole; the last line as it ends), read in large blocks.

    What ``csv.reader`` needs, without ``io.TextIOWrapper`` (whose per-line checks of the underlying
    HTTP stream's ``closed`` property cost more than parsing the line). Only ``\n`` splits lines —
    never ``str.splitlines`` (it also splits on ``\x0b``, ``\x1c``, ``\u2028``…, which would cut an
    unquoted field in two). ``UnicodeDecodeError`` on bytes that are not UTF-8."""
    decode = codecs.getincrementaldecoder("utf-8-sig")("strict").decode
    add, repeat = operator.add, itertools.repeat
    tail = ""
    while data := raw.read(_CSV_READ):
        lines = (tail + decode(data)).split("\n")
        tail = lines.pop()
        yield from map(add, lines, repeat("\n"))
    tail += decode(b"", True)
    if tail:
        yield tail


_LIMIT_RE = re.compile(r"api-usage=(\d+)/(\d+)")
CURSOR_VERSION = 1
FILTER_BATCH = 200  # parent ids per query of a filter-required object (keeps the GET URL short)

# Transport failures worth a retry: refused/reset connections, time-outs, bodies cut short.
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


class _Truncated(Exception):
    """A response body ended early or did not parse as a whole: read it again."""


_BODY_RETRY: tuple[type[BaseException], ...] = (_Truncated, *_TRANSPORT_ERRORS)
_UNREADABLE: tuple[type[BaseException], ...] = (ValueError, *_TRANSPORT_ERRORS)


# --- transport ---------------------------------------------------------------------------------


def check_url(url: str, what: str) -> str:
    """``url`` without a trailing slash if it is ``https://host`` or ``http://<loopback>``; else
    ``ConfigError``."""
    parsed = urlparse(url or "")
    host = (parsed.hostname or "").lower()
    if parsed.scheme == "https" and host:
        return f"https://{parsed.netloc}"
    if parsed.scheme == "http" and host in LOOPBACK_HOSTS:
        return f"http://{parsed.netloc}"
    raise ConfigError(
        f"{what} must be an https:// URL (http:// only for a local emulator on a loopback host)"
    )


_TLS_CONTEXT: ssl.SSLContext | None = None
_TLS_LOCK = threading.Lock()


def _tls12_context() -> ssl.SSLContext:
    """One verifying, TLS 1.2+ client context per process: loading the CA store costs ~20 ms, and
    every source (each run, each warm Lambda invocation) used to load it again. Never modified
    after creation, so sharing it between sessions and threads is safe."""
    global _TLS_CONTEXT
    with _TLS_LOCK:
        if _TLS_CONTEXT is None:
            ctx = ssl.create_default_context()
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            _TLS_CONTEXT = ctx
        return _TLS_CONTEXT


class Tls12Adapter(HTTPAdapter):
    """An HTTPS adapter that refuses anything older than TLS 1.2 (certificates still verified)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ssl_context = _tls12_context()
        super().__init__(*args, **kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self.ssl_context
        super().init_poolmanager(*args, **kwargs)


class LoopbackRewriteAdapter(HTTPAdapter):
    """Sends ``https://<loopback>:PORT`` requests as ``http://`` (simple-salesforce always builds
    https URLs; the local emulator speaks plain http). Mounted only for loopback origins."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if request.url and request.url.startswith("https://"):
            request.url = "http://" + request.url[len("https://") :]
        return super().send(request, *args, **kwargs)


def _cache_environment(session: requests.Session) -> None:
    """Keep ``requests``' environment lookup (proxy variables, ``no_proxy``, CA bundle) per origin.

    ``requests`` repeats it on every request by walking ``os.environ`` (about 0.4 ms, more than the
    rest of a small GET's client work); the environment does not change while a backup runs. Calls
    with explicit ``proxies`` are not cached."""
    if getattr(session, "_orgvault_environment_cached", False):
        return
    original = session.merge_environment_settings
    cache: dict[tuple[Any, ...], dict[str, Any]] = {}

    def merged(url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        if proxies:
            return original(url, proxies, stream, verify, cert)
        parsed = urlparse(url)
        key = (parsed.scheme, parsed.netloc, stream, verify, cert)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = original(url, {}, stream, verify, cert)
        return {**hit, "proxies": dict(hit["proxies"])}

    session.merge_environment_settings = merged  # type: ignore[method-assign]
    session._orgvault_environment_cached = True  # type: ignore[attr-defined]


def _mount_transport(session: requests.Session, origins: Sequence[str], *, own: bool) -> None:
    if own:
        session.mount("https://", Tls12Adapter())
    for origin in origins:
        parsed = urlparse(origin)
        if parsed.scheme == "http":
            session.mount(f"https://{parsed.netloc}", LoopbackRewriteAdapter())
        elif not own:
            session.mount(origin, Tls12Adapter())


# --- error translation (the one place) ---------------------------------------------------------


def _error_parts(body: Any) -> tuple[str, str]:
    """(errorCode, message) from a Salesforce error body (array, OAuth dict or text)."""
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        first = body[0]
        return str(first.get("errorCode") or ""), str(first.get("message") or "")
    if isinstance(body, Mapping):
        if "error" in body:
            return str(body.get("error") or ""), str(body.get("error_description") or "")
        return str(body.get("errorCode") or ""), str(body.get("message") or "")
    return "", str(body or "")[:300]


def translate_error(status: int, error_code: str, message: str, *, bulk: bool = False) -> OrgVaultError:
    """Map an HTTP status and Salesforce ``errorCode`` to the orgvault exception tree. ``message``
    must already be scrubbed of secrets."""
    code = (error_code or "").upper()
    text = f"Salesforce answered {status} {code or 'error'}: {message}".strip()
    if code == "REQUEST_LIMIT_EXCEEDED":
        return ApiBudgetExhausted(f"{text} — the org's daily API allowance is used up; the run resumes later")
    if code in ("INVALID_QUERY_LOCATOR", "INVALIDLOCATOR", "INVALID_LOCATOR"):
        return QueryLocatorExpired(
            f"{text} — the query cursor expired; restart the object from its checkpoint"
        )
    if status == 401 or code in ("INVALID_SESSION_ID", "INVALID_AUTH_HEADER"):
        return SalesforceAuthError(f"{text} — the session was refused; check the org's credentials")
    if status >= 500 or code in ("SERVER_UNAVAILABLE", "QUERY_TIMEOUT"):
        return SalesforceUnavailable(text)
    low = message.lower()
    if bulk and (
        code in ("INVALIDENTITY", "FEATURENOTENABLED", "INVALID_TYPE_FOR_OPERATION")
        or (code == "API_ERROR" and "not supported" in low)
        or "not supported" in low
    ):
        return BulkNotSupported(
            f"{text} — read this object through REST instead", error_code=code, status=status
        )
    return SalesforceRequestError(text, error_code=code, status=status)


# --- the source --------------------------------------------------------------------------------


class SimpleSalesforceSource:
    """Read access to one org (see the module docstring for the contract). Not thread-safe: use
    one instance per thread (they may share a ``session``).

    ``session``: an optional ``requests.Session`` (e.g. one that trusts the emulator's CA); one is
    built when none is given. ``rest_batch_size`` is sent as the ``Sforce-Query-Options`` batch-size
    hint (``None``: no hint, the server's default). ``sleep`` and ``rng`` exist for tests (no real
    waiting). ``prefetch_pages``: when a page (Bulk results or a REST query answer) has a next page,
    start downloading it on a background thread at once, so Salesforce produces page N+1 while the
    caller seals page N; a REST read goes on ahead by itself up to ``PREFETCH_DEPTH`` pages (see
    ``orgvault.adapters.salesforce_prefetch`` for the bounds). The calls are made (and counted) even
    if the caller never asks for those pages: enable it where reads run to the end (local mode), not
    in a step that may stop after any page (a Lambda step would waste calls on every invocation)."""

    def __init__(
        self,
        connection: OrgConnection,
        credentials: Mapping[str, str],
        *,
        session: requests.Session | None = None,
        budget_share: float = 0.8,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        bulk_page_records: int = 10_000,
        bulk_poll_seconds: float = 5.0,
        rest_batch_size: int | None = 2000,
        timeout: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        prefetch_pages: bool = False,
    ) -> None:
        if not 0 < budget_share <= 1:
            raise ConfigError("budget_share must be in (0, 1]")
        if max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")
        self.connection = connection
        self._instance = check_url(connection.instance_url, "instance URL")
        self._login_url = check_url(connection.login_url or connection.instance_url, "login URL")
        self._creds = {k: str(v) for k, v in credentials.items() if v is not None}
        try:
            self._auth = AuthMethod(connection.auth_method)
        except ValueError:
            raise ConfigError(
                f"unknown auth method {connection.auth_method!r} (use {', '.join(m.value for m in AuthMethod)})"
            ) from None
        self._version = str(connection.api_version or "59.0").lstrip("v")
        self._session = session or requests.Session()
        _cache_environment(self._session)
        _mount_transport(self._session, [self._instance, self._login_url], own=session is None)
        self.budget_share = budget_share
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.bulk_page_records = bulk_page_records
        self.bulk_poll_seconds = bulk_poll_seconds
        self.rest_batch_size = rest_batch_size
        self.timeout = timeout
        self._sleep = sleep
        self._rng = rng
        self._token: str | None = None
        self._org_id: str = ""
        self._sf: Salesforce | None = None
        self._usage: ApiUsage | None = None
        self.calls = 0  # requests sent to the REST/Bulk API (retries included)
        self._calls_lock = threading.Lock()  # calls may be sent from several threads (Composite batches)
        self.logins = 0
        self.retries = 0
        self.prefetch_pages = prefetch_pages
        self._ahead = PagePrefetcher(
            self._send_ahead,
            max_reads=PREFETCH_READS_MAX,
            depth=PREFETCH_DEPTH,
            max_bytes=PREFETCH_BYTES,
            timeout=timeout + 5,
        )

    def __repr__(self) -> str:
        return f"SimpleSalesforceSource(org={self.connection.name!r}, auth={self._auth.value!r})"

    # --- public, non-port -----------------------------------------------------------------------

    @property
    def instance_url(self) -> str:
        return self._instance

    @property
    def data_url(self) -> str:
        return f"{self._instance}/services/data/v{self._version}"

    @property
    def sf(self) -> Salesforce:
        """A logged-in ``simple_salesforce.Salesforce`` sharing this source's session. Calls made
        through it bypass this adapter's budget, counters and error translation."""
        self._ensure_login()
        if self._sf is None:
            from simple_salesforce import Salesforce

            self._sf = Salesforce(
                session_id=self._token,
                instance_url=self._instance,
                session=self._session,
                version=self._version,
            )
        return self._sf

    def login(self) -> None:
        """Log in now (otherwise the first call does). Raises ``SalesforceAuthError`` on refused
        credentials, ``SalesforceUnavailable`` when the login endpoint cannot be reached."""
        self._token = None
        self._ensure_login()

    # --- SalesforceSource ---------------------------------------------------------------------

    def org_id(self) -> str:
        self._ensure_login()
        if not self._org_id:
            info = self._json("GET", f"{self._instance}/services/oauth2/userinfo")
            self._org_id = str(info.get("organization_id") or "")
        return self._org_id

    def api_usage(self) -> ApiUsage | None:
        return self._usage

    def list_objects(self) -> list[dict[str, Any]]:
        body = self._json("GET", f"{self.data_url}/sobjects")
        objects = body.get("sobjects") if isinstance(body, Mapping) else None
        if not isinstance(objects, list):
            raise SalesforceRequestError(
                "describeGlobal answer has no 'sobjects' list", error_code="MALFORMED"
            )
        return objects

    def describe(self, object_name: str) -> ObjectSchema:
        _check_name(object_name, "object")
        body = self._json("GET", f"{self.data_url}/sobjects/{object_name}/describe")
        try:
            return schema_from_describe(object_name, body)
        except (KeyError, TypeError) as exc:
            raise SalesforceRequestError(
                f"describe of {object_name} is malformed (missing {exc})", error_code="MALFORMED"
            ) from None

    def start_read(
        self,
        schema: ObjectSchema,
        fields: list[str],
        *,
        strategy: str,
        where: str | None = None,
        include_deleted: bool = True,
    ) -> dict[str, Any]:
        """REST: no call is made; the first ``read_page`` runs the query. Bulk: creates the query
        job (one call); raises ``BulkNotSupported`` without a call for objects or fields Bulk is
        known to refuse (compound, base64)."""
        _check_name(schema.name, "object")
        requested = [schema.field(n) for n in fields]
        try:
            specs = field_specs(schema, fields)
        except ValueError as exc:
            raise SalesforceRequestError(str(exc), error_code="INVALID_FIELD") from None
        if not specs:
            raise SalesforceRequestError(
                f"no readable fields selected for {schema.name}", error_code="INVALID_FIELD"
            )
        query = soql(schema.name, [n for n, _ in specs], where)
        base = {
            "v": CURSOR_VERSION,
            "object": schema.name,
            "fields": [list(s) for s in specs],
            "all": include_deleted,
        }
        if strategy == "rest" and schema.name.lower() in FILTER_REQUIRED:
            parent, key = FILTER_REQUIRED[schema.name.lower()]
            _check_name(key, "field")
            if where and re.match(rf"\s*\(?\s*{key}\s+(IN\s*\(|=)", where, re.IGNORECASE):
                # the caller already filters by the key (batches of parent ids): what Salesforce
                # requires is met; wrapping it again would re-read the parent for every batch
                return {**base, "kind": "rest", "soql": query, "next": None}
            return {
                **base,
                "kind": "filtered",
                "key": key,
                "where": where,
                "parent": {"soql": f"SELECT Id FROM {parent}", "next": None, "done": False},
                "pending": [],
                "inner": None,
            }
        if strategy == "rest":
            return {**base, "kind": "rest", "soql": query, "next": None}
        if strategy != "bulk":
            raise ConfigError(f"unknown read strategy {strategy!r} (bulk or rest)")
        odd = [f.name for f in requested if f is not None and f.type.lower() in COMPOUND_TYPES | {"base64"}]
        if odd:
            raise BulkNotSupported(
                f"Bulk API 2.0 cannot read compound or base64 fields ({', '.join(odd)}) of {schema.name}",
                error_code="API_ERROR",
            )
        if schema.name.lower() in BULK_UNSUPPORTED:
            raise BulkNotSupported(f"Bulk API 2.0 does not support {schema.name}", error_code="INVALIDENTITY")
        job = self._json(
            "POST",
            f"{self.data_url}/jobs/query",
            json_body={
                "operation": "queryAll" if include_deleted else "query",
                "query": query,
                "contentType": "CSV",
                "columnDelimiter": "COMMA",
                "lineEnding": "LF",
            },
            ok=(200, 201),
            bulk=True,
        )
        job_id = str(job.get("id") or "") if isinstance(job, Mapping) else ""
        if not _ID_RE.match(job_id):
            raise SalesforceRequestError(
                "Bulk job creation answered without a job id", error_code="MALFORMED"
            )
        return {**base, "kind": "bulk", "job": job_id, "ready": False, "locator": None}

    def read_page(self, cursor: dict[str, Any]) -> RecordPage:
        if cursor.get("v") != CURSOR_VERSION or cursor.get("kind") not in ("rest", "bulk", "filtered"):
            raise SalesforceRequestError(
                "unknown read cursor (written by another version?)", error_code="CURSOR"
            )
        if cursor["kind"] == "rest":
            return self._rest_page(cursor)
        if cursor["kind"] == "filtered":
            return self._filtered_page(cursor)
        return self._bulk_page(cursor)

    def download(self, object_name: str, record_id: str, field: str) -> Iterator[bytes]:
        """Streams the body; a connection dropped mid-body is re-requested and the bytes already
        given are skipped, so the caller sees each byte once. Errors surface while iterating."""
        _check_name(object_name, "object")
        _check_name(field, "field")
        if not _ID_RE.match(record_id):
            raise SalesforceRequestError(f"not a Salesforce id: {record_id!r}", error_code="MALFORMED_ID")
        url = f"{self.data_url}/sobjects/{object_name}/{record_id}/{field}"
        return self._stream_body(url)

    # --- reads --------------------------------------------------------------------------------

    def _rest_page(self, cursor: dict[str, Any]) -> RecordPage:
        headers = (
            {"Sforce-Query-Options": f"batchSize={self.rest_batch_size}"} if self.rest_batch_size else {}
        )
        if cursor.get("next"):
            nxt = str(cursor["next"])
            if not nxt.startswith("/services/"):
                raise SalesforceRequestError(
                    "nextRecordsUrl is not a Salesforce path", error_code="MALFORMED"
                )
            got = self._ahead.take(_locator_of(nxt), nxt)
            body = got.data if got is not None and got.status == 200 else None
            if not isinstance(body, Mapping) or not isinstance(body.get("records"), list):
                body = self._json("GET", f"{self._instance}{nxt}", headers=headers)
        else:
            endpoint = "queryAll" if cursor.get("all", True) else "query"
            got = self._ahead.take(_query_key(cursor), "")
            body = got.data if got is not None and got.status == 200 else None
            if not isinstance(body, Mapping) or not isinstance(body.get("records"), list):
                body = self._json(
                    "GET", f"{self.data_url}/{endpoint}", params={"q": cursor["soql"]}, headers=headers
                )
        return self._rest_answer(cursor, body)

    def prefetch_read(self, cursor: dict[str, Any]) -> None:
        """With ``prefetch_pages``: start reading the first page of an unread REST read ``cursor``
        now, in the background; its ``read_page`` takes it (or reads it the ordinary way if that
        failed). For a read the caller will surely make next (e.g. the next batch of a filtered read).
        Without ``prefetch_pages``, or for any other cursor: nothing."""
        if not self.prefetch_pages or cursor.get("kind") != "rest" or cursor.get("next"):
            return
        endpoint = "queryAll" if cursor.get("all", True) else "query"
        self._ahead.start(
            _query_key(cursor),
            "",
            f"{self.data_url}/{endpoint}",
            {"q": cursor["soql"]},
            self._rest_headers(),
            follow=self._next_rest_page,
        )

    def _rest_headers(self) -> dict[str, str]:
        return {"Sforce-Query-Options": f"batchSize={self.rest_batch_size}"} if self.rest_batch_size else {}

    def _next_rest_page(self, got: Prefetched) -> tuple[str, str, str, None] | None:
        """The page a REST query answer fetched ahead names next (see ``PagePrefetcher.start``)."""
        body = got.data
        if not isinstance(body, Mapping) or body.get("done", True):
            return None
        nxt = body.get("nextRecordsUrl")
        if not isinstance(nxt, str) or not nxt.startswith("/services/"):
            return None
        return _locator_of(nxt), nxt, f"{self._instance}{nxt}", None

    def _rest_answer(self, cursor: dict[str, Any], body: Any) -> RecordPage:
        """The page a REST query answer ``body`` holds for the read ``cursor`` (whether it came from
        a direct call or a Composite sub-request): records mapped by the cursor's field specs; the
        next cursor when not done. Raises ``SalesforceRequestError`` (MALFORMED) otherwise."""
        specs: list[FieldSpec] = [(n, t) for n, t in cursor["fields"]]
        if not isinstance(body, Mapping) or not isinstance(body.get("records"), list):
            raise SalesforceRequestError("query answer has no 'records' list", error_code="MALFORMED")
        try:
            mapper = RestRecordMapper(specs)
            records = [mapper(r) for r in body["records"]]
        except ValueError as exc:
            raise SalesforceRequestError(f"{cursor['object']}: {exc}", error_code="MALFORMED") from None
        if body.get("done", True):
            return RecordPage(records=records, cursor=None)
        next_url = body.get("nextRecordsUrl")
        if not next_url:
            raise SalesforceRequestError(
                "query answer says not done but has no nextRecordsUrl", error_code="MALFORMED"
            )
        next_url = str(next_url)
        if self.prefetch_pages and next_url.startswith("/services/"):
            self._ahead.start(
                _locator_of(next_url),
                next_url,
                f"{self._instance}{next_url}",
                None,
                self._rest_headers(),
                follow=self._next_rest_page,
            )
        return RecordPage(records=records, cursor={**cursor, "next": next_url})

    def _filtered_page(self, cursor: dict[str, Any]) -> RecordPage:
        """An object that must be filtered by parent id: page through the parent's ids (REST
        queryAll), query the object for up to ``FILTER_BATCH`` of them at a time. The cursor holds
        the parent's position, the ids not yet queried and the current inner REST cursor, so a
        replayed cursor reads the same page again."""
        inner = cursor.get("inner")
        pending: list[str] = list(cursor.get("pending") or [])
        parent = dict(cursor["parent"])
        if not inner and not pending and not parent.get("done"):
            parent_cursor = {
                "v": CURSOR_VERSION,
                "kind": "rest",
                "object": parent["soql"].rsplit(" ", 1)[-1],
                "fields": [["Id", "id"]],
                "all": cursor.get("all", True),
                "soql": parent["soql"],
                "next": parent.get("next"),
            }
            page = self._rest_page(parent_cursor)
            pending = [str(r["Id"]) for r in page.records if r.get("Id")]
            if not all(_ID_RE.match(i) for i in pending):
                raise SalesforceRequestError("parent query returned a malformed id", error_code="MALFORMED")
            parent = {
                **parent,
                "next": page.cursor["next"] if page.cursor else None,
                "done": page.cursor is None,
            }
        if not inner and pending:
            batch, pending = pending[:FILTER_BATCH], pending[FILTER_BATCH:]
            ids = ", ".join(f"'{i}'" for i in batch)
            where = f"{cursor['key']} IN ({ids})"
            if cursor.get("where"):
                where = f"{where} AND ({cursor['where']})"
            names = [n for n, _ in cursor["fields"]]
            inner = {
                "v": CURSOR_VERSION,
                "kind": "rest",
                "object": cursor["object"],
                "fields": cursor["fields"],
                "all": cursor.get("all", True),
                "soql": soql(cursor["object"], names, where),
                "next": None,
            }
        records: list[dict[str, Any]] = []
        if inner:
            page = self._rest_page(inner)
            records, inner = page.records, page.cursor
        if not inner and not pending and parent.get("done"):
            return RecordPage(records=records, cursor=None)
        return RecordPage(
            records=records, cursor={**cursor, "parent": parent, "pending": pending, "inner": inner}
        )

    def _bulk_page(self, cursor: dict[str, Any]) -> RecordPage:
        try:
            return self._bulk_page_of(cursor)
        except SalesforceRequestError as exc:
            if exc.status == 404:  # the job (and its results) are gone: restart from the checkpoint
                raise QueryLocatorExpired(
                    f"the Bulk job for {cursor['object']} no longer exists; restart the object's read"
                ) from None
            raise

    def _bulk_page_of(self, cursor: dict[str, Any]) -> RecordPage:
        job = cursor["job"]
        if not cursor.get("ready"):
            info = self._json("GET", f"{self.data_url}/jobs/query/{job}", bulk=True)
            state = str(info.get("state") or "")
            if state in ("Open", "UploadComplete", "InProgress"):
                return RecordPage(records=[], cursor=cursor, wait_seconds=self.bulk_poll_seconds)
            if state in ("Failed", "Aborted"):
                message = _scrub(str(info.get("errorMessage") or f"job {state}"), self._secrets())
                text = f"Bulk query job for {cursor['object']} {state.lower()}: {message}"
                if "not supported" in message.lower() or "invalidentity" in message.lower():
                    raise BulkNotSupported(text, error_code="INVALIDENTITY")
                raise SalesforceRequestError(text, error_code="BULK_JOB_" + state.upper())
            if state != "JobComplete":
                raise SalesforceRequestError(f"Bulk job in unknown state {state!r}", error_code="MALFORMED")
            cursor = {**cursor, "ready": True}
        return self._bulk_results(cursor)

    def _bulk_results(self, cursor: dict[str, Any]) -> RecordPage:
        specs: list[FieldSpec] = [(n, t) for n, t in cursor["fields"]]
        params: dict[str, Any] = {"maxRecords": self.bulk_page_records}
        if cursor.get("locator"):
            params["locator"] = cursor["locator"]
        url = f"{self.data_url}/jobs/query/{cursor['job']}/results"
        page = self._take_prefetched_bulk(cursor, specs)
        if page is not None:
            return page
        attempt = 0
        while True:
            attempt += 1
            resp = self._request(
                "GET", url, params=params, stream=True, bulk=True, headers={"Accept": "text/csv"}
            )
            try:
                records = self._parse_csv(resp, specs, cursor["object"])
                locator = resp.headers.get("Sforce-Locator")
                break
            except _BODY_RETRY as exc:
                if attempt >= self.max_attempts:
                    raise SalesforceUnavailable(
                        f"Bulk results for {cursor['object']} kept breaking off ({type(exc).__name__}); "
                        "try again later"
                    ) from None
                log.warning(
                    "bulk results for %s cut short (%s); retrying", cursor["object"], type(exc).__name__
                )
                self._backoff(attempt)
            finally:
                resp.close()
        return self._bulk_page_result(cursor, records, locator)

    def _bulk_page_result(
        self, cursor: dict[str, Any], records: list[dict[str, Any]], locator: str | None
    ) -> RecordPage:
        if locator is None:
            raise SalesforceRequestError(
                "Bulk results lack the Sforce-Locator header", error_code="MALFORMED"
            )
        if locator in ("", "null"):
            return RecordPage(records=records, cursor=None)
        nxt = {**cursor, "locator": locator}
        if self.prefetch_pages:
            self._ahead.start(
                f"bulk:{cursor['job']}",
                locator,
                f"{self.data_url}/jobs/query/{cursor['job']}/results",
                {"maxRecords": self.bulk_page_records, "locator": locator},
                {"Accept": "text/csv"},
                replace=True,
            )
        return RecordPage(records=records, cursor=nxt)

    # --- prefetch of the next page (see ``prefetch_pages``) -------------------------------------------

    def _send_ahead(
        self, url: str, params: Mapping[str, Any] | None, headers: Mapping[str, str]
    ) -> Prefetched | None:
        """One GET for the prefetcher (on its thread): counted, usage tracked; a JSON answer is
        parsed here. None when no call may go out now (no session yet, API budget used up: the
        reader's own call says so properly); transport errors are left to the prefetcher."""
        token = self._token
        if token is None:
            return None
        try:
            self._check_budget()
        except OrgVaultError:
            return None
        with self._calls_lock:
            self.calls += 1
        hdrs = {"Authorization": f"Bearer {token}", "Accept": "application/json", **headers}
        resp = self._session.get(url, params=params, headers=hdrs, stream=True, timeout=self.timeout)
        try:
            self._track(resp)
            if resp.status_code != 200:
                return Prefetched(resp.status_code, dict(resp.headers), b"")
            body = resp.raw.read(decode_content=True)
            data = None
            if "json" in resp.headers.get("Content-Type", ""):
                try:
                    data = _loads(body)
                except ValueError:
                    data = None  # the reader asks again
            return Prefetched(200, resp.headers, body, data)
        finally:
            resp.close()

    def _take_prefetched_bulk(self, cursor: dict[str, Any], specs: list[FieldSpec]) -> RecordPage | None:
        """The prefetched Bulk results page for ``cursor`` if there is one and it is whole."""
        got = self._ahead.take(f"bulk:{cursor.get('job')}", str(cursor.get("locator")))
        if got is None or got.status != 200:
            return None
        try:
            records = self._parse_csv_stream(
                io.BytesIO(got.body), got.headers.get("Sforce-NumberOfRecords"), specs, cursor["object"]
            )
        except _BODY_RETRY:
            return None
        locator = got.headers.get("Sforce-Locator")
        del got
        return self._bulk_page_result(cursor, records, locator)

    @staticmethod
    def _parse_csv(resp: requests.Response, specs: list[FieldSpec], object_name: str) -> list[dict[str, Any]]:
        """Parse a results page as it streams in (no copy of the whole body is kept)."""
        resp.raw.decode_content = True
        return SimpleSalesforceSource._parse_csv_stream(
            resp.raw, resp.headers.get("Sforce-NumberOfRecords"), specs, object_name
        )

    @staticmethod
    def _parse_csv_stream(
        raw: Any, expected: str | None, specs: list[FieldSpec], object_name: str
    ) -> list[dict[str, Any]]:
        """Parse a CSV results body from a binary stream; ``expected``: the Sforce-NumberOfRecords
        header. ``_Truncated`` when the body is cut short or does not parse as a whole."""
        reader = csv.reader(_csv_lines(raw), strict=True)
        records: list[dict[str, Any]] = []
        try:
            header = next(reader, None)
            if header is not None:
                mapper = CsvRowMapper(header, specs)
                width = len(header)
                # converted in batches, column by column (bounded extra memory: one batch of rows)
                while batch := list(itertools.islice(reader, _CSV_BATCH)):
                    for n in set(map(len, batch)):
                        if n != width:
                            raise _Truncated()
                    records.extend(mapper.rows(batch))
        except csv.Error as exc:
            raise _Truncated() from exc
        except ValueError as exc:
            if isinstance(exc, UnicodeDecodeError):
                raise _Truncated() from exc
            raise SalesforceRequestError(f"{object_name}: {exc}", error_code="MALFORMED") from None
        if expected is not None and expected.isdigit() and int(expected) != len(records):
            raise _Truncated()
        return records

    def _stream_body(self, url: str) -> Iterator[bytes]:
        given = 0
        attempt = 0
        while True:
            attempt += 1
            resp = self._request("GET", url, stream=True)
            try:
                skip = given
                for chunk in resp.iter_content(chunk_size=1 << 20):
                    if skip:
                        if len(chunk) <= skip:
                            skip -= len(chunk)
                            continue
                        chunk = chunk[skip:]
                        skip = 0
                    given += len(chunk)
                    yield chunk
                if skip:
                    raise SalesforceRequestError("file body shrank between two reads", error_code="MALFORMED")
                return
            except _TRANSPORT_ERRORS as exc:
                if attempt >= self.max_attempts:
                    raise SalesforceUnavailable(
                        f"file download kept breaking off ({type(exc).__name__}); try again later"
                    ) from None
                log.warning("file download cut short after %d bytes; retrying", given)
                self._backoff(attempt)
            finally:
                resp.close()

    # --- login ----------------------------------------------------------------------------------

    def _ensure_login(self) -> None:
        if self._token is not None:
            return
        token, instance, org_id = self._login()
        self._token = token
        self._instance = check_url(instance, "instance URL from login") if instance else self._instance
        if urlparse(self._instance).scheme == "http":
            _mount_transport(self._session, [self._instance], own=False)
        if org_id:
            self._org_id = org_id
        self._sf = None  # built on first use of ``sf``, for this session

    def _cred(self, *names: str) -> str:
        for name in names:
            if self._creds.get(name):
                return self._creds[name]
        raise ConfigError(f"--auth {self._auth.value} needs the credential {names[0]!r}")

    def _login(self) -> tuple[str, str, str]:
        """(access token, instance URL, org id or "")."""
        auth = self._auth
        token_url = f"{self._login_url}/services/oauth2/token"
        if auth is AuthMethod.JWT:
            claims = {
                "iss": self._cred("consumer_key", "client_id"),
                "sub": self._cred("username"),
                "aud": self._creds.get("audience") or self._login_url,
                "exp": int((datetime.now(UTC) + timedelta(minutes=3)).timestamp()),
            }
            import jwt  # only this login method signs (PyJWT and its crypto cost ~40 ms to import)

            try:
                assertion = jwt.encode(claims, self._cred("private_key"), algorithm="RS256")
            except (ValueError, TypeError, jwt.PyJWTError):
                raise SalesforceAuthError("the JWT private key is not a usable RSA PEM key") from None
            data = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
            return self._oauth(token_url, data)
        if auth is AuthMethod.CLIENT_CREDENTIALS:
            host = urlparse(self._login_url).hostname or ""
            url = f"{self._instance}/services/oauth2/token" if host in _GENERIC_LOGIN_HOSTS else token_url
            basic = (self._cred("client_id", "consumer_key"), self._cred("client_secret", "consumer_secret"))
            return self._oauth(url, {"grant_type": "client_credentials"}, basic=basic)
        if auth is AuthMethod.REFRESH_TOKEN:
            data = {
                "grant_type": "refresh_token",
                "refresh_token": self._cred("refresh_token"),
                "client_id": self._cred("client_id", "consumer_key"),
            }
            if self._creds.get("client_secret"):
                data["client_secret"] = self._creds["client_secret"]
            return self._oauth(token_url, data)
        # password
        password = self._cred("password") + self._creds.get("security_token", "")
        client_id = self._creds.get("client_id") or self._creds.get("consumer_key")
        if client_id and self._creds.get("client_secret"):
            data = {
                "grant_type": "password",
                "client_id": client_id,
                "client_secret": self._creds["client_secret"],
                "username": self._cred("username"),
                "password": password,
            }
            return self._oauth(token_url, data)
        return self._soap_login(self._cred("username"), password)

    def _login_post(self, url: str, *, soap: bool = False, **kwargs: Any) -> requests.Response:
        attempt = 0
        while True:
            attempt += 1
            self.logins += 1
            try:
                resp = self._session.post(url, timeout=self.timeout, **kwargs)
            except requests.exceptions.SSLError:
                raise _tls_error(url) from None
            except _TRANSPORT_ERRORS as exc:
                if attempt >= self.max_attempts:
                    raise SalesforceUnavailable(
                        f"cannot reach the Salesforce login endpoint {urlparse(url).netloc} ({type(exc).__name__})"
                    ) from None
                self._backoff(attempt)
                continue
            if soap and resp.status_code == 500 and b"Fault>" in resp.content:
                return resp  # a SOAP fault (refused login) travels as a 500
            if resp.status_code >= 500 and attempt < self.max_attempts:
                self._backoff(attempt)
                continue
            if resp.status_code >= 500:
                raise SalesforceUnavailable(f"the Salesforce login endpoint answered {resp.status_code}")
            return resp

    def _oauth(
        self, url: str, data: dict[str, str], *, basic: tuple[str, str] | None = None
    ) -> tuple[str, str, str]:
        resp = self._login_post(url, data=data, auth=basic, headers={"Accept": "application/json"})
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code != 200 or not isinstance(body, Mapping) or not body.get("access_token"):
            code, message = _error_parts(body if body is not None else resp.text)
            raise SalesforceAuthError(
                _scrub(
                    f"Salesforce login ({self._auth.value}) refused: {code or resp.status_code} {message}".strip()
                    + " — check the org's credentials and connected app",
                    self._secrets(),
                )
            )
        org_id = ""
        ident = str(body.get("id") or "")
        parts = ident.rstrip("/").split("/")
        if len(parts) >= 2 and parts[-3:-2] == ["id"]:
            org_id = parts[-2]
        return str(body["access_token"]), str(body.get("instance_url") or ""), org_id

    def _soap_login(self, username: str, password: str) -> tuple[str, str, str]:
        from xml.sax.saxutils import escape

        envelope = (
            '<?xml version="1.0" encoding="utf-8" ?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Body><urn:login>'
            f"<urn:username>{escape(username)}</urn:username><urn:password>{escape(password)}</urn:password>"
            "</urn:login></soapenv:Body></soapenv:Envelope>"
        )
        resp = self._login_post(
            f"{self._login_url}/services/Soap/u/{self._version}",
            data=envelope.encode(),
            soap=True,
            headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": "login"},
        )

        from simple_salesforce.util import getUniqueElementValueFromXmlString

        def element(name: str) -> str:
            try:
                return getUniqueElementValueFromXmlString(resp.content, name) or ""
            except Exception:  # noqa: BLE001 - not XML at all
                return ""

        session_id, server_url = element("sessionId"), element("serverUrl")
        if resp.status_code != 200 or not session_id or not server_url:
            code = element("sf:exceptionCode") or element("faultcode") or str(resp.status_code)
            message = element("sf:exceptionMessage") or element("faultstring")
            raise SalesforceAuthError(
                _scrub(f"Salesforce login (password) refused: {code} {message}".strip(), self._secrets())
                + " — check the username, password and security token"
            )
        parsed = urlparse(server_url)
        instance = f"{parsed.scheme}://{parsed.netloc}" if parsed.netloc else ""
        return session_id, instance, element("organizationId")

    # --- requests -------------------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        values = [v for v in self._creds.values() if len(v) >= 4]
        if self._token:
            values.append(self._token)
        return values

    def _check_budget(self) -> None:
        usage = self._usage
        if usage is None or usage.total <= 0:
            return
        limit = int(usage.total * self.budget_share)
        if usage.used + 1 > limit:
            raise ApiBudgetExhausted(
                f"API budget reached: {usage.used}/{usage.total} daily calls used and the configured share "
                f"is {self.budget_share:.0%}; the run stops here and resumes when the allowance resets"
            )

    def _track(self, resp: requests.Response) -> None:
        info = resp.headers.get("Sforce-Limit-Info")
        if info:
            m = _LIMIT_RE.search(info)
            if m:
                self._usage = ApiUsage(used=int(m.group(1)), total=int(m.group(2)))

    def _backoff(self, attempt: int) -> None:
        self.retries += 1
        delay = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        self._sleep(delay / 2 + self._rng() * delay / 2)

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        bulk: bool = False,
        ok: tuple[int, ...] = (200,),
    ) -> requests.Response:
        """One logical call: budget check, send, track usage, re-login once, retry transient
        failures, translate errors. Returns a response whose status is in ``ok``."""
        attempt = 0
        relogged = False
        while True:
            self._ensure_login()
            self._check_budget()
            attempt += 1
            with self._calls_lock:
                self.calls += 1
            hdrs = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
            if headers:
                hdrs.update(headers)
            try:
                resp = self._session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers=hdrs,
                    stream=stream,
                    timeout=self.timeout,
                )
            except requests.exceptions.SSLError:
                raise _tls_error(url) from None
            except _TRANSPORT_ERRORS as exc:
                if attempt >= self.max_attempts:
                    raise SalesforceUnavailable(
                        f"Salesforce could not be reached after {attempt} attempts ({type(exc).__name__})"
                    ) from None
                log.warning("Salesforce %s %s failed (%s); retrying", method, _path(url), type(exc).__name__)
                self._backoff(attempt)
                continue
            self._track(resp)
            if resp.status_code in ok:
                return resp
            try:
                body: Any = resp.json()
            except _UNREADABLE:
                body = resp.text if not stream else ""
            finally:
                resp.close()
            code, message = _error_parts(body)
            if resp.status_code == 401 and not relogged:
                relogged = True
                log.info("Salesforce session expired; logging in again")
                self._token = None
                continue
            error = translate_error(resp.status_code, code, _scrub(message, self._secrets()), bulk=bulk)
            retry = isinstance(error, SalesforceUnavailable) and code.upper() != "QUERY_TIMEOUT"
            if retry and attempt < self.max_attempts:
                log.warning(
                    "Salesforce %s %s answered %s %s; retrying", method, _path(url), resp.status_code, code
                )
                self._backoff(attempt)
                continue
            raise error

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        """``_request`` and decode JSON; a body cut short is fetched again (bounded)."""
        attempt = 0
        while True:
            attempt += 1
            resp = self._request(method, url, **kwargs)
            try:
                return _loads(resp.content)
            except _UNREADABLE as exc:
                if attempt >= self.max_attempts:
                    raise SalesforceRequestError(
                        f"Salesforce sent a malformed answer to {method} {_path(url)} ({type(exc).__name__})",
                        error_code="MALFORMED",
                    ) from None
                self._backoff(attempt)


def _query_key(cursor: Mapping[str, Any]) -> str:
    """The prefetch key of an unread REST read (its query, through query or queryAll)."""
    return f"query:{'all' if cursor.get('all', True) else 'live'}:{cursor.get('soql')}"


def _locator_of(next_url: str) -> str:
    """The query a REST ``nextRecordsUrl`` continues (``/services/data/vXX/query/<locator>-<offset>``)."""
    return "rest:" + next_url.rsplit("/", 1)[-1].rsplit("-", 1)[0]


def _loads(data: bytes) -> Any:
    """JSON from Salesforce: orjson (several times faster on large query answers), or the standard
    parser for what orjson refuses (a number beyond a double's range), so the values are the same.
    orjson reads an integer beyond 64 bits as a float; Salesforce numbers have at most 18 digits."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _tls_error(url: str) -> ConfigError:
    return ConfigError(
        f"TLS with {urlparse(url).netloc} failed: its certificate is not trusted or it does not offer TLS 1.2+"
    )


def _check_name(name: str, what: str) -> None:
    if not _NAME_RE.match(name or ""):
        raise SalesforceRequestError(f"not a valid {what} name: {name!r}", error_code="INVALID_NAME")


def _path(url: str) -> str:
    return urlparse(url).path


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and secret in text:
            text = text.replace(secret, "***")
    return text


def schema_from_describe(object_name: str, body: dict[str, Any]) -> ObjectSchema:
    """An sObject describe answer → ``ObjectSchema``. Raises ``KeyError``/``TypeError`` when the
    answer is malformed (callers translate that into their own error)."""
    fields = tuple(
        FieldInfo(
            name=str(f["name"]),
            type=str(f["type"]),
            createable=bool(f.get("createable")),
            updateable=bool(f.get("updateable")),
            calculated=bool(f.get("calculated")),
            nillable=bool(f.get("nillable", True)),
            external_id=bool(f.get("externalId")),
            compound_field_name=f.get("compoundFieldName") or None,
            reference_to=tuple(f.get("referenceTo") or ()),
            relationship_name=f.get("relationshipName") or None,
        )
        for f in body["fields"]
    )
    return ObjectSchema(
        name=str(body.get("name") or object_name),
        fields=fields,
        key_prefix=body.get("keyPrefix") or None,
        createable=bool(body.get("createable")),
        updateable=bool(body.get("updateable")),
        child_relationships=tuple(body.get("childRelationships") or ()),
    )
