"""Backup throughput against the bundled emulator, beside a minimal client draining the same data.

    .venv/bin/python -m bench.backup_throughput [--scale 20000] [--scales 100000,1000000]

For each scale, in one run against one emulator org (served in this process):

1. **ceiling** — a minimal client (plain ``requests``) drains the same objects and fields the backup
   plans (Bulk API 2.0 queryAll CSV pages where the backup uses Bulk, REST queryAll pages otherwise)
   plus every file body, doing nothing with the bytes;
2. **full backup** — ``orgvault backup`` in a child process (so its peak RSS is its own, not the
   emulator's): records/s, MB/s (uncompressed record bytes), API calls, peak RSS;
3. **incremental at 1 % change** — ``activity.mutate(update_share=0.01)`` then an incremental, same
   measurements; its time and API calls as a share of the full run's;
4. **the incremental's floor** — a minimal client replays the incremental's own API calls (recorded
   by the child, with every query continuation followed to the end), one at a time and doing nothing
   with the answers: the time the emulator alone needs to answer what any incremental of this change
   must ask. No incremental can be faster than this against this emulator.

Prints a table and writes ``bench/out/backup.json``. API calls per 1M records are extrapolated
linearly from the measured run (labelled as such).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"
ORG = "bench"


# --- child: one backup, measured ------------------------------------------------------------------


def _hwm_kb(pid: int | str = "self") -> int:
    """A process's peak resident set size in KiB: ``VmHWM`` from ``/proc/PID/status`` (0 if gone).

    Not ``getrusage(...).ru_maxrss``: on Linux that survives ``exec`` and so includes the parent's
    RSS at ``fork`` time, i.e. the bench process holding the emulator and its org, which grows with
    the scale (earlier results measured that, not the backup)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_kb() -> int:
    """This process's peak resident set size in KiB (``VmHWM``; ``ru_maxrss`` where there is no /proc)."""
    return _hwm_kb() or int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class PeakMemory:
    """The backup's peak memory when it runs in several processes (local mode extracts objects in
    worker processes): every 50 ms, the sum of ``VmHWM`` of this process and each live descendant
    (each worker's high-water mark, kept after it exits). The sum of the processes' own peaks: an
    upper bound of their simultaneous peak."""

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self._peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def _sample(self) -> None:
        import psutil

        try:
            children = self._me.children(recursive=True)
        except psutil.Error:
            children = []
        for c in children:
            self._peaks[c.pid] = max(self._peaks.get(c.pid, 0), _hwm_kb(c.pid))

    @property
    def processes(self) -> int:
        return 1 + len(self._peaks)

    def total_kb(self) -> int:
        return peak_rss_kb() + sum(self._peaks.values())


