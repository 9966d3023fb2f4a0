# Two entry points, both safe on a fresh machine with no network but the package registries:
#   make demo   create .venv (CPU torch), install zsindex with its test tools, run `zsindex demo`
#   make test   the same environment, then the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The exact CPU build first: a bare "torch" requirement would pull several GB of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0 torchvision==0.28.0
	# setuptools' notice about editable installs is a UserWarning: not for a user to act on.
	PYTHONWARNINGS=ignore::UserWarning $(PY) -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/zsindex demo

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check zsindex tests scripts benchmarks migrations
	$(VENV)/bin/mypy zsindex

bench: $(VENV)/.installed
	$(PY) -m benchmarks
