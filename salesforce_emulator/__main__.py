"""``python -m salesforce_emulator serve --port P [--tls] [--scale N] [--seed S] [--state DIR] ...``

When ready, prints exactly one JSON line on stdout (the connection facts) and serves until SIGINT/SIGTERM.
Nothing else is written to stdout. With ``--state DIR`` an org persisted there is reopened (generated
into it the first time). Every ``ServerOptions`` field and every fault has a flag; see README.md or
``serve --help``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .faults import FaultRule, Faults
from .limits import DEFAULT_DAILY_LIMIT, LONG_RUNNING_SECONDS, MAX_LONG_RUNNING


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m salesforce_emulator")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the emulated org over HTTP(S)")
    serve.add_argument("--port", type=int, default=0, help="0 = a free port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--tls", action="store_true", help="serve HTTPS with a generated throwaway CA")
    serve.add_argument("--tls-dir", help="where to write the CA / server certificate (default: temp dir)")
    serve.add_argument("--scale", type=int, default=500)
    serve.add_argument("--seed", type=int, default=1)
    serve.add_argument("--state", help="directory holding the org's SQLite file (reopened if present)")
    serve.add_argument("--bulk-delay", type=float, default=0.0, help="Bulk 2.0 processing seconds")
    serve.add_argument("--bulk-clock", choices=("wall", "org"), default="wall")
    serve.add_argument("--daily-limit", type=int, default=DEFAULT_DAILY_LIMIT)
    serve.add_argument("--locator-ttl", type=float, default=2 * 86400, help="query locator TTL (org seconds)")
    serve.add_argument("--jwt-cert", help="PEM certificate or public key verifying JWT bearer assertions")
    serve.add_argument(
        "--credentials-file",
        help="JSON file with the org's user / connected app: username, password, security_token, client_id, "
        "client_secret, refresh_token, audiences (any subset; secrets stay off the command line)",
    )
    serve.add_argument("--access-token-file", help="file holding the initial access token to issue")
    serve.add_argument("--admin-token-file", help="file holding the admin API token")
    q = serve.add_argument_group("query paging and concurrency")
    q.add_argument("--default-batch-size", type=int, default=2000, help="REST query page size")
    q.add_argument(
        "--long-text-fields",
        type=int,
        default=2,
        help="pages shrink to --long-text-batch-size when a select has this many long text fields (0 = off)",
    )
    q.add_argument("--long-text-batch-size", type=int, default=200)
    q.add_argument(
        "--max-long-running",
        type=int,
        default=MAX_LONG_RUNNING,
        help="cap of data API requests in flight for --long-running-seconds or more (0 = no cap); "
        "over it: 403 REQUEST_LIMIT_EXCEEDED",
    )
    q.add_argument("--long-running-seconds", type=float, default=LONG_RUNNING_SECONDS)
    u = serve.add_argument_group("upload limits (bytes; Salesforce's by default)")
    u.add_argument("--max-content-version-bytes", type=int, default=2 * 1024**3, help="multipart VersionData")
    u.add_argument(
        "--max-blob-bytes", type=int, default=500 * 1024**2, help="multipart Body (Attachment, ...)"
    )
    u.add_argument("--max-json-body-bytes", type=int, default=50 * 1024**2, help="non-multipart JSON body")
    u.add_argument("--max-base64-chars", type=int, default=75 * 1024**2 // 2, help="a base64 value in JSON")
    g = serve.add_argument_group("faults")
    g.add_argument("--session-max-requests", type=int)
    g.add_argument("--session-ttl", type=float, help="session expiry in seconds (org clock)")
    g.add_argument("--error-rate", type=float, default=0.0, help="share of REST calls answered 503")
    g.add_argument("--fault-seed", type=int, default=0)
    g.add_argument("--limit-exceeded", action="store_true", help="refuse every call: REQUEST_LIMIT_EXCEEDED")
    g.add_argument("--query-timeout-rows", type=int)
    g.add_argument("--invalid-locator", action="store_true")
    g.add_argument("--latency", type=float, default=0.0, help="seconds added to every REST call")
    g.add_argument("--drop-after-bytes", type=int, help="cut every REST body after N bytes")
    g.add_argument("--bulk-fail", action="store_true")
    g.add_argument(
        "--fault-rule",
        action="append",
        default=[],
        help='JSON FaultRule, e.g. \'{"pattern": "/query", "count": 2, "status": 503}\'',
    )
    return parser


def _faults(args: argparse.Namespace) -> Faults:
    return Faults(
        session_max_requests=args.session_max_requests,
        session_ttl_seconds=args.session_ttl,
        error_rate=args.error_rate,
        seed=args.fault_seed,
        limit_exceeded=args.limit_exceeded,
        query_timeout_rows=args.query_timeout_rows,
        invalid_locator=args.invalid_locator,
        latency_seconds=args.latency,
        drop_after_bytes=args.drop_after_bytes,
        bulk_fail=args.bulk_fail,
        rules=[FaultRule(**json.loads(r)) for r in args.fault_rule],
    )


def _org(args: argparse.Namespace) -> Any:
    from .org import Org

    if args.state:
        state = Path(args.state)
        if (state / "org.sqlite").exists():
            return Org(state, seed=args.seed)
        state.mkdir(parents=True, exist_ok=True)
        return Org.generate(state, scale=args.scale, seed=args.seed)
    return Org.generate(scale=args.scale, seed=args.seed)


def _read_secret(path: str | None) -> str | None:
    return Path(path).read_text().strip() or None if path else None


def _server_options(args: argparse.Namespace) -> dict[str, Any]:
    """``ServerOptions`` fields (keyword arguments of ``EmulatorServer.start``) from the serve flags."""
    from .auth import Credentials

    credentials = None
    if args.credentials_file or args.jwt_cert:
        given = json.loads(Path(args.credentials_file).read_text()) if args.credentials_file else {}
        if "audiences" in given:
            given["audiences"] = tuple(given["audiences"])
        if args.jwt_cert:
            given["jwt_public_key"] = Path(args.jwt_cert).read_bytes()
        credentials = Credentials(**given)
    return {
        "tls": args.tls,
        "host": args.host,
        "port": args.port,
        "tls_dir": args.tls_dir,
        "daily_limit": args.daily_limit,
        "bulk_delay": args.bulk_delay,
        "bulk_clock": args.bulk_clock,
        "locator_ttl_seconds": args.locator_ttl,
        "credentials": credentials,
        "access_token": _read_secret(args.access_token_file),
        "admin_token": _read_secret(args.admin_token_file),
        "default_batch_size": args.default_batch_size,
        "long_text_fields": args.long_text_fields or None,
        "long_text_batch_size": args.long_text_batch_size,
        "max_long_running": args.max_long_running or None,
        "long_running_seconds": args.long_running_seconds,
        "max_content_version_bytes": args.max_content_version_bytes,
        "max_blob_bytes": args.max_blob_bytes,
        "max_json_body_bytes": args.max_json_body_bytes,
        "max_base64_chars": args.max_base64_chars,
    }


def serve(args: argparse.Namespace) -> int:
    from .server import EmulatorServer, write_ready_line

    options = _server_options(args)
    org = _org(args)
    emu = EmulatorServer.start(org, faults=_faults(args), **options)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    write_ready_line(emu.facts)
    try:
        stop.wait()
    finally:
        emu.stop()
        org.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
