# MPR: one Makefile for set-up, the local stack, tests and the CDK app.
# Needs only Python 3.11+ and make; everything else is installed into .venv by the first target run.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export CDK_DISABLE_CLI_TELEMETRY := true
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# Nothing here may look for credentials on the instance-metadata address.
export AWS_EC2_METADATA_DISABLED := true
CDK := npx --yes aws-cdk@2.1149.0
export PYTHONPATH := $(CURDIR)

.PHONY: help venv local up down status test test-unit test-integration test-infra lint synth bench clean \
	lambda-package diff deploy

help:
	@echo "make local   start the local stack, transcode and trim the bundled clip, keep running (Ctrl-C stops)"
	@echo "make test    unit, integration (real FFmpeg, Redis, S3 server, moto, Celery) and infra tests"
	@echo "make up / make down / make status   the local stack in the background"
	@echo "make synth   synthesize the CDK app (no Docker, no AWS credentials needed)"
	@echo "make bench   benchmarks with side-by-side ratios"

venv: $(STAMP)

$(STAMP): requirements.txt requirements-local.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

local: venv
	$(PY) -m local.demo

up: venv
	$(PY) -m local.stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m local.stack down; fi

status: venv
	@$(PY) -m local.stack status || true

test: venv
	$(PY) -m pytest tests

test-unit: venv
	$(PY) -m pytest tests/unit

test-integration: venv
	$(PY) -m pytest tests/integration

test-infra: venv
	$(PY) -m pytest tests/infra

lint: venv
	$(VENV)/bin/ruff check .

synth: venv
	$(PY) app.py

bench: venv
	$(PY) -m bench.run

lambda-package: venv
	rm -rf .build/api
	$(PY) -m pip install --quiet --target .build/api --implementation cp --python-version 3.12 \
		--platform manylinux2014_x86_64 --only-binary=:all: -r requirements.txt
	cp -R mpr functions .build/api/
	find .build/api -name __pycache__ -prune -exec rm -rf {} +

diff: lambda-package
	$(CDK) diff

deploy: lambda-package
	$(CDK) deploy --require-approval broadening

clean: down
	rm -rf cdk.out .build .mpr-local .pytest_cache
