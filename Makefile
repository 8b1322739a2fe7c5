# MPR: one Makefile for set-up, the local stack, tests and the CDK app.
# Needs only Python 3.11+ and make; everything else is installed into .venv by the first target run.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export CDK_DISABLE_CLI_TELEMETRY := true
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export PYTHONPATH := $(CURDIR)

.PHONY: help venv local up down status test test-unit test-integration test-infra lint synth bench clean

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
	$(PY) -m local.stack status

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

clean: down
	rm -rf cdk.out .mpr-local .pytest_cache
