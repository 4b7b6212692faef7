"""``orgvault serve`` — the API on a local HTTP server (local mode, no AWS). Registered into the main CLI
by :func:`register`.

At the first start it generates an admin token, prints it once and stores only its hash; afterwards
use that token (``Authorization: Bearer ...``) or users from ``--users-file`` (HTTP Basic with scrypt
password hashes; make one with ``orgvault serve --hash-password`` reading the password from stdin).
Audit lines go to stderr (or ``--audit-log FILE``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    s = sub.add_parser("serve", help="serve the orgvault API on 127.0.0.1 (local users, no AWS)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8700)
    s.add_argument("--users-file", help="JSON users file (hashed passwords / token hashes and groups)")
    s.add_argument("--audit-log", help="append audit lines to this file (default: stderr)")
    s.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password from stdin, print its hash for the users file, and exit",
    )
    s.set_defaults(run=cmd_serve)


def build_local_api(
    app: Any,
    *,
    runner: Any = None,
    audit: Any = None,
    writer_factory: Any = None,
    max_body_bytes: int | None = None,
) -> Any:
    """The API over a local-mode App: backups and approved restores run in background threads."""
    from orgvault.api.app import MAX_BODY_BYTES, ApiContext, OrgVaultApi
    from orgvault.api.audit import AuditLog
    from orgvault.api.jobs import LocalBackupLauncher, ThreadRunner

    runner = runner or ThreadRunner()
    ctx = ApiContext(
        app=app,
        launcher=LocalBackupLauncher(app, runner),
        runner=runner,
        audit=audit or AuditLog(),
        writer_factory=writer_factory,
        max_body_bytes=max_body_bytes or MAX_BODY_BYTES,
    )
    return OrgVaultApi(ctx)


def cmd_serve(args: argparse.Namespace, env: dict[str, str]) -> int:
    from orgvault.api.local_server import LocalUsers, hash_password, serve
    from orgvault.bootstrap import open_app
    from orgvault.cli import _settings

    if args.hash_password:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            print("orgvault: give the password on stdin", file=sys.stderr)
            return 2
        print(hash_password(password))
        return 0
    settings = _settings(args, env)
    app = open_app(settings)
    audit_logger = logging.getLogger("orgvault.audit")
    audit_logger.setLevel(logging.INFO)
    handler: logging.Handler = (
        logging.FileHandler(args.audit_log) if args.audit_log else logging.StreamHandler(sys.stderr)
    )
    audit_logger.addHandler(handler)
    try:
        users, token = LocalUsers.load(settings.home, Path(args.users_file) if args.users_file else None)
        server = serve(build_local_api(app), users, args.host, args.port)
        print(f"orgvault API on {server.url}/v1 (Swagger UI: {server.url}/v1/swagger)", file=sys.stderr)
        if token:
            print("admin token (shown once; only its hash is stored):", file=sys.stderr)
            print(token)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
        server.shutdown()
        server.server_close()
    finally:
        audit_logger.removeHandler(handler)
        app.close()
    return 0
