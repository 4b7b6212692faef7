"""The ``orgvault`` command line (local mode).

Exit codes (stable, for scripts)::

    0  ok
    1  error (the message says what to do)
    2  usage / configuration error
    3  paused: the API allowance share is used up; run the same command again later to resume
    4  verify failed: the snapshot is damaged or tampered with (the bad objects/chunks are named)
    5  locked: another run of the same org is in progress
    6  incomplete: the backup's snapshot was committed, but some data objects could not be read this
       run (named on stderr and in ``--json`` "not_read"; the snapshot keeps their last backup, if any)

Progress goes to stderr (plain lines when stderr is not a terminal); ``--json`` prints one JSON
document on stdout. ``OrgVaultError``s print one line, never a traceback; secrets never print.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from orgvault.errors import (
    ApiBudgetExhausted,
    ConfigError,
    IntegrityError,
    OrgVaultError,
    RunInProgress,
)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PAUSED, EXIT_VERIFY, EXIT_LOCKED, EXIT_INCOMPLETE = 0, 1, 2, 3, 4, 5, 6

# Secrets may come from these environment variables instead of flags (flags show up in `ps`).
SECRET_ENV = {
    "password": "ORGVAULT_SF_PASSWORD",
    "security_token": "ORGVAULT_SF_SECURITY_TOKEN",
    "client_secret": "ORGVAULT_SF_CLIENT_SECRET",
    "refresh_token": "ORGVAULT_SF_REFRESH_TOKEN",
    "private_key": "ORGVAULT_SF_PRIVATE_KEY",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 itself; keep the one-line style
        self.print_usage(sys.stderr)
        print(f"orgvault: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


BACKUP_SETTINGS = """settings (environment):
  ORGVAULT_WORKERS           objects a full backup extracts at once, each in its own worker
                             process (2; 1 = one after another in this process)
  ORGVAULT_BUDGET_SHARE      stop cleanly once this share of the daily API allowance is used (0.8)
  ORGVAULT_OVERLAP_SECONDS   incremental overlap window before the watermark (300)
  ORGVAULT_RECONCILE_EVERY   read all Ids (hard deletes, purges) every N incrementals (7; 1 = always)
  ORGVAULT_CHUNK_RECORDS / ORGVAULT_CHUNK_BYTES   chunk bounds (20000 / 8 MiB)
  ORGVAULT_PAGE_RECORDS      records per Bulk results page held in memory (5000)
  ORGVAULT_ONLY / ORGVAULT_INCLUDE / ORGVAULT_EXCLUDE   comma-separated object names or patterns

exit codes: 0 ok; 1 error; 2 usage; 3 paused (API share used up: run it again later to resume);
  5 locked (another run of this org); 6 incomplete (snapshot committed, but the objects named on
  stderr and in --json "not_read" could not be read this run)
