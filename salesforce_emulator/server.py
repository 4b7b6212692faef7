"""The emulator's HTTP(S) server: a threaded HTTP/1.1 server in front of an :class:`~.org.Org`.

Embedding::

    with EmulatorServer.start(org=Org.generate(scale=300, seed=1), tls=False) as emu:
        emu.facts.instance_url, emu.faults.error_rate = 0.1, emu.org.clock.advance(3600) ...

Contract:
- ``start`` returns once the socket listens; ``stop`` (or leaving the ``with`` block) closes the listening
  socket *and* every open keep-alive connection and joins every thread the server started.
- Every response under ``/services/data/vNN.N/`` (except the versions list) carries
  ``Sforce-Limit-Info: api-usage=USED/TOTAL``.
- Every failure is a Salesforce error array with its status; :func:`error_reply` is the one place that
  maps a :class:`~.errors.SalesforceError` (or an unexpected exception) to an HTTP reply.
- Secrets (tokens, passwords) are never logged; request logging is off.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .auth import (
    Credentials,
    OAuthError,
    SessionStore,
    SoapFault,
    bearer_token,
    oauth_token,
    soap_login,
)
from .errors import SalesforceError
from .faults import Faults, RuleAction
from .limits import (
    CONCURRENT_LIMIT_MESSAGE,
    DEFAULT_DAILY_LIMIT,
    LONG_RUNNING_SECONDS,
    MAX_LONG_RUNNING,
    ApiUsage,
    LongRunningGate,
)
from .tls import TlsMaterial, make_tls_material

JSON_TYPE = "application/json;charset=UTF-8"
LATEST_VERSION = "62.0"
_VERSIONS = [f"{v}.0" for v in range(31, 63)]
_DATA_PATH = re.compile(r"^/services/data/v(\d{2,3}\.\d)(/.*)?$")


# ---------------------------------------------------------------------------------------------------
# request / reply values
# ---------------------------------------------------------------------------------------------------
@dataclass
class Request:
    """One parsed HTTP request. ``path`` is percent-decoded, without the query string."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes = b""
    raw_path: str = ""

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def json(self) -> Any:
        """The body as JSON, or 400 ``JSON_PARSER_ERROR``."""
        if not self.body:
            raise SalesforceError(400, "JSON_PARSER_ERROR", "The request body is empty; JSON was expected")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SalesforceError(
                400, "JSON_PARSER_ERROR", f"Unexpected character in JSON body: {exc}"
            ) from exc


