# Ringleader — one toolchain for every part. `make help` lists the targets.
SHELL := /bin/bash
NODE_MODULES := node_modules/.package-lock.json
BIN := node dist/agent/src/cli/main.js
SIM_SEEDS ?= 500
SIM_MULTI_SEEDS ?= 150
CLUSTER_NODES ?= 3
CLUSTER_DIR ?= .data/cluster

.PHONY: help deps setup build test unit sim sim-bugs check lint format run clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: ## Install the Debian packages the tests use (image tools, AVR toolchain, simavr).
	bash test/scripts/install-deps.sh

setup: $(NODE_MODULES) ## Install the npm dependencies (npm ci).

build: setup ## Compile the TypeScript into dist/, and the web dashboard into dist/ui/.
	npx tsc -p tsconfig.json
	node dist/agent/src/observe/build-ui.js

# No --test-force-exit: under it the runner drops a file's last results from the report and still
# passes (nodejs/node#64833; here 4 runs in 20 of linearizability.test.js reported 33-39 of its 43
# tests). A file that hangs on open handles is stopped by the time limit instead; it is the file
# after the last one reported.
NODE_TEST = timeout --kill-after=30s 45m node --test --test-reporter=spec --test-reporter-destination=stdout

unit: build ## Run the unit and integration tests (node:test).
	$(NODE_TEST) $$(find dist -name '*.test.js' | sort)

sim: build ## Run the deterministic simulator: SIM_SEEDS one-group seeds, SIM_MULTI_SEEDS multi-Raft seeds.
	$(BIN) sim --seeds $(SIM_SEEDS)
	$(BIN) sim --multi --seeds $(SIM_MULTI_SEEDS)

sim-bugs: build ## Show that the simulator catches each deliberate Raft defect.
	node dist/test/sim-bugs.js

check: setup ## Type-check, lint and check formatting.
	npx tsc -p tsconfig.json --noEmit
	npx tsc -p agent/ui/tsconfig.json
	npx eslint .
	npx prettier --check .

lint: check

format: setup ## Rewrite the sources in the house format.
	npx prettier --write .

test: deps check unit sim sim-bugs ## Set up and run every test (what CI runs).

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

# --- images ---
# SD-card images (images/README.md). Variables: BASE (Raspberry Pi OS .img or .img.xz, trixie or
# later), OUT (image to write, default ringleader.img), CONFIG (cluster config from `ringleader
# init`, default ringleader.json), IMAGE_FLAGS (more `image build` flags, e.g. "--user pi
# --ssh-key ~/.ssh/id_ed25519.pub --boards boards.csv"), DEVICE (card for `make flash`).
BASE ?=
OUT ?= ringleader.img
CONFIG ?= ringleader.json
IMAGE_FLAGS ?=
DEVICE ?=
IMAGE_DEBS := mtools dosfstools e2fsprogs fdisk xz-utils util-linux qemu-user-static
.PHONY: image image-deps image-test flash

image-deps: ## Install the Debian tools the image builder and its tests use (as root).
	apt-get install -y -q $(IMAGE_DEBS)

image: build ## Build a ready-to-flash image: make image BASE=raspios.img.xz [OUT=.. CONFIG=.. IMAGE_FLAGS=..]
	@test -n "$(BASE)" || { echo "make image: set BASE to a Raspberry Pi OS .img or .img.xz" >&2; exit 2; }
	$(BIN) image build --base "$(BASE)" --config "$(CONFIG)" --out "$(OUT)" $(IMAGE_FLAGS)

image-test: build ## Run only the image tests (builder, arm64 bundle under qemu, flasher).
	$(NODE_TEST) $$(find dist/images/test -name '*.test.js' | sort)

flash: build ## Write OUT to a card and verify it: make flash OUT=shelf.img DEVICE=/dev/sdX
	@test -n "$(DEVICE)" || { echo "make flash: set DEVICE, e.g. /dev/sdX (see lsblk)" >&2; exit 2; }
	$(BIN) image flash "$(OUT)" "$(DEVICE)"

# --- provisioning (Ansible) ---
# provisioning/README.md. ARCH: the boards' architecture for `make release` (arm64, armhf, amd64).
ARCH ?= arm64
.PHONY: provision-check provision-test release

provision-check: ## Check the Ansible project: ansible-playbook --syntax-check of every playbook, ansible-lint.
	cd provisioning && for p in site.yml upgrade.yml backup.yml monitoring/targets.yml; do ansible-playbook --syntax-check $$p || exit 1; done
	cd provisioning && ansible-lint --profile production

provision-test: build ## Run only the provisioning tests (debootstrap root, rolling upgrade, backup); as root.
	$(NODE_TEST) $$(find dist/test/provisioning -name '*.test.js' | sort)

release: build ## The agent for the Ansible role: make release ARCH=arm64 -> provisioning/files/ringleader-<version>-arm64.tar.gz
	$(BIN) release --arch $(ARCH) --out provisioning/files
