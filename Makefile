# `make demo` runs the webhook offline on the example policies; `make test` runs every test.
# Both create or reuse .venv/ and install what they need, including Debian packages.

VENV := .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint unit integration e2e app bench system-deps controlplane clean

$(STAMP): portieris-webhook/pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e 'portieris-webhook[test]'
	touch $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

controlplane: system-deps
	bash scripts/build-controlplane.sh

demo: $(STAMP) system-deps
	bash scripts/demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit

test: $(STAMP) system-deps controlplane lint
	$(VENV)/bin/pytest -q -ra tests

bench: $(STAMP) system-deps
	$(VENV)/bin/python bench/bench_trust.py
	$(VENV)/bin/python bench/bench_simple.py
	$(VENV)/bin/python bench/fuzz.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
