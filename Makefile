# make env | test | train | bench      [STACK=tf1|tf2]   [BENCH_ARGS='--quick --only char']
#
# STACK=tf1: Python 3.7 + TensorFlow 1.15.5 (the faithful stack), in .venv-tf1/
# STACK=tf2: current Python + TensorFlow 2.x through tf.compat.v1, in .venv-tf2/
# Without STACK: tf1 when a Python 3.7 can be found (PATH or pyenv), else tf2.

SHELL := /bin/bash

# A real Python 3.7 executable (a pyenv shim only works with PYENV_VERSION set).
PY37 ?= $(shell for p in python3.7 $$(pyenv root 2>/dev/null)/versions/3.7*/bin/python3.7; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 7); print(sys.executable)' 2>/dev/null && break; \
	done)
# TF 2.21 supports Python 3.10 to 3.13.
PY3 ?= $(shell for p in python3.11 python3.12 python3.13 python3.10 python3; do \
	"$$p" -c 'import sys; assert (3, 10) <= sys.version_info[:2] <= (3, 13); print(sys.executable)' 2>/dev/null && break; \
	done)

ifeq ($(origin STACK),undefined)
  ifneq ($(PY37),)
    STACK := tf1
  else
    STACK := tf2
    $(info notice: no Python 3.7 found (python3.7 on PATH or under pyenv), so using the TF2 stack; STACK=tf2 silences this)
  endif
endif

ifeq ($(STACK),tf1)
  BASE_PYTHON := $(PY37)
  REQUIREMENTS := requirements.txt
  WANT := a Python 3.7 interpreter (python3.7 on PATH, or 'pyenv install 3.7.16')
else ifeq ($(STACK),tf2)
  BASE_PYTHON := $(PY3)
  REQUIREMENTS := requirements-tf2.txt
  WANT := a Python 3.10 to 3.13 interpreter (python3.11 on PATH)
else
  $(error STACK must be tf1 or tf2, not '$(STACK)')
endif

VENV := .venv-$(STACK)
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=
BENCH_ARGS ?=
# Benchmark-only packages (TF2: PyTorch for the peer comparison), never in the test environment.
BENCH_REQUIREMENTS := bench/requirements-$(STACK).txt

.PHONY: env test train bench clean-env

env: $(VENV)/.installed

$(VENV)/.installed: $(REQUIREMENTS)
	@if [ -z "$(BASE_PYTHON)" ]; then echo "error: STACK=$(STACK) needs $(WANT); none found" >&2; exit 1; fi
	@echo "creating $(VENV) with $(BASE_PYTHON)"
	@rm -rf $(VENV)
	$(BASE_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --upgrade "pip<24.1"
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r $(REQUIREMENTS)
	@touch $@

test: env
	$(PYTHON) -m pytest tests $(PYTEST_ARGS)

train: env
	$(PYTHON) char_rnn.py

bench: $(VENV)/.bench-installed
	$(PYTHON) bench/run.py $(BENCH_ARGS)

$(VENV)/.bench-installed: $(VENV)/.installed $(BENCH_REQUIREMENTS)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r $(BENCH_REQUIREMENTS)
	@touch $@

clean-env:
	rm -rf .venv-tf1 .venv-tf2
