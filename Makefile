# Developer tasks for langgraph-postgres-saver.
#
#   make install   create .venv (if missing) and (re)install the package + dev extras
#   make test      run the test suite (PYTEST_ARGS="-k foo -x" to pass arguments)
#   make lint      ruff check, ruff format --check, mypy
#   make format    apply ruff fixes and formatting
#   make demo      run a small graph with the saver and the store (bench/demo.py)
#   make bench     run the benchmark (bench/run.py)
#   make bench-scale  a million checkpoints: reads, search, sweep, setup(), sizes (bench/scale.py)
#   make soak      60 s of concurrent graph runs while backends are killed (bench/soak.py)
#   make db-up     start a Postgres in Docker on localhost:5442 (db-down stops it)
#   make clean     remove the virtualenv and caches
#
# Every target that runs something from .venv installs first when needed: on a
# fresh checkout, when .venv is missing, or when pyproject.toml changed since
# the last install. So `make demo` or `make test` works as the first command.

PY ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
# Touched after each successful install; older than pyproject.toml means stale.
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=
LINT_PATHS := langgraph tests bench
COMPOSE ?= docker compose

.DEFAULT_GOAL := help

.PHONY: help install test lint format demo bench bench-scale soak db-up db-down clean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

$(VPY):
	$(PY) -m venv $(VENV)

define pip_install
	$(VPY) -m pip install --upgrade pip
	$(VPY) -m pip install -e '.[dev]'
	touch $(INSTALLED)
endef

# Install only when needed (the targets below depend on it).
$(INSTALLED): pyproject.toml | $(VPY)
	$(pip_install)

# Always install (and upgrade pip), as CI does.
install: $(VPY)
	$(pip_install)

test: $(INSTALLED)
	$(VPY) -m pytest $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

demo: $(INSTALLED)
	$(VPY) bench/demo.py

bench: $(INSTALLED)
	$(VPY) bench/run.py

# SCALE_ARGS="--write" updates bench/RESULTS.md; see bench/scale.py --help.
SCALE_ARGS ?=
bench-scale: $(INSTALLED)
	$(VPY) bench/scale.py $(SCALE_ARGS)

soak: $(INSTALLED)
	$(VPY) bench/soak.py

db-up:
	$(COMPOSE) up -d

db-down:
	$(COMPOSE) down

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
