"""The API: Cognito user pool (sign-in, optional MFA, hosted UI, optional SAML/OIDC federation, a group
per org and role), an API Gateway REST API in front of the ``api`` Lambda, and optional WAF.

- The ``api`` Lambda may start the backup and restore state machines (``states:StartExecution`` on those
  two only): on-demand backups and approved restores run in their workflows, not in the request.
- Every method under ``/v1`` uses the Cognito authorizer; machine clients use the same routes under
  ``/iam/...`` with IAM (SigV4) auth — the Lambda strips the prefix and maps the caller's role ARN to
  groups (``ORGVAULT_IAM_PRINCIPALS``). Nothing is anonymous.
- Stage: access logs (JSON) to a log group, execution logging and metrics, X-Ray, throttling; request
  validation; a custom domain (TLS 1.2 security policy) when ``apiDomainName`` + ``apiCertificateArn``
  are in the context (the execute-api endpoint is then disabled).
- Context keys: ``apiMfa`` (``optional``|``required``), ``apiDomainPrefix`` (hosted UI domain),
  ``apiCallbackUrls``, ``apiSamlProviders`` ``[{"name", "metadataUrl"}]``, ``apiOidcProviders``
  ``[{"name", "clientId", "issuerUrl", "clientSecretName"}]`` (secret in Secrets Manager), ``apiWaf``
  (bool), ``apiThrottleRate``/``apiThrottleBurst``, ``apiIamPrincipals`` (JSON mapping).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aws_cdk import Duration, RemovalPolicy, SecretValue, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_wafv2 as wafv2
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

ROLES = ("viewer", "operator", "admin")


class Api(Construct):
    """``user_pool``, ``client``, ``rest_api``, ``access_logs``, ``web_acl`` (or None)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: lambda_.IFunction,
        orgs: Sequence[str],
        state_machine: sfn.IStateMachine | None = None,
        restore_state_machine: sfn.IStateMachine | None = None,
        log_key: Any = None,
    ) -> None:
        super().__init__(scope, construct_id)
        ctx = self.node.try_get_context
        mfa_required = str(ctx("apiMfa") or "optional").lower() == "required"

        # --- Cognito ------------------------------------------------------------------------------
        self.user_pool = cognito.UserPool(
            self,
            "Users",
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(username=True, email=True),
            mfa=cognito.Mfa.REQUIRED if mfa_required else cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            password_policy=cognito.PasswordPolicy(
                min_length=14,
                require_digits=True,
                require_lowercase=True,
                require_uppercase=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            removal_policy=RemovalPolicy.RETAIN,
        )
        providers = [cognito.UserPoolClientIdentityProvider.COGNITO]
        for p in ctx("apiSamlProviders") or []:
            idp = cognito.UserPoolIdentityProviderSaml(
                self,
                f"Saml{p['name']}",
                user_pool=self.user_pool,
                name=p["name"],
                metadata=cognito.UserPoolIdentityProviderSamlMetadata.url(p["metadataUrl"]),
            )
            providers.append(cognito.UserPoolClientIdentityProvider.custom(idp.provider_name))
        for p in ctx("apiOidcProviders") or []:
            idp = cognito.UserPoolIdentityProviderOidc(
                self,
                f"Oidc{p['name']}",
                user_pool=self.user_pool,
                name=p["name"],
                client_id=p["clientId"],
                client_secret=SecretValue.secrets_manager(p["clientSecretName"]).unsafe_unwrap(),
                issuer_url=p["issuerUrl"],
                scopes=["openid", "email", "profile"],
            )
            providers.append(cognito.UserPoolClientIdentityProvider.custom(idp.provider_name))
        prefix = ctx("apiDomainPrefix")
        if prefix:
            self.user_pool.add_domain(
                "HostedUi", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=prefix)
            )
        callbacks = list(ctx("apiCallbackUrls") or ["http://localhost:8700/v1/swagger"])
        self.client = self.user_pool.add_client(
            "Console",
            generate_secret=False,
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
                callback_urls=callbacks,
            ),
            supported_identity_providers=providers,
            prevent_user_existence_errors=True,
            access_token_validity=Duration.hours(1),
            id_token_validity=Duration.hours(1),
        )
        groups = ["admin"] + [f"org:{o}:{r}" for o in orgs for r in ROLES]
        for g in groups:
            cognito.CfnUserPoolGroup(
                self,
                f"Group{g.replace(':', '-')}",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=g,
                description=f"orgvault role {g}",
            )

        # --- API Gateway --------------------------------------------------------------------------
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays.ONE_YEAR,
            encryption_key=log_key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        domain_name, cert_arn = ctx("apiDomainName"), ctx("apiCertificateArn")
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=f"{Stack.of(self).stack_name}-api",
            description="orgvault API (browse, diff, restore)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            disable_execute_api_endpoint=bool(domain_name and cert_arn),
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name="api",  # https://<id>.execute-api.<region>.amazonaws.com/api/v1/...
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.INFO,
                data_trace_enabled=False,  # bodies hold record data: never logged
                metrics_enabled=True,
                tracing_enabled=True,
                throttling_rate_limit=int(ctx("apiThrottleRate") or 50),
                throttling_burst_limit=int(ctx("apiThrottleBurst") or 100),
            ),
        )
        if domain_name and cert_arn:
            self.rest_api.add_domain_name(
                "Domain",
                domain_name=domain_name,
                certificate=acm.Certificate.from_certificate_arn(self, "Cert", cert_arn),
                security_policy=apigw.SecurityPolicy.TLS_1_2,
                endpoint_type=apigw.EndpointType.REGIONAL,
            )
        authorizer = apigw.CognitoUserPoolsAuthorizer(self, "Authorizer", cognito_user_pools=[self.user_pool])
        validator = self.rest_api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        integration = apigw.LambdaIntegration(handler, proxy=True)
        cognito_opts: dict[str, Any] = {
            "authorizer": authorizer,
            "authorization_type": apigw.AuthorizationType.COGNITO,
            "request_validator": validator,
        }
        v1 = self.rest_api.root.add_resource("v1")
        v1.add_method("ANY", integration, **cognito_opts)
        v1.add_proxy(
            default_integration=integration,
            any_method=True,
            default_method_options=apigw.MethodOptions(**cognito_opts),
        )
        machine = self.rest_api.root.add_resource("iam")
        machine.add_proxy(
            default_integration=integration,
            any_method=True,
            default_method_options=apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType.IAM, request_validator=validator
            ),
        )
        # No anonymous method anywhere: the root has no method.

        starts = {
            "ORGVAULT_BACKUP_STATE_MACHINE_ARN": state_machine,
            "ORGVAULT_RESTORE_STATE_MACHINE_ARN": restore_state_machine,
        }
        if isinstance(handler, lambda_.Function):
            handler.add_environment("ORGVAULT_IAM_PRINCIPALS", json.dumps(ctx("apiIamPrincipals") or {}))
            for env_name, machine in starts.items():
                if machine is not None:
                    handler.add_environment(env_name, machine.state_machine_arn)
        arns = [m.state_machine_arn for m in starts.values() if m is not None]
        if arns and handler.role is not None:
            handler.role.add_to_principal_policy(
                iam.PolicyStatement(sid="StartWorkflows", actions=["states:StartExecution"], resources=arns)
            )

        # --- WAF (optional) -----------------------------------------------------------------------
        self.web_acl: wafv2.CfnWebACL | None = None
        if ctx("apiWaf"):

            def managed(name: str, prio: int) -> wafv2.CfnWebACL.RuleProperty:
                return wafv2.CfnWebACL.RuleProperty(
                    name=name,
                    priority=prio,
                    override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                            vendor_name="AWS", name=name
                        )
                    ),
                    visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
                    ),
                )

            self.web_acl = wafv2.CfnWebACL(
                self,
                "Waf",
                scope="REGIONAL",
                default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
                visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                    cloud_watch_metrics_enabled=True,
                    metric_name="orgvault-api",
                    sampled_requests_enabled=True,
                ),
                rules=[
                    managed("AWSManagedRulesCommonRuleSet", 1),
                    managed("AWSManagedRulesKnownBadInputsRuleSet", 2),
                ],
            )
            wafv2.CfnWebACLAssociation(
                self,
                "WafAssociation",
                web_acl_arn=self.web_acl.attr_arn,
                resource_arn=self.rest_api.deployment_stage.stage_arn,
            )

        self._acknowledge(mfa_required)

    def _acknowledge(self, mfa_required: bool) -> None:
        """cdk-nag findings accepted here, each with its reason."""
        if not mfa_required:
            NagSuppressions.add_resource_suppressions(
                self.user_pool,
                [
                    NagPackSuppression(
                        id="AwsSolutions-COG2",
                        reason="MFA is optional by requirement (issue 7); set context apiMfa=required to enforce it.",
                    )
                ],
            )
        NagSuppressions.add_resource_suppressions(
            self.rest_api,
            [
                NagPackSuppression(
                    id="AwsSolutions-COG4",
                    reason="Methods under /iam use IAM (SigV4) auth for machine clients instead of Cognito; every "
                    "other method uses the Cognito authorizer.",
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM4",
                    reason="API Gateway's account-level CloudWatch role uses the AWS managed "
                    "AmazonAPIGatewayPushToCloudWatchLogs policy, which is what the service requires.",
                    applies_to=[
                        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                        "AmazonAPIGatewayPushToCloudWatchLogs"
                    ],
                ),
            ]
            + (
                []
                if self.web_acl is not None
                else [
                    NagPackSuppression(
                        id="AwsSolutions-APIG3",
                        reason="WAF is optional (context apiWaf=true); the API is authenticated on every method and throttled.",
                    )
                ]
            ),
            apply_to_children=True,
        )
