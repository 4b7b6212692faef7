"""Layers: the third-party dependency layer and the orgvault layer, plus the handlers' code asset.

All three are built on the synthesizing machine by the local bundlers in ``layers/build.py`` (pip with
``--platform manylinux2014_aarch64 --only-binary=:all: --python-version 3.12``; a plain copy for our
packages) — no Docker. The ``image`` CDK requires is never pulled because local bundling always
succeeds or raises. With ``aws:cdk:bundling-stacks = []`` nothing is built (fast synth for tests).
"""

from __future__ import annotations

from aws_cdk import BundlingOptions, DockerImage, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from layers.build import ROOT, CopyPackagesBundling, PipLayerBundling, runtime_requirements

_UNUSED_IMAGE = DockerImage.from_registry("public.ecr.aws/sam/build-python3.12:latest")
_EXCLUDE = ["__pycache__", "*.pyc", ".pytest_cache"]


class Layers(Construct):
    """``dependencies`` and ``orgvault`` layers; ``handler_code`` is the ``functions`` package."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.dependencies = lambda_.LayerVersion(
            self,
            "Dependencies",
            description="orgvault third-party dependencies (arm64, Python 3.12)",
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            removal_policy=RemovalPolicy.RETAIN,
            code=lambda_.Code.from_asset(
                str(ROOT / "layers"),
                exclude=_EXCLUDE,
                asset_hash_type=None,
                bundling=BundlingOptions(image=_UNUSED_IMAGE, local=PipLayerBundling(runtime_requirements())),
            ),
        )
        self.orgvault = lambda_.LayerVersion(
            self,
            "OrgVault",
            description="the orgvault package",
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            removal_policy=RemovalPolicy.RETAIN,
            code=lambda_.Code.from_asset(
                str(ROOT / "orgvault"),
                exclude=_EXCLUDE,
                bundling=BundlingOptions(image=_UNUSED_IMAGE, local=CopyPackagesBundling(["orgvault"])),
            ),
        )
        self.handler_code = lambda_.Code.from_asset(
            str(ROOT / "functions"),
            exclude=_EXCLUDE,
            bundling=BundlingOptions(
                image=_UNUSED_IMAGE, local=CopyPackagesBundling(["functions"], prefix="")
            ),
        )
