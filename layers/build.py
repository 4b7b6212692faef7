"""Local (Docker-free) bundlers for the Lambda assets, used by ``infra_cdk/constructs/layers.py``.

- :class:`PipLayerBundling` installs the runtime dependencies (``[project] dependencies`` of
  ``pyproject.toml``) for Lambda's platform — ``pip install --platform manylinux2014_aarch64
  --only-binary=:all: --python-version 3.12 --implementation cp --target <out>/python`` — so wheels
  match arm64/Python 3.12 whatever machine synthesizes. Only binary wheels are accepted: a
  dependency without an aarch64 wheel fails the build loudly instead of shipping an x86 binary.
- :class:`CopyPackagesBundling` copies pure-Python packages (``orgvault``, ``functions``) into the
  asset, under ``python/`` for a layer or at the root for function code, without caches.

Each implements ``aws_cdk.ILocalBundling``: ``try_bundle`` returns True when it produced the asset.
CDK only calls bundlers for stacks selected by ``aws:cdk:bundling-stacks``; the tests set it to ``[]``.
Run this module directly to build the layers into ``build/layers`` for inspection:
``python -m layers.build``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import ILocalBundling

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_PLATFORM = "manylinux2014_aarch64"
LAMBDA_PYTHON = "3.12"
#: Provided by the Lambda Python runtime; shipping our own copy is optional and only costs size.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore"})


def runtime_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The requirement strings of ``[project] dependencies`` (what the Lambdas import at run time)."""
    data = tomllib.loads(pyproject.read_text())
    return list(data["project"]["dependencies"])


def pip_command(requirements: list[str], target: Path) -> list[str]:
    """The pip invocation that installs ``requirements`` for Lambda arm64 / Python 3.12 into ``target``."""
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--platform",
        LAMBDA_PLATFORM,
        # The python3.12 runtime is Amazon Linux 2023 (glibc 2.34): newer wheels tagged only
        # manylinux_2_28 (e.g. recent cryptography builds) run there too.
        "--platform",
        "manylinux_2_28_aarch64",
        "--only-binary=:all:",
        "--python-version",
        LAMBDA_PYTHON,
        "--implementation",
        "cp",
        "--target",
        str(target),
        *requirements,
    ]


def _uv_or_pip(requirements: list[str], target: Path) -> list[str]:
    """Prefer pip inside the interpreter; fall back to ``uv pip`` when this venv has no pip module."""
    try:
        import pip  # noqa: F401

        return pip_command(requirements, target)
    except ImportError:
        uv = shutil.which("uv")
        if not uv:
            raise RuntimeError("building the dependency layer needs pip or uv on PATH") from None
        return [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python-platform",
            "aarch64-manylinux2014",
            "--python-version",
            LAMBDA_PYTHON,
            "--only-binary",
            ":all:",
            "--target",
            str(target),
            *requirements,
        ]


@jsii.implements(ILocalBundling)
class PipLayerBundling:
    """Installs ``requirements`` for Lambda arm64/Python 3.12 into ``<output_dir>/python``."""

    def __init__(self, requirements: list[str]) -> None:
        self.requirements = requirements

    def try_bundle(self, output_dir: str, options: Any = None) -> bool:
        # jsii calls try_bundle(output_dir, options) positionally.
        target = Path(output_dir) / "python"
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(_uv_or_pip(self.requirements, target), check=True)
        for cache in target.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        return True


@jsii.implements(ILocalBundling)
class CopyPackagesBundling:
    """Copies the named top-level packages from the repository into ``<output_dir>/<prefix>``."""

    def __init__(self, packages: list[str], *, prefix: str = "python") -> None:
        self.packages = packages
        self.prefix = prefix

    def try_bundle(self, output_dir: str, options: Any = None) -> bool:
        # jsii calls try_bundle(output_dir, options) positionally.
        base = Path(output_dir) / self.prefix if self.prefix else Path(output_dir)
        base.mkdir(parents=True, exist_ok=True)
        for package in self.packages:
            shutil.copytree(
                ROOT / package,
                base / package,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"),
                dirs_exist_ok=True,
            )
        return True


def main() -> None:  # pragma: no cover - a manual helper
    out = ROOT / "build" / "layers"
    shutil.rmtree(out, ignore_errors=True)
    PipLayerBundling(runtime_requirements()).try_bundle(str(out / "dependencies"))
    CopyPackagesBundling(["orgvault"]).try_bundle(str(out / "orgvault"))
    print(f"layers built under {out}")


if __name__ == "__main__":  # pragma: no cover
    main()
