"""``orgvault serve``: the same API resolver behind a local HTTP server, with local users.

Contract:
- Binds to 127.0.0.1 by default. Each HTTP request becomes an API Gateway REST proxy event whose
  ``requestContext.authorizer.claims`` the server builds from the authenticated local user (the shape a
  Cognito authorizer produces); nothing in the client's request can set the request context.
- Local users (:class:`LocalUsers`):
  * a generated admin token: created at the first start, printed once, stored only as a SHA-256 hash
    (the token has 256 bits of entropy, so a fast hash is enough) in ``<home>/api/admin-token.json``
    (mode 0600); ``Authorization: Bearer <token>``;
  * a users file (JSON) with scrypt password hashes — ``{"users": [{"username", "password_hash",
    "groups": ["org:acme:viewer", ...]}], "tokens": [{"name", "token_sha256", "groups"}]}`` — used with
    HTTP Basic (users) or Bearer (tokens). ``hash_password`` makes a ``password_hash``.
- Bodies over the limit are refused with 413 before they are read; wrong credentials are a 401 with no
  hint which part was wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from orgvault.api.authz import GLOBAL_ADMIN_GROUP
from orgvault.errors import ConfigError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$<salt b64>$<hash b64>`` for a users file."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(base64.b64decode(digest)),
            maxmem=256 * 1024 * 1024,
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class LocalUser:
    name: str
    groups: tuple[str, ...]
    password_hash: str = field(default="", repr=False)
    token_sha256: str = field(default="", repr=False)


class LocalUsers:
    """Authenticates ``Authorization`` headers against the admin token and the users file."""

    def __init__(self, users: list[LocalUser]) -> None:
        self.users = users
        self._by_token = {u.token_sha256: u for u in users if u.token_sha256}
        self._by_name = {u.name: u for u in users if u.password_hash}
        # Successful password checks, keyed by an HMAC under a per-process key (scrypt once per password).
        self._cache_key = os.urandom(32)
        self._ok: dict[bytes, str] = {}
        self._lock = threading.Lock()

    @staticmethod
    def load(
        home: Path, users_file: Path | None = None, *, create_admin: bool = True
    ) -> tuple[LocalUsers, str | None]:
        """Users from ``users_file`` plus the admin token (created when missing and ``create_admin``).
        Returns the users and the new admin token (``None`` when it already existed)."""
        users: list[LocalUser] = []
        new_token: str | None = None
        if users_file is not None:
            users += _read_users_file(users_file)
        token_file = home / "api" / "admin-token.json"
        if token_file.exists():
            try:
                stored = json.loads(token_file.read_text())["token_sha256"]
            except (OSError, ValueError, KeyError) as exc:
                raise ConfigError(
                    f"cannot read {token_file} ({type(exc).__name__}); delete it to make a new token"
                ) from None
            users.append(LocalUser("admin", (GLOBAL_ADMIN_GROUP,), token_sha256=str(stored)))
        elif create_admin:
            new_token = secrets.token_urlsafe(32)
            token_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(
                    {"token_sha256": token_hash(new_token), "created_at": datetime.now(UTC).isoformat()}, f
                )
            users.append(LocalUser("admin", (GLOBAL_ADMIN_GROUP,), token_sha256=token_hash(new_token)))
        return LocalUsers(users), new_token

    def authenticate(self, authorization: str | None) -> LocalUser | None:
        if not authorization:
            return None
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            return self._by_token.get(token_hash(value))
        if scheme.lower() == "basic" and value:
            try:
                name, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            user = self._by_name.get(name)
            if user is None:
                return None
            mark = hmac.new(self._cache_key, f"{name}\0{password}".encode(), "sha256").digest()
            with self._lock:
                if self._ok.get(mark) == user.password_hash:
                    return user
            if check_password(password, user.password_hash):
                with self._lock:
                    self._ok[mark] = user.password_hash
                return user
        return None


def _read_users_file(path: Path) -> list[LocalUser]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the users file {path}: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"the users file {path} must hold a JSON object with 'users' and/or 'tokens'")
    out: list[LocalUser] = []
    for u in data.get("users") or []:
        if (
            not isinstance(u, dict)
            or not u.get("username")
            or not str(u.get("password_hash", "")).startswith("scrypt$")
        ):
            raise ConfigError(
                f"{path}: each user needs 'username' and a scrypt 'password_hash' (orgvault serve --hash-password)"
            )
        out.append(
            LocalUser(
                str(u["username"]),
                tuple(str(g) for g in u.get("groups") or ()),
                password_hash=str(u["password_hash"]),
            )
        )
    for t in data.get("tokens") or []:
        if not isinstance(t, dict) or not t.get("name") or len(str(t.get("token_sha256", ""))) != 64:
            raise ConfigError(
                f"{path}: each token needs 'name' and 'token_sha256' (hex SHA-256 of the token)"
            )
        out.append(
            LocalUser(
                str(t["name"]),
                tuple(str(g) for g in t.get("groups") or ()),
                token_sha256=str(t["token_sha256"]).lower(),
            )
        )
    return out


# --- HTTP → proxy event ------------------------------------------------------------------------------


def to_event(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    user: LocalUser | None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway REST proxy event for one HTTP request (``user`` None: no authorizer)."""
    parts = urlsplit(target)
    multi = parse_qs(parts.query, keep_blank_values=True)
    text: str | None
    b64 = False
    try:
        text = body.decode() if body else None
    except UnicodeDecodeError:
        text, b64 = base64.b64encode(body).decode(), True
    hdrs = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    ctx: dict[str, Any] = {
        "requestId": str(uuid.uuid4()),
        "stage": "local",
        "httpMethod": method,
        "path": parts.path,
        "identity": {"sourceIp": source_ip},
    }
    if user is not None:
        ctx["authorizer"] = {
            "claims": {
                "sub": f"local:{user.name}",
                "cognito:username": user.name,
                "cognito:groups": ",".join(user.groups),
            }
        }
    return {
        "resource": parts.path,
        "path": parts.path,
        "httpMethod": method,
        "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
        "multiValueQueryStringParameters": multi or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": ctx,
        "body": text,
        "isBase64Encoded": b64,
    }


class ApiHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: Any, users: LocalUsers) -> None:
        self.api = api
        self.users = users
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{name}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: ApiHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - no request logging with headers
        return

    def _reply(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() not in ("content-length", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, error: str, message: str) -> None:
        self.close_connection = True
        body = json.dumps({"error": error, "message": message, "status": status}).encode()
        self._reply(status, {"Content-Type": "application/json"}, body)

    def _handle(self) -> None:
        limit = self.server.api.ctx.max_body_bytes
        length_text = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._error(
                411, "LengthRequired", "send the body with a Content-Length (no chunked encoding)"
            )
        try:
            length = int(length_text) if length_text else 0
            if length < 0:
                raise ValueError
        except ValueError:
            return self._error(400, "BadRequest", "Content-Length is not a valid number")
        if length > limit:
            return self._error(
                413, "PayloadTooLarge", f"the request body is {length} bytes; the limit is {limit} bytes"
            )
        body = self.rfile.read(length) if length else b""
        user = self.server.users.authenticate(self.headers.get("Authorization"))
        headers = {k: v for k, v in self.headers.items()}
        event = to_event(self.command, self.path, headers, body, user, self.client_address[0])
        result = self.server.api.handle(event, None)
        out_headers = dict(result.get("headers") or {})
        for k, vs in (result.get("multiValueHeaders") or {}).items():
            if vs:
                out_headers[k] = ", ".join(vs)
        raw = result.get("body") or ""
        data = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
        self._reply(int(result.get("statusCode", 500)), out_headers, data)

    def _safe(self) -> None:
        try:
            self._handle()
        except Exception:  # never a traceback to the client
            self._error(500, "InternalError", "internal error")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _safe  # noqa: N815


def serve(api: Any, users: LocalUsers, host: str = "127.0.0.1", port: int = 8700) -> ApiHttpServer:
    """A started server (in a daemon thread); call ``shutdown()`` then ``server_close()`` to stop."""
    server = ApiHttpServer((host, port), api, users)
    threading.Thread(target=server.serve_forever, name="orgvault-api", daemon=True).start()
    return server
