# Ringleader — one toolchain for every part. `make help` lists the targets.
SHELL := /bin/bash
NODE_MODULES := node_modules/.package-lock.json
BIN := node dist/agent/src/cli/main.js
SIM_SEEDS ?= 500
CLUSTER_NODES ?= 3
CLUSTER_DIR ?= .data/cluster

.PHONY: help setup build test unit sim sim-bugs check lint format run clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

setup: $(NODE_MODULES) ## Install the npm dependencies (npm ci).

build: setup ## Compile the TypeScript into dist/.
	npx tsc -p tsconfig.json

unit: build ## Run the unit and integration tests (node:test).
	node --test --test-reporter=spec --test-reporter-destination=stdout $$(find dist -name '*.test.js' | sort)

sim: build ## Run the deterministic simulator over SIM_SEEDS seeds.
	$(BIN) sim --seeds $(SIM_SEEDS)

sim-bugs: build ## Show that the simulator catches each deliberate Raft defect.
	node dist/test/sim-bugs.js

check: setup ## Type-check, lint and check formatting.
	npx tsc -p tsconfig.json --noEmit
	npx eslint .
	npx prettier --check .

lint: check

format: setup ## Rewrite the sources in the house format.
	npx prettier --write .

test: check unit sim sim-bugs ## Set up and run every test (what CI runs).

run: build ## Set up and run the main job: a local cluster of CLUSTER_NODES agents (Ctrl-C stops it).
	$(BIN) cluster up --nodes $(CLUSTER_NODES) --dir $(CLUSTER_DIR)

clean: ## Remove build output.
	rm -rf dist

# --- firmware bridge ---
.PHONY: firmware bridge-bench

firmware: ## Build the Arduino firmware and the simavr test harness into firmware-bridge/build/.
	$(MAKE) -C firmware-bridge/arduino all
	$(MAKE) -C firmware-bridge/sim all

bridge-bench: build firmware ## Measure the serial bridge: readings/s against the line's capacity, latency.
	node dist/test/bench/bridge-bench.js
