# fashion-search — the two commands of the quick start are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned: a bare "torch" pulls a multi-GB CUDA build. Only tests and training need it.
TORCH := torch==2.13.0

.PHONY: demo test lint typecheck unit audit bench install install-dev clean

# Each step says what it does: the first run installs for a minute or two and must not be silent.
$(BIN)/python:
	@echo "==> [1/2] creating the virtual environment $(VENV) (first run only)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Runtime + API + embedded home + UI: what the demo needs.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "==> [2/2] installing fashion-search with its API, embedded home and UI (onnxruntime,"
	@echo "    fastapi, streamlit, ...): a minute or two the first time; pip lists each package"
	$(BIN)/pip install --progress-bar on -e ".[all]"
	@touch $@
	@echo "==> installed; next runs start at once"

# Everything the tests need: the above, torch (CPU, pinned), transformers/onnx for the test
# models, moto, schemathesis, selenium, linters. open_clip and timm (SigLIP's vision tower) are
# installed without their dependencies: PyPI's torchvision does not import beside this CPU torch
# (its 0.28.0 is a CUDA build), so the open_clip export tests import them beside a test-only
# stand-in (tests/fixtures/_torchvision_standin) and the rest never import torchvision.
TIMM := timm==1.0.31
$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	@echo "==> installing the test tools: $(TORCH) (CPU; the largest download)"
	$(BIN)/pip install --progress-bar on $(TORCH)
	@echo "==> installing transformers, onnx, moto, schemathesis, selenium, ruff, mypy, ..."
	$(BIN)/pip install --progress-bar on -e ".[all,export,dev]"
	-$(BIN)/pip uninstall --quiet -y torchvision 2>/dev/null
	@echo "==> installing open_clip and timm (for the export tests; without their dependencies)"
	$(BIN)/pip install --quiet --no-deps "open_clip_torch>=3.3,<4" "$(TIMM)"
	@touch $@

# checkov pins an older boto3/botocore than the project uses: it gets its own environment.
CHECKOV := .cache/tools/checkov
$(CHECKOV)/bin/checkov:
	@echo "==> installing checkov (template checks) in its own environment $(CHECKOV)"
	$(PYTHON) -m venv $(CHECKOV)
	$(CHECKOV)/bin/pip install --progress-bar on checkov

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev $(CHECKOV)/bin/checkov

## The embedded demo: catalog + model + ingest + API + Streamlit, on this machine, offline.
demo: $(VENV)/.installed
	@echo "==> starting the demo (catalog, model, ingest, API, UI)"
	$(BIN)/fashion-search demo

## Lint, type-check and the whole test suite (warnings are errors).
test: $(VENV)/.installed-dev $(CHECKOV)/bin/checkov
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

audit: $(VENV)/.installed-dev
	$(BIN)/pip-audit --skip-editable

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/embed.py --json .bench/embed.json
	$(BIN)/python benchmarks/index.py --json .bench/index.json
	$(BIN)/python benchmarks/ingest.py --json .bench/ingest.json
	$(BIN)/python benchmarks/api.py --json .bench/api.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build .aws-sam
