# `make demo` shows the webhook verifying real signatures (a local registry, notary server and
# signature store, tiny signed images), then keeps serving for curl; `make cluster-demo` the same
# through a single-node cluster with kubectl; `make test` runs every test (with `make
# sysinv-real`: the StarlingX plugins under the real sysinv on Python 3.9 and 3.13).
# `make image` builds the webhook image into dist/.
# Both create or reuse .venv/ and install what they need, including Debian packages.
# `make stx-app` builds the StarlingX application tarball and `make debs` its Debian
# packages, both into dist/.

VENV := .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-stamp

.PHONY: demo cluster-demo test lint unit integration e2e app bench system-deps controlplane sigstore-tools crds stx-app debs image sysinv-real clean

$(STAMP): portieris-webhook/pyproject.toml python-k8sapp-portieris/setup.cfg
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e 'portieris-webhook[test]'
	$(VENV)/bin/pip install -q --no-build-isolation -e ./python-k8sapp-portieris
	touch $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

controlplane: system-deps
	bash scripts/build-controlplane.sh

# The real sigstore tools the cosign tests use as oracles (cosign, policy-controller's tester,
# the timestamp authority, a registry serving the OCI referrers API): built once, cached.
sigstore-tools:
	bash scripts/build-sigstore-tools.sh

# The webhook image as an OCI archive in dist/, built from Debian packages and the package's
# wheels without any registry (cached in ~/.cache/portieris/image; prints its size).
image: $(STAMP) system-deps
	$(PYTHON) scripts/build-image.py --python $(VENV)/bin/python

# The CRDs of FluxCD and cert-manager, for the application's apply test (cached).
crds:
	bash scripts/build-crds.sh

# Everything the application and its packages are built from: rebuilt only when one changes.
STX_SOURCES := $(shell find stx-manifests helm-charts/portieris python-k8sapp-portieris debian \
	-type f ! -name '*.pyc' ! -path '*/build/*' ! -path '*.egg-info/*') \
	debian_pkg_dirs debian_bullseye_pkg_dirs_std debian_trixie_pkg_dirs_std \
	scripts/build-stx-app.sh scripts/build-debs.sh
# <SW_VERSION>-<revision>: the revision moves with every commit, so the packages are stamped
# per version and built again for a new one.
APP_VERSION := $(shell bash scripts/build-stx-app.sh --print-version)
STX_APP := dist/portieris-$(APP_VERSION).tgz
DEBS_STAMP := dist/.debs-$(APP_VERSION).stamp

stx-app: $(STX_APP)

$(STX_APP): $(STX_SOURCES) | system-deps controlplane
	bash scripts/build-stx-app.sh

debs: $(DEBS_STAMP)

$(DEBS_STAMP): $(STX_SOURCES) | system-deps controlplane
	rm -f dist/.debs-*stamp
	bash scripts/build-debs.sh
	touch $@

# The application's plugins run by StarlingX's real sysinv (the pinned sources in
# ../shared/starlingx, or $PORTIERIS_STARLINGX_DIR) on bullseye's Python 3.9 and trixie's 3.13:
# a venv each (scripts/sysinv-venv.sh, cached), then tests/sysinv_real in it. The suite loads
# the plugin wheel of the tarball above the way sysinv does (PluginManager install/activate),
# so nothing of the project is installed into those venvs. Without the sources the target is
# skipped, saying so, except in CI ($CI set), where that is an error.
STARLINGX_DIR := $(or $(PORTIERIS_STARLINGX_DIR),$(CURDIR)/../shared/starlingx)
SYSINV_PYTHONS := 3.9 3.13

sysinv-real: stx-app controlplane
	@if [ ! -d "$(STARLINGX_DIR)" ]; then \
		echo "sysinv-real: no StarlingX sources at $(STARLINGX_DIR) (set PORTIERIS_STARLINGX_DIR)"; \
		if [ -n "$$CI" ]; then exit 1; fi; \
		echo "sysinv-real: skipped"; exit 0; \
	fi; \
	set -e; failed=""; for py in $(SYSINV_PYTHONS); do \
		venv=$$(PORTIERIS_STARLINGX_DIR="$(STARLINGX_DIR)" bash scripts/sysinv-venv.sh $$py); \
		report=$(CURDIR)/dist/sysinv-real-reapply-py$$py.yaml; rm -f "$$report"; \
		echo "sysinv-real: Python $$py (overrides before/after each trigger: $$report)"; \
		PORTIERIS_STX_APP=$(abspath $(STX_APP)) PORTIERIS_SYSINV_REPORT="$$report" \
			$$venv/bin/pytest -q -ra tests/sysinv_real || failed="$$failed $$py"; \
	done; \
	if [ -n "$$failed" ]; then echo "sysinv-real: failed on Python$$failed"; exit 1; fi

demo: $(STAMP) system-deps sigstore-tools
	$(VENV)/bin/python scripts/demo.py

# The same on a single-node cluster (needs root): kubectl shows real pods running the pinned
# digests and the refusal of the unsigned one; the cluster keeps running until Ctrl-C.
cluster-demo: $(STAMP) system-deps controlplane
	$(VENV)/bin/python scripts/demo.py --cluster

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit

integration: $(STAMP) system-deps sigstore-tools
	$(VENV)/bin/pytest -q -ra tests/integration

test: $(STAMP) system-deps controlplane sigstore-tools crds stx-app debs image lint sysinv-real
	$(VENV)/bin/pytest -q -ra tests

bench: $(STAMP) system-deps sigstore-tools
	$(VENV)/bin/python bench/bench_admission.py
	$(VENV)/bin/python bench/bench_decide.py
	$(VENV)/bin/python bench/bench_trust.py
	$(VENV)/bin/python bench/bench_simple.py
	$(VENV)/bin/python bench/bench_sigstore.py
	$(VENV)/bin/python bench/bench_tenant.py
	$(VENV)/bin/python bench/fuzz.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache dist build
