# The front door. `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup bytecode demo test test-fast lint typecheck bench synth clean

$(VENV)/.installed: pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@[ -x $(PY) ] || uv venv --quiet --python python3 $(VENV)
	uv pip install --quiet --python $(PY) --compile-bytecode -e ".[dev,cdk]"
	@$(MAKE) --no-print-directory bytecode
	@touch $@

# PYTHONDONTWRITEBYTECODE is set (exported above; the build machine sets it too), so Python never caches the
# project's own modules: without this, every `orgvault` command compiles them again (~0.2 s).
bytecode:
	@$(PY) -m compileall -q orgvault salesforce_emulator bench functions

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/orgvault demo

test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile

test-fast: setup
	$(PY) -m pytest -q -x -m "not slow"

lint: setup
	$(VENV)/bin/ruff check orgvault salesforce_emulator functions infra_cdk tests bench
	$(VENV)/bin/ruff format --check orgvault salesforce_emulator functions infra_cdk tests bench

typecheck: setup
	$(VENV)/bin/mypy orgvault

bench: setup bytecode
	$(PY) -m bench.emulator_throughput
	$(PY) -m bench.backup_throughput
	$(PY) -m bench.restore_throughput

synth: setup
	$(PY) -m infra_cdk.app

clean:
	rm -rf $(VENV) cdk.out .pytest_cache
