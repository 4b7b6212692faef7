"""Run the synthesized Step Functions definitions under moto with their Lambda tasks dispatched to the
real handlers in-process.

How: moto's Step Functions interpreter (``execute_state_machine``) invokes Lambda through the moto
Lambda API; with ``use_docker: False`` that lands in ``LambdaSimpleBackend.invoke``. We replace that
method (for the duration of a ``with dispatch_to_handlers(...)`` block) by one that imports the
function's real handler module — named by the template's ``Handler`` property — and calls it with the
JSON payload and a Lambda-like context. An exception becomes a Lambda function error
(``x-amz-function-error: Unhandled``, ``{"errorType": <class name>, "errorMessage": ...}``) exactly as
the Python runtime reports it, so the definition's ``Retry``/``Catch`` clauses see the real error names.

The definition is taken from the template untouched; only the CloudFormation intrinsics in its
``Fn::Join`` (partition, region, account, the functions' ``Fn::GetAtt Arn``) are resolved to the
moto-created resources.
"""

from __future__ import annotations

import importlib
import io
import json
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


def resources_of_type(template: dict[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == cfn_type}


def resolve(value: Any, refs: dict[str, str], attrs: dict[tuple[str, str], str]) -> Any:
    """Resolve the intrinsics CDK puts in a state machine definition."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return refs[arg]
        if fn == "Fn::GetAtt":
            return attrs[(arg[0], arg[1])]
        if fn == "Fn::Join":
            sep, parts = arg
            return sep.join(resolve(p, refs, attrs) for p in parts)
    raise ValueError(f"unsupported intrinsic in the definition: {value!r}")


@dataclass
class FakeLambdaContext:
    function_name: str
    memory_limit_in_mb: int = 1024
    timeout_s: float = 900.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _start: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "test"

    @property
    def function_version(self) -> str:
        return "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return int(max(0.0, self.timeout_s - (time.monotonic() - self._start)) * 1000)


@dataclass
class Invocation:
    handler: str
    event: dict[str, Any]
    error: str | None = None
    message: str = ""


@dataclass
class Deployed:
    """What ``deploy_workflow`` created in moto."""

    state_machine_arn: str  # the one named by ``deploy_workflow``'s prefix
    function_handlers: dict[str, str]  # function name → "module.attr"
    function_timeouts: dict[str, int]
    invocations: list[Invocation] = field(default_factory=list)
    # handler → hook(event) called before the real handler (tests raise from it to inject faults)
    before: dict[str, Callable[[dict[str, Any]], None]] = field(default_factory=dict)
    state_machines: dict[str, str] = field(default_factory=dict)  # logical id → ARN (all of them)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("placeholder.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


def deploy_workflow(
    template: dict[str, Any], state_machine_logical_id_prefix: str, *, session: Any
) -> Deployed:
    """Create the template's functions and the named state machine in moto (inside ``mock_aws``)."""
    iam = session.client("iam")
    lam = session.client("lambda")
    sfn = session.client("stepfunctions")
    role = iam.create_role(
        RoleName=f"orgvault-test-{uuid.uuid4().hex[:8]}",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    refs = {
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::URLSuffix": "amazonaws.com",
    }
    attrs: dict[tuple[str, str], str] = {}
    handlers: dict[str, str] = {}
    timeouts: dict[str, int] = {}
    for lid, res in resources_of_type(template, "AWS::Lambda::Function").items():
        props = res["Properties"]
        name = f"{lid[:40]}-{uuid.uuid4().hex[:6]}"
        arn = lam.create_function(
            FunctionName=name,
            Runtime=props["Runtime"],
            Role=role,
            Handler=props["Handler"],
            Code={"ZipFile": _zip()},
            Timeout=props.get("Timeout", 3),
            Architectures=props.get("Architectures", ["x86_64"]),
        )["FunctionArn"]
        attrs[(lid, "Arn")] = arn
        refs[lid] = name
        handlers[name] = props["Handler"]
        timeouts[name] = int(props.get("Timeout", 3))
    machines: dict[str, str] = {}
    for sm_lid, sm in resources_of_type(template, "AWS::StepFunctions::StateMachine").items():
        definition = resolve(sm["Properties"]["DefinitionString"], refs, attrs)
        machines[sm_lid] = sfn.create_state_machine(name=sm_lid[:60], definition=definition, roleArn=role)[
            "stateMachineArn"
        ]
    (arn,) = [a for lid, a in machines.items() if lid.startswith(state_machine_logical_id_prefix)]
    return Deployed(
        state_machine_arn=arn, function_handlers=handlers, function_timeouts=timeouts, state_machines=machines
    )


def state_machine(deployed: Deployed, prefix: str) -> str:
    (arn,) = [a for lid, a in deployed.state_machines.items() if lid.startswith(prefix)]
    return arn


_SYNTH_CACHE: dict[str, dict[str, Any]] = {}


def synthesized(context: dict[str, Any]) -> dict[str, Any]:
    """The template for ``context``, synthesized once per process (synth takes ~20 s)."""
    import tempfile

    from tests.infra.conftest import synthesize

    key = json.dumps(context, sort_keys=True)
    if key not in _SYNTH_CACHE:
        _SYNTH_CACHE[key] = synthesize(context, tempfile.mkdtemp(prefix="cdk.out-")).template_json
    return _SYNTH_CACHE[key]


@contextmanager
def dispatch_to_handlers(deployed: Deployed) -> Iterator[Deployed]:
    """Route moto's Lambda invocations to the real handlers while the block runs."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    original = LambdaSimpleBackend.invoke
    lock = threading.Lock()
    # One invocation at a time: a Lambda execution environment never runs two invocations at once,
    # and neither moto's backends nor the shared in-process App are meant for concurrent threads.
    # The Map's concurrency still interleaves the steps of different objects.
    serial = threading.Lock()

    def invoke(
        self: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        name = function_name.split(":function:")[-1].split(":")[0]
        handler_path = deployed.function_handlers[name]
        module_name, attr = handler_path.rsplit(".", 1)
        event = json.loads(body or "{}")
        record = Invocation(handler=module_name.rsplit(".", 1)[-1], event=event)
        with lock:
            deployed.invocations.append(record)
        with serial:
            try:
                hook = deployed.before.get(record.handler)
                if hook is not None:
                    hook(event)
                fn = getattr(importlib.import_module(module_name), attr)
                context = FakeLambdaContext(function_name=name, timeout_s=deployed.function_timeouts[name])
                return json.dumps(fn(event, context)).encode()
            except Exception as exc:  # noqa: BLE001 - reported to Step Functions as the runtime does
                record.error = type(exc).__name__
                record.message = str(exc)[:300]
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps(
                    {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": []}
                ).encode()

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
    try:
        yield deployed
    finally:
        LambdaSimpleBackend.invoke = original  # type: ignore[method-assign]


def run_execution(
    session: Any, state_machine_arn: str, run_input: dict[str, Any], *, timeout_s: float = 240
) -> dict[str, Any]:
    """Start an execution and wait for it to end; returns ``describe_execution`` plus its history."""
    sfn = session.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=state_machine_arn, name=f"test-{uuid.uuid4().hex[:12]}", input=json.dumps(run_input)
    )["executionArn"]
    deadline = time.monotonic() + timeout_s
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING":
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution still running after {timeout_s}s")
        time.sleep(0.2)
    history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return {**desc, "history": history}


# --- the moto "account" the end-to-end tests run in ------------------------------------------------

HANDLER_ENV = {
    "ORGVAULT_MODE": "aws",
    "ORGVAULT_CHUNK_RECORDS": "60",  # several chunks per object
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "OrgVault",
    "POWERTOOLS_SERVICE_NAME": "orgvault",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


def fast_source_factory() -> Any:
    """The production Salesforce source (the one ``orgvault.bootstrap`` builds: Composite describes,
    counts and change probes) with test pacing (no real back-off sleeps, 1 s Bulk polls)."""
    from orgvault.adapters.salesforce_backup import BackupSalesforceSource

    def make(conn: Any, creds: dict[str, str]) -> Any:
        return BackupSalesforceSource(
            conn,
            creds,
            sleep=lambda _s: None,
            backoff_base=0.001,
            bulk_poll_seconds=1.0,
            rest_batch_size=200,
            bulk_page_records=150,
        )

    return make


@contextmanager
def moto_cloud(template: dict[str, Any], monkeypatch: Any, org: str) -> Iterator[dict[str, Any]]:
    """moto with the stack's data resources created as the template declares them (Object Lock bucket,
    PK/SK table, the org's KMS key behind the template's alias), the handlers' environment, an App wired
    like their cold start, and every state machine of the template deployed with its tasks dispatched to
    the real handlers. Yields ``{"session", "app", "deployed"}``."""
    import logging

    import boto3
    from moto import mock_aws

    from functions import _runtime
    from orgvault.adapters.aws_dynamodb import create_catalog_table
    from orgvault.bootstrap import open_app
    from orgvault.settings import Settings

    for k, v in HANDLER_ENV.items():
        monkeypatch.setenv(k, v)
    # moto's interpreter logs every caught task failure with its whole parse tree
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        session = boto3.Session(region_name=REGION)
        (vault,) = [
            r["Properties"]
            for r in resources_of_type(template, "AWS::S3::Bucket").values()
            if r["Properties"].get("LoggingConfiguration", {}).get("LogFilePrefix") == "vault/"
        ]
        bucket = "orgvault-vault-test"
        session.client("s3").create_bucket(
            Bucket=bucket, ObjectLockEnabledForBucket=vault["ObjectLockEnabled"]
        )
        (table_props,) = [
            r["Properties"] for r in resources_of_type(template, "AWS::DynamoDB::Table").values()
        ]
        assert [k["AttributeName"] for k in table_props["KeySchema"]] == ["PK", "SK"]
        table = "orgvault-catalog-test"
        create_catalog_table(session.client("dynamodb"), table)
        kms = session.client("kms")
        (alias,) = [
            r["Properties"]["AliasName"]
            for r in resources_of_type(template, "AWS::KMS::Alias").values()
            if r["Properties"]["AliasName"].endswith(f"/{org}")
        ]
        kms.create_alias(
            AliasName=alias, TargetKeyId=kms.create_key(Description="org key")["KeyMetadata"]["KeyId"]
        )
        monkeypatch.setenv("ORGVAULT_BUCKET", bucket)
        monkeypatch.setenv("ORGVAULT_TABLE", table)

        def factory() -> Any:
            # steps hand back a cursor after ~50 ms, so the Extract → Status → Extract loop runs
            return open_app(Settings.from_env(step_seconds=0.05), source_factory=fast_source_factory())

        _runtime.reset(factory)
        app = factory()
        deployed = deploy_workflow(template, "BackupStateMachine", session=session)
        try:
            with dispatch_to_handlers(deployed):
                yield {"session": session, "app": app, "deployed": deployed}
        finally:
            _runtime.reset()
            app.close()


def connect(app: Any, emu: Any, org: str) -> None:
    """Connect the emulator org as ``org`` (credentials into Secrets Manager, key from the alias)."""
    from orgvault.services.orgs import connect_org

    facts = emu.facts
    connect_org(
        catalog=app.catalog,
        keys=app.keys,
        secrets=app.secrets,
        name=org,
        instance_url=facts.instance_url,
        login_url=facts.login_url,
        auth_method="client-credentials",
        credentials={"client_id": facts.client_id, "client_secret": facts.client_secret},
        test_login=app.make_source,
    )
