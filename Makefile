# Two commands do all the set-up on a fresh machine:  `make run` (the main job) and `make test`.
# TORCH_SPEC: torch==2.13.0 is the CPU build that lies on this project's machines (installs in seconds);
# CI has no GPU, so the 5 GB CUDA build (2.14.1) would only cost time. Override for a GPU box:
#   make test TORCH_SPEC=torch==2.14.1
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rnnshapes-installed
PYTEST_ARGS ?=

.PHONY: run test lint typecheck pytest random-order floors docs bench gpu-check clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=25.1"
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e . --group test --group docs
	touch $@

run: $(STAMP)
	$(VENV)/bin/rnnshapes train --all

test: lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check rnnshapes tests benchmarks scripts
	$(VENV)/bin/ruff format --check rnnshapes tests benchmarks scripts
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/python -m pytest -n 2 --dist worksteal $(PYTEST_ARGS)

# the whole suite once in a random order (pytest-randomly prints its seed; replay with
# PYTEST_ARGS=--randomly-seed=N), to show that no test depends on another's side effects
random-order: $(STAMP)
	$(VENV)/bin/python -m pytest -n 2 -p randomly $(PYTEST_ARGS)

# the declared minimum versions of pyproject.toml (the CPU torch 2.13.0) in a fresh environment under
# scripts/.nox, running the core and plugin tests (scripts/noxfile.py). Minutes, not seconds: kept out of
# `make test`; run it when a floor or a dependency's use changes.
floors: $(STAMP)
	$(VENV)/bin/nox -f scripts/noxfile.py -s floors

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/run.py

gpu-check:
	scripts/gpu-check

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache scripts/.nox
