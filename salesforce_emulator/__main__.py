"""``python -m salesforce_emulator serve --port P [--tls] [--scale N] [--seed S] [--state DIR] ...``

When ready, prints exactly one JSON line on stdout (the connection facts) and serves until SIGINT/SIGTERM.
Nothing else is written to stdout. With ``--state DIR`` an org persisted there is reopened (generated
into it the first time).
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
from .limits import DEFAULT_DAILY_LIMIT


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


def serve(args: argparse.Namespace) -> int:
    from .auth import Credentials
    from .server import EmulatorServer, write_ready_line

    credentials = None
    if args.jwt_cert:
        credentials = Credentials(jwt_public_key=Path(args.jwt_cert).read_bytes())
    org = _org(args)
    emu = EmulatorServer.start(
        org,
        tls=args.tls,
        faults=_faults(args),
        host=args.host,
        port=args.port,
        tls_dir=args.tls_dir,
        daily_limit=args.daily_limit,
        bulk_delay=args.bulk_delay,
        bulk_clock=args.bulk_clock,
        locator_ttl_seconds=args.locator_ttl,
        credentials=credentials,
    )
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
