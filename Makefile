# The project's vocabulary. Everything installs what it needs first (see infra/bootstrap.sh).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run run-keep test test-unit test-integration lint lock contracts bench bench-parse bench-paced bench-serde clean

setup: $(STAMP)
	@$(PY) -m infra.build_native

$(STAMP): pyproject.toml requirements-dev.lock infra/bootstrap.sh
	bash infra/bootstrap.sh
	touch $(STAMP)

## re-pin requirements.lock (runtime, the image) and requirements-dev.lock (+ dev extras, CI) from pyproject.toml
## with hashes, for Python 3.11 on Linux; existing pins are kept unless LOCK_FLAGS=--upgrade
LOCK_TOOLS := .local/lock-tools
LOCK_PYTHON ?= python3.11
PIP_COMPILE = $(LOCK_TOOLS)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --all-build-deps \
	--strip-extras --no-emit-index-url --no-emit-find-links $(LOCK_FLAGS)
lock:
	[ -x $(LOCK_TOOLS)/bin/pip-compile ] || { $(LOCK_PYTHON) -m venv $(LOCK_TOOLS) \
		&& $(LOCK_TOOLS)/bin/pip install -q "pip-tools>=7.4,<8"; }
	$(PIP_COMPILE) --extra dev -o requirements-dev.lock pyproject.toml
	cp requirements-dev.lock requirements.lock  # seeds the runtime pins: they stay those of the dev lock
	$(PIP_COMPILE) -o requirements.lock pyproject.toml

## the embedded default: local Kafka + PostgreSQL, five services, example files, reconciliation, stop
run: setup
	$(PY) -m cli run

## same, but leave everything running afterwards (Ctrl-C stops it)
run-keep: setup
	$(PY) -m cli run --keep

## the whole test suite, in one session; starts and stops its own Kafka and PostgreSQL
test: setup
	$(PY) -m pytest -q -p no:cacheprovider

test-unit: setup
	$(PY) -m pytest -q -p no:cacheprovider tests/unit tests/contract

test-integration: setup
	$(PY) -m pytest -q -p no:cacheprovider tests/integration tests/e2e

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

## regenerate contracts/schemas/*.json and contracts/asyncapi.yaml
contracts: setup
	$(PY) -m contracts.generate

## end-to-end: generated feed (BENCH_CLAIMS, default 200000) through the five services, 1 then 2 workers
bench: setup
	$(PY) -m devtools.bench.e2e_bench

## paced: BENCH_RATE claim payments/s (default 250, about half the burst capacity) for BENCH_SECONDS (300), 1 worker
bench-paced: setup
	BENCH_RATE=$${BENCH_RATE:-250} BENCH_SECONDS=$${BENCH_SECONDS:-300} $(PY) -m devtools.bench.e2e_bench

## envelope decode/encode µs per message: pydantic vs orjson/msgspec (a throwaway venv under .local/bench)
bench-serde: setup
	$(PY) -m devtools.bench.serde_bench

## parser speed and memory on a generated 100k-claim 835, against linuxforhealth-x12 in its own venv
bench-parse: setup
	$(PY) -m devtools.bench.parse_bench

clean:
	rm -rf .local/run .local/test-* .local/dev
