"""The orgvault stack: keys → storage, catalog, credentials → layers, functions → workflow → schedules,
audit, monitoring. Wiring only; each capability lives in its construct."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra_cdk.config import DeploymentConfig
from infra_cdk.constructs.api import Api
from infra_cdk.constructs.audit import Audit
from infra_cdk.constructs.catalog import Catalog
from infra_cdk.constructs.credentials import Credentials
from infra_cdk.constructs.functions import Access, Functions, FunctionSpec
from infra_cdk.constructs.keys import Keys
from infra_cdk.constructs.layers import Layers
from infra_cdk.constructs.monitoring import Monitoring
from infra_cdk.constructs.restore_workflow import RestoreWorkflow
from infra_cdk.constructs.schedules import Schedules
from infra_cdk.constructs.vault_storage import VaultStorage
from infra_cdk.constructs.workflow import BackupWorkflow


class OrgVaultStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, **kwargs: Any
    ) -> None:
        super().__init__(
            scope, construct_id, description="orgvault: Salesforce backup in your own account", **kwargs
        )
        self.config = config
        self.keys = Keys(self, "Keys", orgs=config.orgs)
        self.storage = VaultStorage(self, "VaultStorage", config=config, key=self.keys.platform_key)
        self.catalog = Catalog(self, "Catalog", key=self.keys.platform_key)
        self.credentials = Credentials(self, "Credentials", orgs=config.orgs, key=self.keys.platform_key)
        self.layers = Layers(self, "Layers")
        self.functions = Functions(
            self,
            "Functions",
            config=config,
            layers=self.layers,
            table=self.catalog.table,
            bucket=self.storage.bucket,
            platform_key=self.keys.platform_key,
            org_keys=self.keys.org_keys,
            secrets=self.credentials.secrets,
        )
        fns = self.functions.functions
        self.backup = BackupWorkflow(
            self,
            "Backup",
            start=fns["backup_start"],
            extract=fns["backup_extract"],
            finalize=fns["backup_finalize"],
            fail=fns["backup_fail"],
            map_concurrency=config.map_concurrency,
            key=self.keys.platform_key,
        )
        self.restore = RestoreWorkflow(self, "Restore", run=fns["restore_run"], key=self.keys.platform_key)
        api_fn = self.functions.add(
            FunctionSpec(
                "api",
                "orgvault API: browse, diff, restore",
                Access(
                    bucket_read=True,
                    bucket_write=True,
                    secrets=True,
                    org_key_encrypt=True,
                    org_key_decrypt=True,
                ),
                timeout_seconds=29,
                memory_mb=1024,
            ),
            reserved=20,
        )
        self.api = Api(
            self,
            "Api",
            handler=api_fn,
            orgs=[o.name for o in config.orgs],
            state_machine=self.backup.state_machine,
            restore_state_machine=self.restore.state_machine,
            log_key=self.keys.platform_key,
        )
        self.schedules = Schedules(
            self,
            "Schedules",
            orgs=config.orgs,
            state_machine=self.backup.state_machine,
            key=self.keys.platform_key,
        )
        self.audit = Audit(
            self,
            "Audit",
            config=config,
            key=self.keys.platform_key,
            vault_bucket=self.storage.bucket,
            access_log_bucket=self.storage.access_log_bucket,
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            key=self.keys.platform_key,
            state_machine=self.backup.state_machine,
            functions=dict(fns),
            dead_letters=self.schedules.dead_letters,
        )
        CfnOutput(self, "VaultBucketName", value=self.storage.bucket.bucket_name)
        CfnOutput(self, "CatalogTableName", value=self.catalog.table.table_name)
        CfnOutput(self, "BackupStateMachineArn", value=self.backup.state_machine.state_machine_arn)
        CfnOutput(self, "RestoreStateMachineArn", value=self.restore.state_machine.state_machine_arn)
        CfnOutput(self, "ApiUrl", value=self.api.rest_api.url)
        CfnOutput(self, "NotificationsTopicArn", value=self.monitoring.topic.topic_arn)
