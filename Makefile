# deqfam: `make test` and `make demo` work on a fresh machine with Python 3.11 and pip.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch is pinned to the CPU build on local disk; a bare `torch` pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: venv install dev test test-all lint format demo bench clean generated

$(VENV)/.installed-torch:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install $(TORCH)
	touch $@

$(VENV)/.installed: $(VENV)/.installed-torch pyproject.toml
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PIP) install -e '.[dev]'
	touch $@

$(VENV)/.installed-demo: $(VENV)/.installed pyproject.toml
	$(PIP) install -e '.[demo]'
	touch $@

venv: $(VENV)/.installed
install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q

test-all: $(VENV)/.installed-dev
	$(PY) -m pytest -q -m ''

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

demo: $(VENV)/.installed-demo
	$(VENV)/bin/deqfam demo

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache build *.egg-info

# Regenerate the committed golden files for every built-in family.
generated: $(VENV)/.installed
	$(VENV)/bin/deqfam generate --builtins --target all -o generated