@dataclass
class Reply:
    """An HTTP reply. ``body`` is bytes, or an iterator of byte chunks (sent chunked, streamed)."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    content_type: str | None = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    value: Any = None  # the JSON value, when the body is JSON (composite sub-requests read it)
    drop_after: int | None = None  # fault: send this many body bytes, then close the socket
    release: Callable[[], None] | None = None  # called once the reply is sent (or sending failed)


def json_reply(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    return Reply(status, body, JSON_TYPE, dict(headers or {}), value)


def error_reply(exc: BaseException) -> Reply:
    """The single mapping of exceptions to Salesforce-shaped HTTP replies."""
    if isinstance(exc, SalesforceError):
        if exc.status == 300 and exc.error_code == "MULTIPLE_CHOICES":
            # Salesforce answers an ambiguous external id with the list of matching record URLs.
            return json_reply(exc.fields or exc.body(), 300)
        return json_reply(exc.body(), exc.status)
    if isinstance(exc, OAuthError):
        return json_reply(exc.body(), exc.status)
    if isinstance(exc, SoapFault):
        return Reply(exc.status, exc.xml(), "text/xml;charset=UTF-8")
    traceback.print_exception(exc, file=sys.stderr)
    return json_reply(
        [
            {
                "message": f"An unexpected error occurred: {type(exc).__name__}",
                "errorCode": "UNKNOWN_EXCEPTION",
                "fields": [],
            }
        ],
        500,
    )


# ---------------------------------------------------------------------------------------------------
# facts and options
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmulatorFacts:
    """What a client needs to connect (the JSON line ``serve`` prints)."""

    instance_url: str
    login_url: str
    access_token: str
    refresh_token: str
    username: str
    password: str
    client_id: str
    client_secret: str
    org_id: str
    admin_url: str
    ca_cert: str | None = None

    def as_dict(self) -> dict[str, str]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        if d["ca_cert"] is None:
            del d["ca_cert"]
        return d

    def __repr__(self) -> str:  # secrets stay out of logs and test output
        return f"EmulatorFacts(instance_url={self.instance_url!r}, org_id={self.org_id!r})"


@dataclass(frozen=True)
class ServerOptions:
    """Server settings. ``bulk_delay`` is the Bulk 2.0 processing time, measured by ``bulk_clock``
    (``"wall"`` or ``"org"``); ``locator_ttl_seconds`` is by the org clock."""

    host: str = "127.0.0.1"
    port: int = 0
    tls: bool = False
    tls_dir: str | None = None
    daily_limit: int = DEFAULT_DAILY_LIMIT
    bulk_delay: float = 0.0
    bulk_clock: str = "wall"
    locator_ttl_seconds: float = 2 * 86400
    default_batch_size: int = 2000
    # REST query pages shrink to ``long_text_batch_size`` rows when the select has at least
    # ``long_text_fields`` long text area fields (Salesforce: "often fewer (200 when several long text
    # fields are selected)"); a Sforce-Query-Options batchSize cannot raise it. None disables the rule.
    long_text_fields: int | None = 2
    long_text_batch_size: int = 200
    # at most ``max_long_running`` data API requests in flight for ``long_running_seconds`` or more;
    # while so many are, new ones get 403 REQUEST_LIMIT_EXCEEDED (see limits.LongRunningGate)
    max_long_running: int | None = MAX_LONG_RUNNING
    long_running_seconds: float = LONG_RUNNING_SECONDS
    # upload limits (Salesforce "Insert or Update Blob Data"): a multipart blob part may hold 2 GB for
    # ContentVersion and 500 MB for other objects; a JSON (non-multipart) body 50 MB, of which a base64
    # value at most 37.5 MB of base64 text. Lower them in tests to exercise the refusals.
    max_content_version_bytes: int = 2 * 1024**3
    max_blob_bytes: int = 500 * 1024**2
    max_json_body_bytes: int = 50 * 1024**2
    max_base64_chars: int = 75 * 1024**2 // 2
    admin_token: str | None = None
    access_token: str | None = None
    credentials: Credentials | None = None
    jwt_public_key: bytes | None = None  # PEM certificate / public key for JWT bearer (shortcut)


# ---------------------------------------------------------------------------------------------------
# the HTTP plumbing
# ---------------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SFDC"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 300  # an idle keep-alive connection is closed after this many seconds
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Request logging is off: URLs can carry record data and we never want tokens in logs."""

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        split = urlsplit(self.path)
        req = Request(
            method=self.command,
            path=unquote(split.path),
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,
            body=self._read_body(),
            raw_path=split.path,
        )
        reply = self.server.emulator.serve(req)
        try:
            self._send(req, reply)
        finally:
            if reply.release is not None:
                reply.release()

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _handle

    def _send(self, req: Request, reply: Reply) -> None:
        self.send_response(reply.status)
        if reply.content_type and reply.status != 304:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        body = reply.body
        head_only = req.method == "HEAD" or reply.status in (204, 304)
        if isinstance(body, bytes | bytearray):
            if not head_only or req.method == "HEAD":
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if head_only:
                return
            if reply.drop_after is not None:
                self.wfile.write(body[: reply.drop_after])
                self._drop()
                return
            self.wfile.write(body)
            return
        iterator = iter(body)
        if head_only:
            self.send_header("Content-Length", "0")
            self.end_headers()
            close = getattr(iterator, "close", None)
            if close:
                close()
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        try:
            for chunk in iterator:
                if not chunk:
                    continue
                if reply.drop_after is not None and sent + len(chunk) > reply.drop_after:
                    part = chunk[: reply.drop_after - sent]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), part))
                    self._drop()
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
        finally:
            close = getattr(iterator, "close", None)
            if close:
                close()

    def _drop(self) -> None:
        """Fault: close the socket in the middle of the body."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: EmulatorServer, tls: TlsMaterial | None):
        self.emulator = emulator
        self._ssl = tls.server_context() if tls else None
        self._conns: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        if self._ssl is not None:
            # The handshake happens in the worker thread (first read), not in the accept loop.
            sock = self._ssl.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            daemon=True,
            name=f"sf-emulator-conn-{self.server_address[1]}",
        )
        with self._conn_lock:
            self._conns.add(request)
            self._workers.add(thread)
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._conns.discard(request)
                self._workers.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError | OSError):
            return  # clients hang up; that is not the server's problem
        super().handle_error(request, client_address)

    def close_all(self, timeout: float = 5.0) -> None:
        with self._conn_lock:
            conns, threads = list(self._conns), list(self._workers)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


# ---------------------------------------------------------------------------------------------------
# the emulator
# ---------------------------------------------------------------------------------------------------
class EmulatorServer:
    """A running emulator. Build with :meth:`start`."""

    def __init__(self, org: Any, *, faults: Faults | None = None, options: ServerOptions | None = None):
        self.org = org
        self.options = options or ServerOptions()
        self.faults = faults or Faults()
        creds = self.options.credentials or Credentials()
        if not creds.refresh_token:
            creds = replace(creds, refresh_token=f"5Aep861{secrets.token_urlsafe(40)}")
        if self.options.jwt_public_key is not None:
            creds = replace(creds, jwt_public_key=self.options.jwt_public_key)
        self.credentials = creds
        self.usage = ApiUsage(self.options.daily_limit)
        self.gate = LongRunningGate(self.options.max_long_running, self.options.long_running_seconds)
        self.sessions = SessionStore(org.org_id, org.clock)
        self._access_token = self.options.access_token or self.sessions.issue()
        if self.options.access_token:
            self.sessions.add(self._access_token)
        self.admin_token = self.options.admin_token or self._access_token
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self.facts: EmulatorFacts
        self.user_id = ""
        # imported here: these modules import this one for Request / Reply
        from .bulk import BulkApi
        from .http_admin import AdminApi
        from .http_rest import RestApi

        self.rest = RestApi(self)
        self.bulk = BulkApi(self)
        self.admin = AdminApi(self)

    # -- lifecycle ----------------------------------------------------------------------------------
    @classmethod
    def start(
        cls, org: Any = None, *, tls: bool = False, faults: Faults | None = None, **options: Any
    ) -> EmulatorServer:
        """Start serving on a thread and return once listening. ``options`` are :class:`ServerOptions`
        fields; ``org`` defaults to ``Org.generate(scale=300, seed=1)``."""
        if org is None:
            from .org import Org

            org = Org.generate(scale=300, seed=1)
        opts = ServerOptions(tls=tls, **options)
        if opts.bulk_clock not in ("wall", "org"):
            raise ValueError(f"bulk_clock must be 'wall' or 'org', not {opts.bulk_clock!r}")
        server = cls(org, faults=faults, options=opts)
        server._listen()
        return server

    def _listen(self) -> None:
        opts = self.options
        material = None
        if opts.tls:
            if opts.tls_dir:
                tls_dir = opts.tls_dir
            else:
                self._tmp = tempfile.TemporaryDirectory(prefix="sf-emulator-tls-")
                tls_dir = self._tmp.name
            material = make_tls_material(tls_dir, hosts=(opts.host,))
        self._httpd = _HttpServer((opts.host, opts.port), self, material)
        host, port = self._httpd.server_address[:2]
        scheme = "https" if opts.tls else "http"
        shown_host = host if ":" not in str(host) else f"[{host}]"
        base = f"{scheme}://{shown_host}:{port}"
        self.user_id = self._find_user_id()
        creds = self.credentials
        self.facts = EmulatorFacts(
            instance_url=base,
            login_url=base,
            access_token=self._access_token,
            refresh_token=creds.refresh_token,
            username=creds.username,
            password=creds.password,
            client_id=creds.client_id,
            client_secret=creds.client_secret,
            org_id=self.org.org_id,
            admin_url=f"{base}/__emulator",
            ca_cert=str(material.ca_cert) if material else None,
        )
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"sf-emulator-accept-{port}",
            daemon=True,
        )
        self._thread.start()

    def _find_user_id(self) -> str:
        try:
            q = self.org.compile("SELECT Id FROM User ORDER BY CreatedDate LIMIT 1")
            rows = self.org.fetch(q, None, 1).rows
            if rows:
                return str(rows[0][0])
        except Exception:  # noqa: BLE001 - an org without users still serves logins
            pass
        from .ids import to_18

        return to_18("005" + self.org.org_id[3:15])

    def stop(self) -> None:
        """Stop listening, close open connections, join threads. Idempotent. Does not close the org."""
        if self._httpd is None:
            return
        httpd, self._httpd = self._httpd, None
        httpd.shutdown()
        httpd.server_close()
        httpd.close_all()
        if self._thread is not None:
            self._thread.join(5)
        self.bulk.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EmulatorServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self.facts.instance_url.rsplit(":", 1)[1])

    # -- request dispatch ---------------------------------------------------------------------------
    def serve(self, req: Request) -> Reply:
        """Answer one request (never raises)."""
        path = req.path
        if path == "/__emulator" or path.startswith("/__emulator/"):
            try:
                return self.admin.handle(req)
            except Exception as exc:  # noqa: BLE001 - mapped to a reply in one place
                return error_reply(exc)
        m = _DATA_PATH.match(req.raw_path or path)  # raw: "%2F" inside an external id stays one segment
        counted = m is not None
        reply: Reply
        ticket = self.gate.enter() if counted else None
        if counted and ticket is None:
            reply = error_reply(SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", CONCURRENT_LIMIT_MESSAGE))
            reply.headers["Sforce-Limit-Info"] = self.usage.header()
            return reply
        try:
            rule = self.faults.take_rule(req.method, path)
            drop_after = self._apply_rule(rule)
            reply = self._route(req, m)
            if drop_after is not None:
                reply.drop_after = drop_after
            elif counted and self.faults.drop_after_bytes is not None:
                reply.drop_after = self.faults.drop_after_bytes
        except Exception as exc:  # noqa: BLE001 - mapped to a reply in one place
            reply = error_reply(exc)
        if counted:
            reply.headers["Sforce-Limit-Info"] = self.usage.header()
        if ticket is not None:
            gate = self.gate
            reply.release = lambda: gate.leave(ticket)
        return reply

    def _apply_rule(self, rule: Any) -> int | None:
        if rule is None:
            return None
        if rule.action == RuleAction.ERROR:
            raise SalesforceError(rule.status, rule.error_code, rule.message)
        if rule.action == RuleAction.DELAY:
            time.sleep(rule.delay_seconds)
            return None
        return rule.drop_after_bytes

    def _route(self, req: Request, data_match: re.Match[str] | None) -> Reply:
        path = req.path.rstrip("/") or "/"
        if path == "/services/data":
            if req.method not in ("GET", "HEAD"):
                raise _method_not_allowed(req)
            return json_reply(
                [{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in _VERSIONS]
            )
        if path == "/services/oauth2/token":
            if req.method != "POST":
                raise _method_not_allowed(req)
            return json_reply(
                oauth_token(
                    self.credentials,
                    self.sessions,
                    body=req.body,
                    authorization=req.header("Authorization"),
                    instance_url=self.facts.instance_url,
                    login_url=self.facts.login_url,
                    user_id=self.user_id,
                    org_id=self.org.org_id,
                )
            )
        if path == "/services/oauth2/revoke":
            token = req.param("token") or parse_qs(req.body.decode()).get("token", [""])[0]
            self.sessions.revoke(token)
            return Reply(200, b"", None)
        if path.startswith("/services/Soap/u/"):
            version = path.split("/")[4] if len(path.split("/")) > 4 else LATEST_VERSION
            xml = soap_login(
                self.credentials,
                self.sessions,
                body=req.body,
                instance_url=self.facts.instance_url,
                api_version=version,
                user_id=self.user_id,
                org_id=self.org.org_id,
            )
            return Reply(200, xml, "text/xml;charset=UTF-8")
        if path in ("/services/oauth2/userinfo", "/services/oauth2/userinfo/"):
            self._authenticate(req)
            return json_reply(self._userinfo())
        if path.startswith(("/services/oauth2/id/", "/id/")):
            self._authenticate(req)
            return json_reply(self._userinfo())
        if data_match is None:
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        version, rest = data_match.group(1), data_match.group(2) or "/"
        self._authenticate(req)
        if self.faults.limit_exceeded or not self.usage.try_consume():
            raise SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        if self.faults.latency_seconds:
            time.sleep(self.faults.latency_seconds)
        if self.faults.roll_503():
            raise SalesforceError(503, "SERVER_UNAVAILABLE", "Server is temporarily unavailable (injected)")
        if rest.startswith("/jobs/"):
            return self.bulk.handle(req, version, rest)
        return self.rest.handle(req, version, rest)

    def _authenticate(self, req: Request) -> None:
        self.sessions.check(
            bearer_token(req.header("Authorization")),
            max_requests=self.faults.session_max_requests,
            ttl_seconds=self.faults.session_ttl_seconds,
        )

    def _userinfo(self) -> dict[str, Any]:
        base = self.facts.instance_url
        return {
            "sub": f"{self.facts.login_url}/id/{self.org.org_id}/{self.user_id}",
            "user_id": self.user_id,
            "organization_id": self.org.org_id,
            "preferred_username": self.credentials.username,
            "nickname": "admin",
            "name": "Emulator Admin",
            "email": self.credentials.username,
            "email_verified": True,
            "active": True,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": 0,
            "urls": {
                "rest": f"{base}/services/data/v{{version}}/",
                "sobjects": f"{base}/services/data/v{{version}}/sobjects/",
                "query": f"{base}/services/data/v{{version}}/query/",
                "partner": f"{base}/services/Soap/u/{{version}}/{self.org.org_id[:15]}",
            },
        }


def _method_not_allowed(req: Request) -> SalesforceError:
    return SalesforceError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are GET"
    )


def write_ready_line(facts: EmulatorFacts, stream: Any = None) -> None:
    """Print the single JSON line ``serve`` announces readiness with."""
    out = stream or sys.stdout
    out.write(json.dumps(facts.as_dict()) + "\n")
    out.flush()


__all__ = [
    "EmulatorFacts",
    "EmulatorServer",
    "Reply",
    "Request",
    "ServerOptions",
    "error_reply",
    "json_reply",
]
