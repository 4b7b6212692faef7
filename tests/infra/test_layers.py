"""The Docker-free bundlers: what pip is asked for, and what the package copy produces."""

from __future__ import annotations

from pathlib import Path

import pytest

from layers.build import CopyPackagesBundling, PipLayerBundling, pip_command, runtime_requirements

pytestmark = pytest.mark.infra


def test_dependency_layer_targets_lambda_arm64_python312_binary_wheels_only(tmp_path):
    cmd = pip_command(["zstandard>=0.22"], tmp_path / "python")
    joined = " ".join(cmd)
    assert "--platform manylinux2014_aarch64" in joined
    assert "--only-binary=:all:" in cmd
    assert "--python-version 3.12" in joined
    assert "--implementation cp" in joined
    assert cmd[cmd.index("--target") + 1] == str(tmp_path / "python")
    assert cmd[-1] == "zstandard>=0.22"


def test_dependency_layer_installs_what_the_package_declares():
    reqs = runtime_requirements()
    names = {r.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip() for r in reqs}
    assert {"simple-salesforce", "cryptography", "zstandard", "aws-lambda-powertools"} <= names
    # the tracer extra ships aws-xray-sdk, which Powertools' Tracer imports in Lambda
    assert any(r.startswith("aws-lambda-powertools[tracer]") for r in reqs)


def test_pip_bundler_runs_pip_into_python_dir(tmp_path, monkeypatch):
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], check: bool) -> None:
        seen.append(cmd)
        target = Path(cmd[cmd.index("--target") + 1]) if "--target" in cmd else None
        assert target is not None
        (target / "pkg" / "__pycache__").mkdir(parents=True)
        (target / "pkg" / "__init__.py").write_text("")

    monkeypatch.setattr("layers.build.subprocess.run", fake_run)
    assert PipLayerBundling(["zstandard"]).try_bundle(str(tmp_path)) is True
    assert len(seen) == 1
    assert (tmp_path / "python" / "pkg" / "__init__.py").exists()
    assert not (tmp_path / "python" / "pkg" / "__pycache__").exists(), "caches are not shipped"


def test_orgvault_layer_and_handler_code_are_plain_copies_without_caches(tmp_path):
    assert CopyPackagesBundling(["orgvault"]).try_bundle(str(tmp_path / "layer")) is True
    assert (tmp_path / "layer" / "python" / "orgvault" / "services" / "backup.py").exists()
    assert not list((tmp_path / "layer").rglob("__pycache__"))
    assert CopyPackagesBundling(["functions"], prefix="").try_bundle(str(tmp_path / "code")) is True
    # the Lambda handler string "functions.backup_extract.handler" resolves from the asset root
    assert (tmp_path / "code" / "functions" / "backup_extract.py").exists()
    assert (tmp_path / "code" / "functions" / "__init__.py").exists()


def test_cdk_calls_the_local_bundler_through_jsii_and_packages_its_output(tmp_path, monkeypatch):
    """`cdk synth` invokes ILocalBundling.try_bundle(output_dir, options) positionally through jsii;
    a signature that only works when called from Python fails a real synth (it did once)."""
    from aws_cdk import App, BundlingOptions, DockerImage, Stack
    from aws_cdk import aws_lambda as lambda_

    calls: list[list[str]] = []

    def fake_run(cmd: list[str], check: bool) -> None:
        calls.append(cmd)
        target = Path(cmd[cmd.index("--target") + 1])
        (target / "zstandard").mkdir(parents=True)
        (target / "zstandard" / "__init__.py").write_text("")

    monkeypatch.setattr("layers.build.subprocess.run", fake_run)
    app = App(outdir=str(tmp_path / "out"))
    stack = Stack(app, "BundlingProbe")
    root = Path(__file__).resolve().parents[2]
    for name, source, local in [
        ("Deps", "layers", PipLayerBundling(["zstandard"])),
        ("Code", "functions", CopyPackagesBundling(["functions"], prefix="")),
    ]:
        lambda_.LayerVersion(
            stack,
            name,
            code=lambda_.Code.from_asset(
                str(root / source),
                bundling=BundlingOptions(image=DockerImage.from_registry("unused"), local=local),
            ),
        )
    assembly = app.synth()
    assert len(calls) == 1, "the pip bundler ran exactly once, through jsii"
    assets = [p for p in Path(assembly.directory).iterdir() if p.name.startswith("asset.")]
    files = {f.relative_to(a).as_posix() for a in assets for f in a.rglob("*.py")}
    assert "python/zstandard/__init__.py" in files
    assert "functions/backup_extract.py" in files
