# The two commands of the README:
#   make run   - set up (first time) and run the whole platform in the foreground; Ctrl-C stops it
#   make test  - set up (first time), start the infrastructure and run the whole test suite
.PHONY: setup run test test-unit faults model bench bench-compare bench-writes lint protos stop status

PY := .venv/bin/python
# `make run`, `make test`, the bench and the simulator run in development mode: published dev secrets, /login/dev
# and `hotline token issue` on. Deployments leave it unset (production) and must give real secrets (issue #19).
export HOTLINE_ENV ?= development
TRAINING_DATA ?= ../shared/data/tipdm2020/labelled_sample.csv

setup:
	@bash scripts/bootstrap.sh

run: setup model
	@$(PY) -m cli run

test: setup
	@$(PY) -m pytest -ra $(PYTEST_ARGS)

# Every fault scenario (own broker and store; SIGKILL of each, then of each service); `make test` runs the short part.
faults: setup
	@HOTLINE_FAULTS=all $(PY) -m pytest -ra -s -m faults tests/faults $(PYTEST_ARGS)

test-unit: setup
	@$(PY) -m pytest -ra tests/unit

# Trains the ticket classifier routing uses, when labelled history is at hand and no model exists yet.
model:
	@if [ -f models/classifier/metadata.json ]; then echo "model: models/classifier present"; \
	elif [ -f "$(TRAINING_DATA)" ]; then $(PY) -m cli classify train --data "$(TRAINING_DATA)" \
	    --text-columns 留言主题,留言详情 --label-column 一级标签 --out models/classifier; \
	else echo "model: no training data at $(TRAINING_DATA); routing runs without the classifier"; fi

bench: setup
	@$(PY) bench/pipeline.py $(BENCH_ARGS)

lint:
	@.venv/bin/ruff check hotline hotline_dev services cli tests bench
	@.venv/bin/mypy hotline hotline_dev services cli

protos:
	@scripts/gen_protos.sh

status:
	@$(PY) -m cli infra status

stop:
	@$(PY) -m cli infra stop

# The working tree against a git ref, scenario by scenario, alternating (bench/compare.py): make bench-compare REF=main
bench-compare: setup
	@$(PY) bench/compare.py $(REF) $(BENCH_ARGS)

# What each document stored per ticket costs the store, collection by collection (bench/write_costs.py)
bench-writes: setup
	@$(PY) bench/write_costs.py $(BENCH_ARGS)
