"""What the benches share."""

from __future__ import annotations

from typing import Any


def connect_emulator_org(app: Any, facts: Any, name: str) -> Any:
    """Connect the bundled emulator's org to ``app`` as ``name`` (client credentials, login tried)."""
    from orgvault.services.orgs import connect_org

    return connect_org(
        catalog=app.catalog,
        keys=app.keys,
        secrets=app.secrets,
        name=name,
        instance_url=facts.instance_url,
        login_url=facts.login_url,
        auth_method="client-credentials",
        credentials={"client_id": facts.client_id, "client_secret": facts.client_secret},
        test_login=app.make_source,
    )
