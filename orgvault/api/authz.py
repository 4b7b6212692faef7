"""Who is calling, and may they do this to that org.

Principals come from the API Gateway request context, never from request headers the client controls:

- **Cognito users** (and local users of ``orgvault serve``, which builds the same context):
  ``requestContext.authorizer.claims`` with ``sub``, ``cognito:username`` and ``cognito:groups``.
  Groups name roles per org, ``org:<name>:viewer|operator|admin``, or ``admin`` (admin of every org).
- **IAM callers** (machine clients on the IAM-authorised resources): ``requestContext.identity.userArn``,
  mapped to groups by configuration (``{"arn:aws:iam::123456789012:role/ci": ["org:acme:operator"]}``;
  an assumed-role session ARN matches its role ARN).

Roles are ordered viewer < operator < admin. :func:`require` raises ``Unauthenticated`` (401) for no
principal and ``Forbidden`` (403) for the wrong org or too small a role — the same 403 whether or not
the org exists, so the API never reveals which orgs exist to someone who may not see them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orgvault.api.errors import Forbidden, Unauthenticated

GLOBAL_ADMIN_GROUP = "admin"
_GROUP = re.compile(r"^org:(?P<org>[A-Za-z0-9][A-Za-z0-9_.-]{0,63}):(?P<role>viewer|operator|admin)$")
_ASSUMED = re.compile(r"^arn:(?P<part>[^:]+):sts::(?P<acct>\d{12}):assumed-role/(?P<role>[^/]+)/.+$")


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


class PrincipalKind(StrEnum):
    USER = "user"
    MACHINE = "machine"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``roles`` maps org name -> the highest role held there."""

    subject: str
    name: str
    kind: PrincipalKind = PrincipalKind.USER
    roles: Mapping[str, Role] = field(default_factory=dict)
    global_admin: bool = False

    def role_in(self, org: str) -> Role | None:
        if self.global_admin:
            return Role.ADMIN
        return self.roles.get(org)

    def can(self, org: str, role: Role) -> bool:
        held = self.role_in(org)
        return held is not None and held.rank >= role.rank

    def visible(self, orgs: Iterable[str]) -> list[str]:
        return [o for o in orgs if self.role_in(o) is not None]

    def audit_identity(self) -> dict[str, str]:
        """What the audit log records about the caller (no credentials exist here to leak)."""
        return {"subject": self.subject, "name": self.name, "kind": str(self.kind)}


def parse_groups(value: Any) -> list[str]:
    """``cognito:groups`` as API Gateway passes it: a list, ``"a,b"``, or ``"[a b]"``."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        items = [str(v) for v in value]
    else:
        items = re.split(r"[,\s]+", str(value).strip().strip("[]"))
    return [i.strip() for i in items if i.strip()]


def principal_from_groups(
    subject: str, name: str, groups: Iterable[str], kind: PrincipalKind = PrincipalKind.USER
) -> Principal:
    """Groups that are not role groups are ignored; the highest role per org wins."""
    roles: dict[str, Role] = {}
    is_admin = False
    for g in groups:
        if g == GLOBAL_ADMIN_GROUP:
            is_admin = True
            continue
        m = _GROUP.match(g)
        if not m:
            continue
        role = Role(m["role"])
        org = m["org"]
        if org not in roles or roles[org].rank < role.rank:
            roles[org] = role
    return Principal(subject=subject, name=name, kind=kind, roles=roles, global_admin=is_admin)


def role_arn(arn: str) -> str:
    """The IAM role ARN of an assumed-role session ARN (other ARNs unchanged)."""
    m = _ASSUMED.match(arn)
    return f"arn:{m['part']}:iam::{m['acct']}:role/{m['role']}" if m else arn


def principal_from_event(
    event: Mapping[str, Any], iam_principals: Mapping[str, Iterable[str]] | None = None
) -> Principal | None:
    """The caller of an API Gateway REST proxy event, or ``None`` (anonymous)."""
    ctx = event.get("requestContext") or {}
    if not isinstance(ctx, Mapping):
        return None
    authorizer = ctx.get("authorizer") or {}
    claims = authorizer.get("claims") if isinstance(authorizer, Mapping) else None
    if isinstance(claims, Mapping) and claims.get("sub"):
        sub = str(claims["sub"])
        name = str(claims.get("cognito:username") or claims.get("username") or claims.get("email") or sub)
        kind = PrincipalKind.MACHINE if claims.get("orgvault:kind") == "machine" else PrincipalKind.USER
        return principal_from_groups(sub, name, parse_groups(claims.get("cognito:groups")), kind)
    identity = ctx.get("identity") or {}
    arn = identity.get("userArn") if isinstance(identity, Mapping) else None
    if isinstance(arn, str) and arn.startswith("arn:"):
        mapping = iam_principals or {}
        groups = mapping.get(arn) or mapping.get(role_arn(arn)) or ()
        return principal_from_groups(arn, role_arn(arn), groups, PrincipalKind.MACHINE)
    return None


def require(principal: Principal | None, org: str, role: Role) -> Principal:
    """Allow ``principal`` to act as ``role`` on ``org`` or raise 401/403."""
    if principal is None:
        raise Unauthenticated("sign in first: send a bearer token (Authorization: Bearer ...)")
    if not principal.can(org, role):
        raise Forbidden(
            f"{principal.name} may not do this on org {org!r}: it needs the {role} role "
            f"(group org:{org}:{role})"
        )
    return principal
