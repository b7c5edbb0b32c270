# One entry point for every job.  Each target creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TM := $(BIN)/tracemark
PORT ?= 8000
DEMO_DIR := $(or $(TRACEMARK_HOME),$(HOME)/.local/share/tracemark)/demo

NODE_SARIF := bench/.node-sarif
NODE_ANCHOR := bench/.node-electronegativity

.PHONY: run demo test install-matrix browser oracles check lint typecheck bench reference-model clean

# torch held at its CPU wheel (a plain torch is the multi-GB CUDA build); pip >= 25.1 for --group.
TORCH_CPU := scripts/ci/constraints-torch-cpu.txt

$(STAMP): pyproject.toml src/tracemark/__init__.py $(TORCH_CPU)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1'
	$(BIN)/python -m pip install --quiet -c $(TORCH_CPU) -e '.[all,scale]' --group dev
	touch $(STAMP)

## make run: development keys, then the service and web page on http://127.0.0.1:8000/
run: $(STAMP)
	$(TM) keys init
	$(TM) service run --dev-token --host 127.0.0.1 --port $(PORT)

## make demo: generate marked text with the reference model and detect it, on the command line
demo: $(STAMP)
	$(TM) keys init
	@mkdir -p $(DEMO_DIR)
	$(TM) text generate --seed 7 --prompt "The documentation explains how" > $(DEMO_DIR)/marked.txt
	@echo "--- marked text ($(DEMO_DIR)/marked.txt) ---"; cat $(DEMO_DIR)/marked.txt; echo "---"
	$(TM) text detect $(DEMO_DIR)/marked.txt

## make test: the whole test suite (installs Debian's chromium for the end-to-end page tests when run as root)
test: $(STAMP) browser oracles
	$(BIN)/python -m pytest -q

## make install-matrix: build the sdist and wheel, install the wheel in fresh venvs under .ci-venvs/ (base, each
## extra alone, all at the newest and at the lowest allowed versions) and test each install, two jobs at a time
## (about 25 minutes on 2 cores; MATRIX_ARGS="--jobs base,media" picks jobs)
MATRIX_ARGS ?= --parallel 2
install-matrix: $(STAMP)
	$(BIN)/python scripts/ci/install_matrix.py $(MATRIX_ARGS)

browser:
	@if [ -x /usr/bin/chromium ] && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	else echo "end-to-end tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"; fi

## test-time oracles: from npm (gitignored) the SARIF 2.1.0 schema and @electron/asar; from Debian Go and
## golang.org/x/mod (sumdb/tlog reads our exported tiles)
oracles:
	@if command -v go >/dev/null && [ -d /usr/share/gocode/src/golang.org/x/mod/sumdb/tlog ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go golang-golang-x-mod-dev; \
	else echo "the tlog-tiles cross-check needs Debian's golang-go and golang-golang-x-mod-dev"; fi
	@if command -v npm >/dev/null; then \
		[ -d $(NODE_SARIF)/node_modules/@microsoft/jest-sarif ] || \
			npm install --silent --no-audit --no-fund --prefix $(NODE_SARIF) @microsoft/jest-sarif@1.0.0-beta.0; \
		[ -d $(NODE_ANCHOR)/node_modules/@electron/asar ] || \
			npm install --silent --no-audit --no-fund --prefix $(NODE_ANCHOR) @doyensec/electronegativity@1.10.3; \
	else echo "npm not found: the SARIF-schema and @electron/asar cross-checks will skip"; fi

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

## make check: lint, types and tests
check: lint typecheck test

.PHONY: bench-full bench-tables

## make bench: every benchmark at bounded settings, on a small model zoo built first in bench/.zoo
## (or $TRACEMARK_ZOO) when absent; results in bench/results/quick/; about 1 hour on the shared 2-core machine
bench: $(STAMP)
	$(BIN)/python bench/run_benchmarks.py; status=$$?; $(BIN)/python scripts/render_bench_tables.py; exit $$status

## make bench-full: every benchmark at its published settings, on a full zoo (hours); results in bench/results/
bench-full: $(STAMP)
	$(BIN)/python bench/run_benchmarks.py --full; status=$$?; $(BIN)/python scripts/render_bench_tables.py; exit $$status

## make bench-tables: render the performance tables in README.md and docs/ from bench/results/
bench-tables: $(STAMP)
	$(BIN)/python scripts/render_bench_tables.py

.PHONY: fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=

## make fuzz: coverage-guided fuzzing (atheris) of every parser of hostile input, FUZZ_SECONDS each (default 60;
## FUZZ_TARGETS=pickle,receipt picks some), then its property tests; executions and coverage in bench/results/fuzz.json
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run_all --seconds $(FUZZ_SECONDS) --targets "$(FUZZ_TARGETS)"

## make reference-model: retrain the bundled model from scratch (about 35 minutes on one core)
reference-model: $(STAMP)
	$(BIN)/python scripts/train_reference_model.py --out models/reference

clean:
	rm -rf $(VENV) .ci-venvs .mypy_cache .ruff_cache .pytest_cache
