"""Credentials: one Secrets Manager secret per connected org (``orgvault/<org>/salesforce``), encrypted with the
platform KMS key. The secret holds the Salesforce credentials (JWT bearer: consumer key, username and
private key; or client credentials / refresh token). It is created empty (a placeholder JSON) and filled
by the operator (``docs/deploy.md``); its value never appears in templates, logs or events.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra_cdk.config import OrgConfig
from infra_cdk.names import org_secret_name


class Credentials(Construct):
    """``secrets`` (org name → secret)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, orgs: tuple[OrgConfig, ...], key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        self.secrets: dict[str, secretsmanager.Secret] = {}
        for org in orgs:
            self.secrets[org.name] = secretsmanager.Secret(
                self,
                f"Secret-{org.name}",
                secret_name=org_secret_name(org.name),
                description=f"Salesforce credentials of org {org.name} (filled by the operator; see docs/deploy.md)",
                encryption_key=key,
                removal_policy=RemovalPolicy.RETAIN,
            )
