VENV ?= .venv
PY := $(VENV)/bin/python
# The machine's local CPU build of torch when pip keeps one in /opt/wheels (CI does); PyPI's otherwise.
TORCH ?= $(or $(firstword $(wildcard /opt/wheels/torch-*+cpu-*.whl)),torch>=2.4)
STAMP := $(VENV)/.maxsim-installed
PROJECTS := pyproject.toml core/pyproject.toml integrations/langchain/pyproject.toml integrations/llama-index/pyproject.toml

.PHONY: setup demo test bench lint

setup: $(STAMP)

$(STAMP): $(PROJECTS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e "core[qdrant,muvera,server,index,int8]" -e integrations/langchain -e integrations/llama-index
	$(PY) -m pip install -q --group dev
	touch $@

demo: setup
	$(PY) -m maxsim demo $(if $(MODEL),--model "$(MODEL)")

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/scores.py
	$(PY) benchmarks/encode.py
	$(PY) benchmarks/store.py
	$(PY) benchmarks/serve.py

lint: setup
	$(PY) -m ruff check core integrations tests benchmarks
	$(PY) -m ruff format --check core integrations tests benchmarks
	$(PY) -m mypy core/src integrations/langchain/src
	MYPYPATH=integrations/llama-index/src $(PY) -m mypy --explicit-package-bases integrations/llama-index/src