"""


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="orgvault", description="Back up Salesforce orgs into a vault you own.")
    p.add_argument("--home", help="local vault directory (default: $ORGVAULT_HOME or ~/.orgvault)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("init", help="create a local vault (directory, SQLite catalog, key file)")
    s.add_argument("--vault", dest="vault", help="vault directory (same as --home)")
    s.add_argument("--json", action="store_true")

    org = sub.add_parser("org", help="connected orgs").add_subparsers(
        dest="org_command", required=True, parser_class=_Parser
    )
    a = org.add_parser("add", help="connect an org (credentials are stored encrypted, never printed)")
    a.add_argument("name")
    a.add_argument("--instance-url", required=True)
    a.add_argument("--login-url", help="OAuth/SOAP login host (default: the instance URL)")
    a.add_argument(
        "--auth", required=True, choices=["jwt", "client-credentials", "refresh-token", "password"]
    )
    a.add_argument("--username")
    a.add_argument("--client-id", help="connected app consumer key (also --consumer-key)")
    a.add_argument("--consumer-key")
    a.add_argument("--client-secret", help="prefer $ORGVAULT_SF_CLIENT_SECRET or --secrets-file")
    a.add_argument("--password", help="prefer $ORGVAULT_SF_PASSWORD, --password-stdin or --secrets-file")
    a.add_argument("--security-token")
    a.add_argument("--refresh-token", help="prefer $ORGVAULT_SF_REFRESH_TOKEN")
    a.add_argument("--private-key-file", help="PEM file of the JWT signing key")
    a.add_argument(
        "--secret-stdin",
        action="store_true",
        help="read the secret (password, client secret or refresh token) from stdin",
    )
    a.add_argument("--secrets-file", help="JSON file with credential fields")
    a.add_argument("--api-version", default="59.0")
    a.add_argument("--no-test-login", action="store_true", help="store without trying to log in")
    a.add_argument("--replace", action="store_true", help="replace an existing connection of that name")
    a.add_argument("--json", action="store_true")
    ls = org.add_parser("list", help="list connected orgs")
    ls.add_argument("--json", action="store_true")

    b = sub.add_parser(
        "backup",
        help="back up an org (full the first time, incremental after)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=BACKUP_SETTINGS,
    )
    b.add_argument("name")
    b.add_argument("--full", action="store_true", help="read every object in full")
    b.add_argument("--json", action="store_true")

    sn = sub.add_parser("snapshots", help="list an org's committed snapshots")
    sn.add_argument("name")
    sn.add_argument("--json", action="store_true")

    v = sub.add_parser("verify", help="re-read and authenticate every chunk of a snapshot")
    v.add_argument("name")
    v.add_argument("--snapshot", help="snapshot id (default: the newest)")
    v.add_argument("--json", action="store_true")

    d = sub.add_parser("demo", help="back up the bundled emulator org, change it, back up again, verify")
    d.add_argument("--scale", type=int, default=3000, help="about how many records the demo org holds")
    d.add_argument("--keep", help="keep the demo vault in this directory (default: a temp dir)")
    d.add_argument("--json", action="store_true")
    from orgvault.cli_restore import register as register_restore  # browse, history, diff, restore

    register_restore(sub)
    from orgvault.cli_api import register as register_api  # serve

    register_api(sub)
    return p


# --- output helpers ----------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def print_json(value: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    out.write(json.dumps(_jsonable(value), indent=2, sort_keys=True) + "\n")


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


class Progress:
    """Per-object progress on stderr: a live line on a terminal, one plain line per object otherwise."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.quiet = quiet
        self._last = 0.0

    def __call__(self, p: Any) -> None:
        if self.quiet:
            return
        rate = p.records / p.seconds if p.seconds > 0 else 0.0
        line = (
            f"{p.object_name:<28} {p.records:>9,} records {human_bytes(p.plain_bytes):>10} "
            f"{rate:>9,.0f} rec/s {p.api_calls:>5} API calls" + (f" {p.files:>5} files" if p.files else "")
        )
        if self.tty:
            now = time.monotonic()
            if p.done or now - self._last > 0.2:
                self.stream.write("\r\033[K" + line + ("\n" if p.done else ""))
                self.stream.flush()
                self._last = now
        elif p.done:
            self.stream.write(line + "\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(text + "\n")
            self.stream.flush()


# --- commands ----------------------------------------------------------------------------------


def _settings(args: argparse.Namespace, env: dict[str, str]) -> Any:
    from orgvault.settings import Settings

    home = getattr(args, "vault", None) or args.home
    return Settings.from_env(env, home=home) if home else Settings.from_env(env)


def cmd_init(args: argparse.Namespace, env: dict[str, str]) -> int:
    from orgvault.bootstrap import init_local

    settings = _settings(args, env)
    info = init_local(settings)
    if args.json:
        print_json(info)
    else:
        print(f"vault ready at {info['home']}")
        print(f"  objects: {info['vault_dir']}\n  catalog: {info['catalog']}\n  key:     {info['key']}")
    return EXIT_OK


def _credentials(args: argparse.Namespace, env: dict[str, str], stdin: TextIO) -> dict[str, str]:
    creds: dict[str, str] = {}
    if args.secrets_file:
        try:
            data = json.loads(Path(args.secrets_file).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read --secrets-file {args.secrets_file}: {type(exc).__name__}"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError("--secrets-file must hold a JSON object of credential fields")
        creds.update({str(k): str(v) for k, v in data.items() if v is not None})
    for key, var in SECRET_ENV.items():
        if env.get(var):
            creds[key] = env[var]
    flag_map = {
        "username": args.username,
        "client_id": args.client_id or args.consumer_key,
        "consumer_key": args.consumer_key or args.client_id,
        "client_secret": args.client_secret,
        "password": args.password,
        "security_token": args.security_token,
        "refresh_token": args.refresh_token,
    }
    creds.update({k: v for k, v in flag_map.items() if v})
    if args.private_key_file:
        try:
            creds["private_key"] = Path(args.private_key_file).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read --private-key-file: {exc.strerror}") from None
    if args.secret_stdin:
        value = stdin.readline().rstrip("\r\n")
        slot = {
            "password": "password",
            "client-credentials": "client_secret",
            "refresh-token": "refresh_token",
            "jwt": "private_key",
        }[args.auth]
        if args.auth == "jwt":
            value = value + stdin.read()
        creds[slot] = value
    return creds


def cmd_org(args: argparse.Namespace, env: dict[str, str], stdin: TextIO) -> int:
    from orgvault.bootstrap import open_app
    from orgvault.services.orgs import connect_org

    app = open_app(_settings(args, env))
    try:
        if args.org_command == "list":
            orgs = app.catalog.list_orgs()
            rows = [
                {
                    "name": o.name,
                    "instance_url": o.instance_url,
                    "auth": o.auth_method.value,
                    "salesforce_org_id": o.salesforce_org_id,
                    "head": (h.snapshot_id if (h := app.catalog.head_snapshot(o.name)) else None),
                }
                for o in orgs
            ]
            if args.json:
                print_json(rows)
            elif not rows:
                print("no orgs connected; add one with `orgvault org add NAME --instance-url ... --auth ...`")
            else:
                for r in rows:
                    print(
                        f"{r['name']:<24} {r['instance_url']:<40} {r['auth']:<18} last snapshot: {r['head'] or '-'}"
                    )
            return EXIT_OK
        creds = _credentials(args, env, stdin)
        conn = connect_org(
            catalog=app.catalog,
            keys=app.keys,
            secrets=app.secrets,
            name=args.name,
            instance_url=args.instance_url,
            login_url=args.login_url,
            auth_method=args.auth,
            credentials=creds,
            api_version=args.api_version,
            test_login=None if args.no_test_login else app.make_source,
            replace_existing=args.replace,
        )
        out = {
            "name": conn.name,
            "instance_url": conn.instance_url,
            "auth": conn.auth_method.value,
            "salesforce_org_id": conn.salesforce_org_id,
        }
        if args.json:
            print_json(out)
        else:
            print(
                f"connected org {conn.name!r} ({conn.salesforce_org_id or 'login not tested'}); "
                f"credentials stored encrypted"
            )
        return EXIT_OK
    finally:
        app.close()


def cmd_backup(args: argparse.Namespace, env: dict[str, str]) -> int:
    from orgvault.bootstrap import open_app

    app = open_app(_settings(args, env))
    progress = Progress()
    try:
        svc = app.backup_service()
        result = svc.run_backup(args.name, full=args.full, progress=progress)
    finally:
        app.close()
    summary = backup_summary(result)
    if args.json:
        print_json(summary)
    else:
        print(
            f"snapshot {result.snapshot.snapshot_id} ({result.snapshot.kind.value}): {result.objects} objects, "
            f"{result.records:,} records, {result.files} new files, {human_bytes(result.plain_bytes)} read → "
            f"{human_bytes(result.stored_bytes)} stored, {result.api_calls} API calls, {result.seconds:.1f} s"
        )
        if result.skipped:
            progress.note(
                f"{len(result.skipped)} objects skipped (see --json for the reasons): "
                + ", ".join(s.name for s in result.skipped[:12])
                + (" ..." if len(result.skipped) > 12 else "")
            )
    not_read = warn_unread_objects(progress, result.skipped)
    return EXIT_INCOMPLETE if not_read else EXIT_OK


def unread_objects(skipped: Any) -> list[Any]:
    """The data objects a run meant to read but could not (their describe failed)."""
    return [s for s in skipped if str(s.reason).startswith("describe_failed")]


def warn_unread_objects(progress: Progress, skipped: Any) -> list[str]:
    """Objects skipped by rule (change events, feeds, ...) are expected; a data object whose describe
    failed is not, and must never hide in that list: name every one on its own line, also with
    ``--json`` (stderr), so nobody believes it was backed up this run. Returns their names (the
    backup then exits ``EXIT_INCOMPLETE``, so that a scheduler notices too)."""
    failed = unread_objects(skipped)
    for s in failed:
        progress.note(
            f"WARNING: {s.name} was NOT read this run (its describe failed: {s.reason}); "
            "the snapshot keeps its last backup, if any; the next run tries it again"
        )
    return [s.name for s in failed]


def backup_summary(result: Any) -> dict[str, Any]:
    return {
        "snapshot_id": result.snapshot.snapshot_id,
        "kind": result.snapshot.kind.value,
        "parent_id": result.snapshot.parent_id,
        "objects": result.objects,
        "records": result.records,
        "files_downloaded": result.files,
        "plain_bytes": result.plain_bytes,
        "stored_bytes": result.stored_bytes,
        "api_calls": result.api_calls,
        "seconds": round(result.seconds, 3),
        "skipped": [{"name": s.name, "reason": s.reason} for s in result.skipped],
        "not_read": [s.name for s in unread_objects(result.skipped)],
    }


def cmd_snapshots(args: argparse.Namespace, env: dict[str, str]) -> int:
    from orgvault.bootstrap import open_app

    app = open_app(_settings(args, env))
    try:
        app.catalog.get_org(args.name)
        snaps = app.catalog.list_snapshots(args.name)
    finally:
        app.close()
    rows: list[dict[str, Any]] = [
        {
            "snapshot_id": s.snapshot_id,
            "created_at": s.created_at,
            "kind": s.kind.value,
            "parent_id": s.parent_id,
            "objects": s.objects,
            "records": s.records,
            "stored_bytes": s.stored_bytes,
        }
        for s in snaps
    ]
    if args.json:
        print_json(rows)
    elif not rows:
        print(f"org {args.name!r} has no snapshots yet; run `orgvault backup {args.name}`")
    else:
        for r in rows:
            print(
                f"{r['snapshot_id']}  {r['created_at']:%Y-%m-%d %H:%M:%S}  {r['kind']:<11} "
                f"{r['objects']:>4} objects {r['records']:>10,} records {human_bytes(r['stored_bytes']):>10}"
            )
    return EXIT_OK


def cmd_verify(args: argparse.Namespace, env: dict[str, str]) -> int:
    from orgvault.bootstrap import open_app
    from orgvault.services.verify import verify_snapshot

    app = open_app(_settings(args, env))
    try:
        report = verify_snapshot(app.catalog, app.vault, args.name, args.snapshot)
    finally:
        app.close()
    if args.json:
        print_json(report.to_json())
    else:
        print(report.summary())
        for problem in report.problems:
            print(f"  BAD {problem}", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_VERIFY


def cmd_demo(args: argparse.Namespace, env: dict[str, str]) -> int:
    from orgvault.demo import run_demo

    summary = run_demo(scale=args.scale, keep=args.keep, progress=Progress(), env=env)
    if args.json:
        print_json(summary)
    return EXIT_OK if summary.get("ok") else EXIT_VERIFY


# --- entry point -------------------------------------------------------------------------------


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, ApiBudgetExhausted):
        return EXIT_PAUSED
    if isinstance(exc, RunInProgress):
        return EXIT_LOCKED
    if isinstance(exc, IntegrityError):
        return EXIT_VERIFY
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    return EXIT_ERROR


def main(
    argv: Sequence[str] | None = None, *, env: dict[str, str] | None = None, stdin: TextIO | None = None
) -> int:
    """Run one command; returns the exit code (``console_scripts`` passes it to ``sys.exit``)."""
    env = dict(os.environ) if env is None else env
    stdin = stdin or sys.stdin
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    handlers: dict[str, Callable[[], int]] = {
        "init": lambda: cmd_init(args, env),
        "org": lambda: cmd_org(args, env, stdin),
        "backup": lambda: cmd_backup(args, env),
        "snapshots": lambda: cmd_snapshots(args, env),
        "verify": lambda: cmd_verify(args, env),
        "demo": lambda: cmd_demo(args, env),
    }
    try:
        if args.command not in handlers and hasattr(args, "run"):  # commands registered by other modules
            return int(args.run(args, env))
        return handlers[args.command]()
    except OrgVaultError as exc:
        print(f"orgvault: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print("orgvault: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
