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

# Debian's Chromium for the HTML report's screenshot test (installed when we can: as root with apt).
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium not found: the HTML screenshot test will be skipped (install Debian's chromium)"; fi

test: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q
	$(VENV)/bin/ruff check zoomkit plugins tests benchmarks

lint: $(STAMP)
	$(VENV)/bin/ruff check zoomkit plugins tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/oracle_throughput.py

clean:
	rm -rf $(VENV) zoomkit-results .pytest_cache
