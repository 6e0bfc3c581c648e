# vitrine: the commands a newcomer and CI run. `make serve` and `make test` set the environment up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_COUNT ?= 5000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export BENTOML_DO_NOT_TRACK := True

.PHONY: setup serve prepare test test-split test-fast lint typecheck check loadtest soak relevance bench-index build clean

setup: $(STAMP)

# torch/torchvision are pinned (pyproject.toml) to the builds pip takes from local disk; unpinned, pip would
# download several GB of CUDA wheels.
$(STAMP): pyproject.toml requirements/bento.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The embedded default: SQLite + in-process cache, the demo catalog and the offline MiniLM model.
prepare: setup
	$(BIN)/vitrine db upgrade
	$(BIN)/vitrine catalog demo --count $(DEMO_COUNT)
	$(BIN)/vitrine model import minilm --skip-existing
	$(BIN)/vitrine index build --if-stale

serve: prepare
	@echo "vitrine: the storefront page is at http://localhost:$${API_PORT:-3000}/ (JSON API under /api/v1/)"
	$(BIN)/bentoml serve service:Vitrine --timeout-keep-alive 75  # runners/serving.py SERVER_FLAGS

test: setup
	$(BIN)/pytest -q

# The e2e tests that do not depend on the topology, against `vitrine topology split` (each service its own
# server on a TCP port, wired with --depends as the Kubernetes pods are; two index and two API replicas), plus
# the index rollout across the two index replicas. ~6 min. Left out: tests that read the encoder's metrics through
# the API's /metrics (one Prometheus directory per pod here), stop the stack's Redis, or check the one-machine
# operator endpoints and builds.
SPLIT_TESTS := tests/e2e/test_search_api.py tests/e2e/test_personalization_api.py tests/e2e/test_bulk_api.py \
	tests/e2e/test_index_rollout.py --deselect tests/e2e/test_search_api.py::test_concurrent_requests_form_encoder_batches
test-split: setup
	VITRINE_E2E_TOPOLOGY=split $(BIN)/pytest -q $(SPLIT_TESTS)

test-fast: setup
	$(BIN)/pytest -q -m "not e2e"

lint: setup
	$(BIN)/ruff check domain adapters runners commands service.py cli.py tests loadtests

typecheck: setup
	$(BIN)/mypy domain adapters runners commands service.py cli.py

check: lint typecheck

# Relevance benchmark: a private stack on the fashion catalog (loadtests/relevance/serve_fashion.sh), every
# query of loadtests/relevance/queries.tsv in each mode; report in reports/relevance.md. Against a running
# stack instead: $(BIN)/python loadtests/relevance/run.py --url URL --api-key KEY
relevance: setup
	$(BIN)/python loadtests/relevance/run.py

# Load runs (loadtests/README.md): locust against a private stack (its own PostgreSQL database and Redis, the
# fashion catalog padded to 100k products, ViT-B-32 with random weights and MiniLM), side by side with the plain
# baseline and the in-process limit; ~25 min, report under reports/loadtest/. `make loadtest QUICK=1`: ~6 min.
loadtest: setup
	$(BIN)/python loadtests/run.py $(if $(QUICK),--quick) $(if $(MEDIUM),--medium)

# Soak (loadtests/soak.py): the shop's mix at 30 requests/s for 30 min on the load stack; fails on any error or
# on growth of 10% or more (RSS and open files of every process, database connections, Redis memory) after
# warm-up. Report in loadtests/SOAK.md. Not part of `make test`.
soak: setup
	$(BIN)/python loadtests/soak.py

# The index at 1M products (synthetic vectors): build time, memory, p95 and recall@10 per filter selectivity;
# ~8 min, report in reports/index-benchmark.md.
bench-index: setup
	$(BIN)/python loadtests/bench_index.py

# The Bento declares all three services (the index too) so that each can be deployed on its own; whether the API
# holds the index itself is INDEX_IN_PROCESS where it is served.
build: prepare
	INDEX_IN_PROCESS=false $(BIN)/bentoml build --output tag

clean:
	rm -rf var reports .pytest_cache .mypy_cache .ruff_cache
