# apptoken-operator — every command a newcomer or CI types.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
NPM ?= npm
CP_DIR ?= .cache/control-plane

# Every recipe runs on the Node.js major the image ships (hack/node.sh finds or fetches it and
# prints its bin dir), whatever `node` the machine has. Goals that never start node skip the look-up.
NO_NODE_GOALS := help image e2e-kind control-plane-down clean sync-crd shellcheck
ifneq ($(filter-out $(NO_NODE_GOALS),$(or $(MAKECMDGOALS),$(.DEFAULT_GOAL))),)
NODE_BIN := $(shell bash hack/node.sh)
ifeq ($(NODE_BIN),)
$(error Node.js 24 could not be found or fetched (hack/node.sh, message above))
endif
export PATH := $(NODE_BIN):$(PATH)
endif

.PHONY: help
help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-18s %s\n", $$1, $$2}'

node_modules: package-lock.json
	$(NPM) ci --no-fund --no-audit
	@touch node_modules

.PHONY: install
install: node_modules tools ## install npm dependencies and every tool the tests use

.PHONY: tools
tools: shellcheck ## find or build the tests' tools, cached in ~/.cache/apptoken-operator: helm, promtool, actionlint, control-plane binaries
	bash hack/tools.sh helm >/dev/null
	bash hack/tools.sh promtool >/dev/null
	bash hack/tools.sh actionlint >/dev/null
	bash hack/binaries.sh >/dev/null

# The tests lint the shell scripts and workflows with shellcheck (a Debian package, not a Go tool).
.PHONY: shellcheck
shellcheck:
	@if ! command -v shellcheck >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [[ "$$(id -u)" == 0 ]]; then \
	    echo "installing shellcheck (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; \
	  else \
	    echo "shellcheck is missing: install it (Debian/Ubuntu: sudo apt-get install shellcheck; macOS: brew install shellcheck)" >&2; \
	    exit 1; \
	  fi; \
	fi

.PHONY: build
build: node_modules ## typecheck src/ and bundle it with its dependencies into dist/main.js
	$(NPM) run build

.PHONY: typecheck
typecheck: node_modules ## tsc --noEmit over src, test, hack, bench
	$(NPM) run typecheck

.PHONY: lint
lint: node_modules ## eslint + prettier --check
	$(NPM) run lint

.PHONY: test
test: tools typecheck lint ## tools + typecheck + lint + unit, service and integration tests (starts a real control plane)
	npx vitest run --project unit --project service --project integration

.PHONY: test-chaos
test-chaos: node_modules ## faults, HA failover, load and leak scans against real processes (~4 min; CHAOS_N=10000 for the full load)
	npx vitest run --project chaos

.PHONY: test-unit
test-unit: node_modules ## unit tests only (no servers)
	npx vitest run --project unit

.PHONY: test-integration
test-integration: node_modules tools ## integration tests against a real kube-apiserver + etcd
	npx vitest run --project integration

.PHONY: dev
dev: node_modules ## run it: local control plane + token service + operator + samples (DEV_ONCE=1: exit once Ready)
	bash hack/dev.sh

.PHONY: run
run: node_modules ## run the operator from source against the current kubeconfig (ARGS="--namespace a ...")
	node --import tsx src/main.ts $(ARGS)

IMAGE ?= ghcr.io/apptoken/apptoken-operator:dev

.PHONY: image
image: ## build the container image $(IMAGE) (needs Docker)
	docker build -t $(IMAGE) --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	  --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) .

.PHONY: e2e-kind
e2e-kind: ## end to end on a kind cluster: image, deploy/, in-cluster token service, sample (needs Docker + kind)
	bash hack/e2e-kind.sh

.PHONY: sync-crd
sync-crd: ## copy crds/ into deploy/base/crd/ (kustomize cannot load files outside deploy/)
	cp crds/apptoken.io_apptokenrequests.yaml crds/apptoken.io_appregistrations.yaml \
		crds/apptoken.io_clusterappregistrations.yaml deploy/base/crd/

.PHONY: api-docs
api-docs: node_modules ## write docs/api.md from crds/ (a unit test fails when it is stale)
	node --import tsx hack/api-docs.ts

.PHONY: sync-chart
sync-chart: node_modules ## copy crds/ and the alert rules into charts/apptoken-operator/ (Helm packages only its own directory); regenerate the PrometheusRule
	node --import tsx hack/sync-monitoring.ts
	cp crds/apptoken.io_apptokenrequests.yaml crds/apptoken.io_appregistrations.yaml \
		crds/apptoken.io_clusterappregistrations.yaml charts/apptoken-operator/crds/
	cp deploy/components/monitoring/apptoken.rules.yaml charts/apptoken-operator/files/

.PHONY: control-plane-up
control-plane-up: node_modules ## start a local control plane in $(CP_DIR) (KUBECONFIG=$(CP_DIR)/kubeconfig)
	bash hack/control-plane.sh up $(CP_DIR)

.PHONY: control-plane-down
control-plane-down: ## stop the local control plane in $(CP_DIR)
	bash hack/control-plane.sh down $(CP_DIR)

.PHONY: bench-cache
bench-cache: node_modules ## token-cache hit latency vs msal-node (JSON lines)
	node --expose-gc --import tsx bench/cache/bench-cache.ts

.PHONY: bench-scale
bench-scale: node_modules build ## operator vs floor at scale on a real control plane (BENCH_N=1000,10000; BENCH_LARGE=1)
	node --import tsx bench/scale/scale.ts

.PHONY: bench-fleet
bench-fleet: node_modules ## fleet tier: K operators x N requests on M keys, with and without Redis (FLEET_K/N/M/ROUNDS, default 3/300/30/2)
	node --import tsx bench/fleet/fleet.ts

.PHONY: bench
bench: bench-cache bench-scale ## all benchmarks (never part of make test); see bench/README.md

.PHONY: clean
clean: ## remove build output (the binary cache in ~/.cache/apptoken-operator is kept)
	rm -rf dist coverage .cache