def _cpu_seconds() -> float:
    """CPU of this process and of its children that have ended (the backup's worker processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def record_calls(path: str) -> Callable[[], None]:
    """Record every Salesforce API request this process sends (not the login, whose form holds the
    client secret; no Authorization header) for :func:`replay_floor`. Returns the function that
    writes them to ``path`` as JSON lines."""
    import requests

    calls: list[dict[str, Any]] = []
    send = requests.Session.request

    def recorded(self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if "/services/data/" in url:
            headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "authorization"}
            calls.append(
                {
                    "method": method,
                    "url": url,
                    "params": kwargs.get("params"),
                    "json": kwargs.get("json"),
                    "headers": headers,
                    "t": time.perf_counter(),
                }
            )
        return send(self, method, url, *args, **kwargs)

    requests.Session.request = recorded  # type: ignore[method-assign]

    def write() -> None:
        with open(path, "w") as f:
            for c in sorted(calls, key=lambda c: c["t"]):
                f.write(json.dumps({k: v for k, v in c.items() if k != "t"}) + "\n")

    return write


def child(home: str, full: bool, no_prefetch: bool = False, record: str | None = None) -> None:
    from orgvault.bootstrap import default_source_factory, open_app
    from orgvault.settings import Settings

    write_calls = record_calls(record) if record else None

    settings = Settings.from_env(dict(os.environ), home=home)
    factory = default_source_factory(settings, prefetch_pages=False) if no_prefetch else None
    app = open_app(settings, source_factory=factory)
    t0 = time.perf_counter()
    cpu0 = _cpu_seconds()
    with PeakMemory() as memory:
        result = app.backup_service().run_backup(ORG, full=full)
    seconds = time.perf_counter() - t0
    cpu_seconds = _cpu_seconds() - cpu0
    peak_kb = memory.total_kb()
    app.close()
    if write_calls:
        write_calls()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,  # the backup's CPU (user + system), its workers' included
                "processes": memory.processes,
                "workers": settings.workers,
                "records": result.records,
                "records_read": result.records_read,
                "files": result.files,
                "plain_bytes": result.plain_bytes,
                "stored_bytes": result.stored_bytes,
                "api_calls": result.api_calls,
                "peak_rss_mb": peak_kb / 1024,  # sum of the processes' peaks
                "kind": result.snapshot.kind.value,
            }
        )
    )


def run_child(
    home: Path, *, full: bool = False, no_prefetch: bool = False, record: Path | None = None
) -> dict[str, Any]:
    env = {**os.environ, "ORGVAULT_HOME": str(home)}
    cmd = [sys.executable, "-m", "bench.backup_throughput", "--child", str(home)]
    cmd += (["--full"] if full else []) + (["--no-prefetch"] if no_prefetch else [])
    cmd += ["--record", str(record)] if record else []
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]
    )
    if proc.returncode != 0:
        raise SystemExit(f"backup child failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the ceiling: a minimal client -------------------------------------------------------------------


def minimal_session(facts: Any) -> Any:
    """A plain ``requests`` session logged in to the emulator (client credentials)."""
    import requests

    s = requests.Session()
    tok = s.post(
        f"{facts.login_url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(facts.client_id, facts.client_secret),
        timeout=60,
    ).json()["access_token"]
    s.headers["Authorization"] = f"Bearer {tok}"
    return s


def drain(facts: Any, plans: list[Any]) -> dict[str, Any]:
    from orgvault.services.backup import FILTER_BATCH, FILTERED_READS

    s = minimal_session(facts)
    base = f"{facts.instance_url}/services/data/v59.0"
    calls = records = nbytes = files = 0
    t0 = time.perf_counter()
    for p in plans:
        query = f"SELECT {', '.join(p.fields)} FROM {p.name}"
        ids: list[str] = []
        if p.strategy == "bulk":
            job = s.post(f"{base}/jobs/query", json={"operation": "queryAll", "query": query}, timeout=60)
            calls += 1
            if job.status_code >= 400:
                continue
            jid = job.json()["id"]
            while True:
                st = s.get(f"{base}/jobs/query/{jid}", timeout=60).json()
                calls += 1
                if st["state"] in ("JobComplete", "Failed", "Aborted"):
                    break
                time.sleep(0.05)
            locator = None
            while st["state"] == "JobComplete":
                params = {"maxRecords": 50000} | ({"locator": locator} if locator else {})
                r = s.get(f"{base}/jobs/query/{jid}/results", params=params, timeout=300)
                calls += 1
                nbytes += len(r.content)
                records += int(r.headers.get("Sforce-NumberOfRecords", 0))
                locator = r.headers.get("Sforce-Locator")
                if not locator or locator == "null":
                    break
        else:
            queries = [query]
            if p.name.lower() in FILTERED_READS:  # needs `fk IN (parent ids)` batches, as the backup does
                fk, parent = FILTERED_READS[p.name.lower()]
                r = s.get(f"{base}/queryAll", params={"q": f"SELECT Id FROM {parent}"}, timeout=300)
                calls += 1
                pids = [x["Id"] for x in r.json()["records"]]
                queries = [
                    f"{query} WHERE {fk} IN ({', '.join(repr(i) for i in pids[k : k + FILTER_BATCH])})"
                    for k in range(0, len(pids), FILTER_BATCH)
                ]
            for q in queries:
                url = f"{base}/queryAll"
                params: dict[str, str] | None = {"q": q}
                while url:
                    r = s.get(url, params=params, timeout=300)
                    calls += 1
                    nbytes += len(r.content)
                    body = r.json()
                    if r.status_code >= 400:
                        raise SystemExit(f"ceiling client: {p.name} query failed: {body}")
                    records += len(body["records"])
                    ids.extend(x["Id"] for x in body["records"])
                    nxt = body.get("nextRecordsUrl")
                    url, params = (f"{facts.instance_url}{nxt}" if nxt else ""), None
        if p.file_fields:
            if not ids:
                r = s.get(f"{base}/queryAll", params={"q": f"SELECT Id FROM {p.name}"}, timeout=300)
                calls += 1
                ids = [x["Id"] for x in r.json()["records"]]
            for rid in ids:
                for f in p.file_fields:
                    r = s.get(f"{base}/sobjects/{p.name}/{rid}/{f}", timeout=300)
                    calls += 1
                    if r.status_code == 200:
                        nbytes += len(r.content)
                        files += 1
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "records": records, "bytes": nbytes, "files": files, "api_calls": calls}


# --- the incremental's floor: its own calls, replayed by a minimal client ------------------------------

_NEXT = re.compile(rb'"nextRecordsUrl"\s*:\s*"([^"]+)"')


def replay_floor(facts: Any, path: Path) -> dict[str, Any]:
    """Send the recorded calls again, one at a time, reading each answer and nothing more; every
    ``nextRecordsUrl`` in an answer (a query's or a Composite sub-request's) is followed to the end
    instead of replaying the recorded query-more calls, whose locators belong to the first session.
    Reads do not change the org, so the answers are those the incremental got."""
    recorded = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    more_headers = next((c["headers"] for c in recorded if "/query/" in c["url"]), {})
    t0 = time.perf_counter()
    s = minimal_session(facts)  # the incremental logs in too
    calls = nbytes = 0

    def send(method: str, url: str, **kwargs: Any) -> bytes:
        nonlocal calls, nbytes
        r = s.request(method, url, timeout=300, **kwargs)
        calls += 1
        if r.status_code >= 400:
            raise SystemExit(f"floor client: {method} {url} answered {r.status_code}: {r.text[:300]}")
        nbytes += len(r.content)
        return r.content

    for c in recorded:
        if "/query/" in c["url"]:
            continue  # a continuation: followed below from the answer that named it
        body = send(c["method"], c["url"], params=c["params"], json=c["json"], headers=c["headers"])
        todo = [m.decode() for m in _NEXT.findall(body)]
        while todo:
            body = send("GET", f"{facts.instance_url}{todo.pop()}", headers=more_headers)
            todo += [m.decode() for m in _NEXT.findall(body)]
    return {"seconds": time.perf_counter() - t0, "api_calls": calls, "bytes": nbytes}


# --- one scale ----------------------------------------------------------------------------------------


def bench_scale(scale: int, seed: int = 5, no_prefetch: bool = False) -> dict[str, Any]:
    from bench.common import connect_emulator_org
    from orgvault.bootstrap import init_local, open_app
    from orgvault.domain.plan import PlanSettings
    from orgvault.services.backup_glue import plan_objects
    from orgvault.settings import Settings
    from salesforce_emulator import EmulatorServer, Org, activity

    work = Path(tempfile.mkdtemp(prefix=f"ovbench-{scale}-"))
    t0 = time.perf_counter()
    org = Org.generate(work / "org", scale=scale, seed=seed)
    gen_s = time.perf_counter() - t0
    with EmulatorServer.start(org=org, daily_limit=10_000_000) as emu:
        facts = emu.facts
        home = work / "home"
        settings = Settings.from_env({}, home=str(home))
        init_local(settings)
        app = open_app(settings)
        conn = connect_emulator_org(app, facts, ORG)
        plans, _ = plan_objects(app.source_for(conn), PlanSettings())
        app.close()
        ceiling = drain(facts, plans)
        full = run_child(home, no_prefetch=no_prefetch)
        org.clock.advance(900)  # past the overlap window: the incremental reads only what changed
        activity.mutate(org, seed=seed + 1, update_share=0.01, delete_share=0.001)
        org.clock.advance(60)
        inc = run_child(home, no_prefetch=no_prefetch, record=work / "incremental-calls.jsonl")
        floor = replay_floor(facts, work / "incremental-calls.jsonl")
    shutil.rmtree(work, ignore_errors=True)  # the org and vault: ~1.3 GB per 1M records
    rec_s = full["records"] / full["seconds"]
    ceil_rec_s = ceiling["records"] / ceiling["seconds"]
    return {
        "scale": scale,
        "prefetch_pages": not no_prefetch,
        "generate_seconds": round(gen_s, 1),
        "ceiling": {
            **ceiling,
            "records_per_s": ceil_rec_s,
            "mb_per_s": ceiling["bytes"] / 2**20 / ceiling["seconds"],
        },
        "full": {
            **full,
            "records_per_s": rec_s,
            "mb_per_s": full["plain_bytes"] / 2**20 / full["seconds"],
            "share_of_ceiling": rec_s / ceil_rec_s if ceil_rec_s else None,
            "api_calls_per_1m_records_extrapolated": full["api_calls"] / max(full["records"], 1) * 1_000_000,
        },
        "incremental_1pct": {
            **inc,
            "time_share_of_full": inc["seconds"] / full["seconds"],
            "api_call_share_of_full": inc["api_calls"] / max(full["api_calls"], 1),
        },
        "incremental_floor": {
            **floor,
            "time_share_of_full": floor["seconds"] / full["seconds"],
            "incremental_over_floor": inc["seconds"] / floor["seconds"],
        },
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'scale':>9} {'ceiling rec/s':>14} {'full rec/s':>11} {'% ceil':>7} {'MB/s':>6} {'peak RSS':>9} "
        f"{'calls/1M*':>10} {'inc time %':>10} {'inc calls %':>11} {'floor %':>8}",
    ]
    for r in results:
        f, c, i, fl = r["full"], r["ceiling"], r["incremental_1pct"], r["incremental_floor"]
        lines.append(
            f"{r['scale']:>9,} {c['records_per_s']:>14,.0f} {f['records_per_s']:>11,.0f} "
            f"{100 * (f['share_of_ceiling'] or 0):>6.0f}% {f['mb_per_s']:>6.1f} {f['peak_rss_mb']:>7.0f}MB "
            f"{f['api_calls_per_1m_records_extrapolated']:>10,.0f} {100 * i['time_share_of_full']:>9.1f}% "
            f"{100 * i['api_call_share_of_full']:>10.1f}% {100 * fl['time_share_of_full']:>7.1f}%"
        )
    lines.append("* API calls per 1M records: extrapolated linearly from the measured run")
    lines.append(
        "floor %: the incremental's own API calls replayed one at a time by a minimal client, as a share "
        "of the full run's time (the least any incremental of this change can take here)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=20_000)
    ap.add_argument("--scales", help="comma-separated scales, e.g. 100000,1000000 (overrides --scale)")
    ap.add_argument(
        "--no-prefetch",
        action="store_true",
        help="build the Salesforce source with prefetch_pages=False (by default the next Bulk page "
        "downloads while this one is sealed)",
    )
    ap.add_argument("--out", default=str(OUT / "backup.json"), help="where to write the JSON results")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--record", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.full, args.no_prefetch, args.record)
        return 0
    scales = [int(x) for x in args.scales.split(",")] if args.scales else [args.scale]
    results = [bench_scale(s, no_prefetch=args.no_prefetch) for s in scales]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "command": "python -m bench.backup_throughput " + " ".join(argv or sys.argv[1:]),
        "results": results,
    }
    out.write_text(json.dumps(doc, indent=2))
    print(table(results))
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
