# Quick start: `make demo` (zoom oracle on the shipped photos) and `make test` (the full test suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.zoomkit-installed
PLUGINS := $(wildcard plugins/*/pyproject.toml)

.PHONY: demo test lint bench browser clean

$(STAMP): pyproject.toml $(PLUGINS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/zoomkit oracle

browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

test: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q
	$(VENV)/bin/ruff check zoomkit plugins tests benchmarks

lint: $(STAMP)
	$(VENV)/bin/ruff check zoomkit plugins tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/oracle_throughput.py

clean:
	rm -rf $(VENV) zoomkit-results .pytest_cache
