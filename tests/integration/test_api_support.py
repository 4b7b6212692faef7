"""Helpers for the API integration tests (no tests here).

``api_world`` (module-scoped, built by :func:`build_world`): a small emulator org backed up twice into a
local-mode vault as ``acme`` (an Account renamed and a Contact deleted between the two), a second
connected org ``globex``, the API on a local HTTP server on 127.0.0.1 with token users: viewer,
operator and admin of ``acme`` and a global admin. ``world.call(who, method, path, json=...)``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from orgvault.api.audit import AuditLog
from orgvault.api.jobs import ThreadRunner
from orgvault.api.local_server import LocalUsers, serve, token_hash
from orgvault.cli_api import build_local_api
from tests.integration.test_backup_support import ORG, connect, make_app
from tests.integration.test_restore_support import start_emulator

OTHER = "globex"
TOKENS = {
    "viewer": "tok-viewer-" + "v" * 32,
    "operator": "tok-operator-" + "o" * 32,
    "admin": "tok-admin-" + "a" * 32,
    "global": "tok-global-" + "g" * 32,
}
GROUPS = {
    "viewer": [f"org:{ORG}:viewer"],
    "operator": [f"org:{ORG}:operator", "unrelated-group"],
    "admin": [f"org:{ORG}:admin"],
    "global": ["admin"],
}


@dataclass
class World:
    url: str
    app: Any
    emu: Any
    server: Any
    runner: ThreadRunner
    snapshots: list[str]
    account_id: str
    deleted_contact: str
    audit_lines: list[str] = field(default_factory=list)

    def call(self, who: str | None, method: str, path: str, **kw: Any) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if who is not None:
            headers["Authorization"] = f"Bearer {TOKENS[who]}"
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kw)

    def audits(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.audit_lines]


def users_file(path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "tokens": [
                    {"name": f"{who}-user", "token_sha256": token_hash(tok), "groups": GROUPS[who]}
                    for who, tok in TOKENS.items()
                ]
            }
        )
    )
    return path


def build_world(tmp: Path, *, scale: int = 120) -> World:
    from salesforce_emulator import Org

    org = Org.generate(scale=scale, seed=7)
    emu = start_emulator(org)
    app = make_app(tmp / "home")
    connect(app, emu)
    connect(app, emu, name=OTHER)
    svc = app.backup_service()
    s1 = svc.run_backup(ORG).snapshot.snapshot_id
    account = next(iter(org.true_records("Account")))["Id"]
    contact = next(iter(org.true_records("Contact")))["Id"]
    emu.org.clock.advance(3600)
    org.update("Account", account, {"Name": "Renamed by the API test"})
    org.delete("Contact", contact)
    emu.org.clock.advance(60)
    s2 = app.backup_service().run_backup(ORG).snapshot.snapshot_id
    lines: list[str] = []
    runner = ThreadRunner()
    api = build_local_api(app, runner=runner, audit=AuditLog(sink=lines.append))
    users, _ = LocalUsers.load(tmp / "home", users_file(tmp / "users.json"), create_admin=False)
    server = serve(api, users, "127.0.0.1", 0)
    logging.getLogger("orgvault").setLevel(logging.WARNING)
    return World(
        url=server.url,
        app=app,
        emu=emu,
        server=server,
        runner=runner,
        snapshots=[s1, s2],
        account_id=account,
        deleted_contact=contact,
        audit_lines=lines,
    )


def stop_world(w: World) -> None:
    w.runner.wait(60)
    w.server.shutdown()
    w.server.server_close()
    w.emu.stop()
    w.app.close()
