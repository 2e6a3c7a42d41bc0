# Two commands on a fresh machine:
#   make demo   set up .venv, then run the demo on data the project simulates itself
#   make test   set up .venv, then run the whole test suite
# Nothing else needs installing by hand.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of torch (the build machines carry this wheel; see README for CUDA).
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo_output
STAMP  := $(VENV)/.deepqs-installed

.PHONY: all install demo test test-engine test-plugin wheel clean

all: test

$(STAMP): setup.py
	@$(PYTHON) -c "import venv, ensurepip" 2>/dev/null || { \
	  echo "python3-venv is missing: installing it with apt-get"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv; }
	@$(PYTHON) -c "import tkinter" 2>/dev/null || { \
	  echo "tkinter is missing (Scipion imports it): installing python3-tk with apt-get"; \
	  apt-get update -qq && apt-get install -y -qq python3-tk; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[scipion,test]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m deepqs_headless demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest

test-engine: $(STAMP)
	$(PY) -m pytest tests

test-plugin: $(STAMP)
	$(PY) -m pytest deepqs_plugin/tests

wheel: $(STAMP)
	$(PY) -m build --wheel --outdir dist .

clean:
	rm -rf build dist *.egg-info .pytest_cache .scipion $(DEMO_OUT)
