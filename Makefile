# Skerry's build. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO       ?= go
OUT      := _output
BIN      := $(OUT)/bin
LDFLAGS   = $(shell hack/version.sh)
# Binaries that run on edge devices: pure Go so they cross-compile and run anywhere.
EDGE_CMDS := ./cmd/edgecore ./cmd/keadm
CROSS_PLATFORMS := linux/arm64 linux/arm/7
FUZZTIME ?= 5000x
E2E_TIMEOUT ?= 40m

.PHONY: help
help: ## Show this help.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# A mapper's directory is named after its protocol, so its binary is named with -o.
.PHONY: build
build: ## Build cloudcore, edgecore, keadm, the mappers and modbus-sim into _output/bin.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/cloudcore ./cmd/edgecore ./cmd/keadm ./mappers/modbus/cmd/modbus-sim
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/virtual-mapper ./mappers/virtual
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/modbus-mapper ./mappers/modbus

.PHONY: cross
cross: ## Cross-compile the edge binaries for linux/arm64 and linux/arm (GOARM=7).
	@for p in $(CROSS_PLATFORMS); do \
	  IFS=/ read -r os arch variant <<<"$$p"; \
	  dir=$(BIN)/$${os}_$${arch}$${variant:+v$$variant}; \
	  echo "cross $$p -> $$dir"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$variant $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$dir/ $(EDGE_CMDS); \
	done

.PHONY: deps
deps: ## Install the Debian packages and pinned Go tools (idempotent; needs root when something is missing).
	hack/install-deps.sh

.PHONY: tools
tools:
	hack/install-tools.sh

.PHONY: generate
generate: tools ## Regenerate deepcopy, clientset/listers/informers and CRD manifests.
	hack/update-codegen.sh

.PHONY: verify
verify: tools ## Fail when generated code, go.mod/go.sum or formatting are stale.
	hack/verify-codegen.sh
	hack/verify-gomod.sh
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	  if [[ -n $$out ]]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi

.PHONY: lint
lint: tools ## go vet and staticcheck, including the e2e tests.
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/...
	$(OUT)/tools/bin/staticcheck ./...
	$(OUT)/tools/bin/staticcheck -tags e2e ./test/...

.PHONY: test-unit
test-unit: ## Unit tests: fast, no root, no servers (race detector on).
	$(GO) test -race -count=1 ./...

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME (default 5000x: inputs per target).
	FUZZTIME=$(FUZZTIME) hack/fuzz.sh

.PHONY: e2e
e2e: deps build ## End-to-end tests on the real control plane and containerd (root; starts what is not running).
	$(GO) test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) -v ./test/e2e

.PHONY: test-lifecycle
test-lifecycle: deps ## local-up/local-down promises on the real processes: nothing left behind, up again, up after a crash.
	hack/test-lifecycle.sh

.PHONY: test
test: deps verify lint test-unit cross fuzz e2e test-lifecycle ## Everything CI runs.

.PHONY: up-cluster
up-cluster: ## Start the local control plane and container runtime.
	hack/local-up.sh

.PHONY: up
up: ## The quickstart: dependencies, build, control plane and runtime, keadm init and join, the demo app and device.
	hack/quickstart.sh up

.PHONY: down
down: ## Stop and remove everything `make up` started (keadm reset edge and cloud, then the control plane).
	hack/quickstart.sh down

.PHONY: clean
clean: down ## Stop everything and remove _output (keeps the kube binary cache under ~/.cache/skerry).
	hack/local-down.sh --purge
	rm -rf $(OUT)
