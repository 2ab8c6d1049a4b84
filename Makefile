# Developer entry points. `make test` and `make run` install what they need into local
# virtual environments from this repository's own requirement files.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
TOOLS := .venv-tools
CHECKOV := .venv-checkov
PY := $(VENV)/bin/python
export SAM_CLI_TELEMETRY := 0
export PYTHONDONTWRITEBYTECODE := 1

MOTO_PORT ?= 5001
ISSUER_PORT ?= 9001
PROXY_PORT ?= 3000
EVENT ?= events/token_body_credentials.json

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# Runs only when it installs: on the first run, or after a requirements file changed.
$(VENV)/.installed: requirements/dev.txt src/token_proxy/requirements.txt src/rotator/requirements.txt
	@echo "Setting up $(VENV): installing the Python packages of requirements/dev.txt with pip."
	@echo "This takes about a minute, once; later runs skip it (make run is then ready in a few seconds)."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $@
	@echo "$(VENV) is ready."

$(TOOLS)/.installed: requirements/tools.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/tools.txt
	touch $@

$(CHECKOV)/.installed: requirements/checkov.txt
	test -x $(CHECKOV)/bin/python || $(PYTHON) -m venv $(CHECKOV)
	$(CHECKOV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/checkov.txt
	touch $@

install: $(VENV)/.installed $(TOOLS)/.installed $(CHECKOV)/.installed ## Install every dependency

lint: $(VENV)/.installed ## ruff over the code, mypy over src/
	$(VENV)/bin/ruff check src tests local bench verify
	$(VENV)/bin/ruff format --check src tests local bench verify
	$(VENV)/bin/mypy src

template: $(TOOLS)/.installed $(CHECKOV)/.installed ## cfn-lint, sam validate --lint, checkov
	$(TOOLS)/bin/cfn-lint template.yaml
	$(TOOLS)/bin/sam validate --lint --template-file template.yaml
	$(CHECKOV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml

build: $(TOOLS)/.installed ## sam build without Docker (wheels for linux/arm64)
	PATH="$(abspath $(TOOLS))/bin:$$PATH" $(TOOLS)/bin/sam build --template-file template.yaml

test: ## The whole suite: lint, template checks, sam build, unit, integration and e2e tests
	$(MAKE) --no-print-directory -j3 install  # the three environments install side by side
	$(MAKE) --no-print-directory lint template
	PATH="$(abspath $(TOOLS))/bin:$$PATH" HYPOTHESIS_PROFILE=ci $(VENV)/bin/pytest

test-fast: $(VENV)/.installed ## Unit and integration tests only
	$(VENV)/bin/pytest -m "not e2e and not slow"

run: $(VENV)/.installed ## The local stack: moto, the local issuer and the proxy on loopback (Ctrl-C stops)
	MOTO_PORT=$(MOTO_PORT) ISSUER_PORT=$(ISSUER_PORT) PROXY_PORT=$(PROXY_PORT) $(PY) -m local.stack

invoke: $(VENV)/.installed ## Run a handler with an event file: make invoke EVENT=events/<file>.json
	$(PY) -m local.commands.invoke "$(EVENT)"

rotate: $(VENV)/.installed ## One full rotation of the local origin secret (stack must be running)
	$(PY) -m local.commands.rotate rotate

prune: $(VENV)/.installed ## Send the prune event to the local rotator (stack must be running)
	$(PY) -m local.commands.rotate prune

invalidate: $(VENV)/.installed ## Drop a client's cached tokens: make invalidate CLIENT_ID=<app client id>
	@test -n "$(CLIENT_ID)" || { echo "usage: make invalidate CLIENT_ID=<app client id>" >&2; exit 2; }
	$(PY) -m local.commands.invalidate "$(CLIENT_ID)"

verify: $(VENV)/.installed ## Check the deployed stack end to end (STACK=, CLIENT_ID=; LOCAL=1: the local stack)
	$(PY) -m verify $(if $(LOCAL),--local,) $(if $(STACK),--stack "$(STACK)",) $(if $(REGION),--region "$(REGION)",)

bench: $(VENV)/.installed ## The benchmark (figures to stdout and bench/results/latest.json)
	$(PY) -m bench

clean: ## Remove build output and caches
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis

.PHONY: help install lint template build test test-fast run invoke rotate prune invalidate verify bench clean
