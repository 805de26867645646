# Kubernetes image puller. `make test` runs every test tier; see README.md.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
PKG     := github.com/kip-image-puller/kip
LDFLAGS := -s -w -X $(PKG)/internal/version.Version=$(VERSION) -X $(PKG)/internal/version.Commit=$(COMMIT)
BIN     := bin
GO      ?= go
FUZZTIME ?= 30s
# Where the from-source Kubernetes binaries are cached (per version).
export KIP_CACHE_DIR ?= $(HOME)/.cache/kip

.PHONY: all build fmt mutate test test-unit test-integration test-e2e test-faults test-faults-long bench bench-scale fuzz lint kube-binaries clean cluster-up cluster-down image demo manifests bundle deploy-operator

all: build

build: ## Build kip and the static kip-sleep into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/kip ./cmd/kip
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/kip-sleep ./cmd/kip-sleep
	@ls -l $(BIN)/kip $(BIN)/kip-sleep

test: lint test-unit test-integration test-e2e ## Every tier

# The unit and integration tiers run under the race detector (cgo: gcc).
RACE ?= -race
test-unit: ## Pure packages and commands, with the fuzz seed corpora, under the race detector; the dashboard's and alerts' PromQL
	$(GO) test $(RACE) -count=1 ./...
	cd test/monitoring && $(GO) test -count=1 ./...

kube-binaries: ## Build etcd and kube-apiserver from source (cached)
	hack/kube-binaries.sh etcd kube-apiserver

# A real CheCluster CRD (che-operator's), for a second run of the tests that
# install one: $(KIP_CHECLUSTER_CRD), or one hack/real-crds.sh finds beside
# the repository. Every test first runs with the project's own fixture.
REAL_CHECLUSTER_CRD := $(or $(KIP_CHECLUSTER_CRD),$(shell hack/real-crds.sh org.eclipse.che_checlusters.yaml))
unexport KIP_CHECLUSTER_CRD
# The same for node-readiness-controller's NodeReadinessRule CRD, which
# judges the rule in deploy/node-readiness.
REAL_READINESS_CRD := $(or $(KIP_READINESS_CRD),$(shell hack/real-crds.sh readiness.node.x-k8s.io_nodereadinessrules.yaml))
unexport KIP_READINESS_CRD

test-integration: kube-binaries ## Controllers against a real kube-apiserver and etcd (envtest), under the race detector
	KUBEBUILDER_ASSETS="$$(hack/kube-binaries.sh etcd kube-apiserver)" \
		$(GO) test $(RACE) -count=1 -tags integration -timeout 25m ./api/... ./internal/controller/... ./internal/agent/... ./cmd/kip/... ./deploy/...
ifneq ($(REAL_READINESS_CRD),)
	@echo "again, with the real NodeReadinessRule CRD $(REAL_READINESS_CRD)"
	KIP_READINESS_CRD="$(REAL_READINESS_CRD)" KUBEBUILDER_ASSETS="$$(hack/kube-binaries.sh etcd kube-apiserver)" \
		$(GO) test -count=1 -tags integration -timeout 5m ./deploy/...
endif
ifneq ($(REAL_CHECLUSTER_CRD),)
	@echo "again, with the real CheCluster CRD $(REAL_CHECLUSTER_CRD)"
	KIP_CHECLUSTER_CRD="$(REAL_CHECLUSTER_CRD)" KUBEBUILDER_ASSETS="$$(hack/kube-binaries.sh etcd kube-apiserver)" \
		$(GO) test -count=1 -tags integration -timeout 20m ./internal/controller/imagepuller/... ./internal/controller/checluster/...
endif

# The slower half of the fault-injection suite (about 12 minutes): left out
# of test-e2e, so that `make test` stays well within 45 minutes cold; .ci/run
# runs it after `make test`.
FAULTS_LONG := ^TestFault(RegistryDownMidPull|SlowRegistry|PullSecretRotatedAgentMode|RuntimeRestartedAgentMode|KubeletStopped|APIServerDownAgentMode)

test-faults: ## Every fault-injection test, on a fresh local cluster
	$(GO) test -count=1 -tags e2e -timeout 60m -run 'TestFault' -v ./test/e2e/...

test-faults-long: ## The slower half of the fault-injection tests (not in test-e2e; .ci/run runs it)
	$(GO) test -count=1 -tags e2e -timeout 30m -run '$(FAULTS_LONG)' -v ./test/e2e/...

test-e2e: ## On a fresh 3-node local cluster (root; builds it, tears it down after), but the slower faults
	$(GO) test -count=1 -tags e2e -timeout 50m -skip '$(FAULTS_LONG)' ./test/e2e/...
ifneq ($(REAL_CHECLUSTER_CRD),)
	@echo "the operator's tests again, with the real CheCluster CRD $(REAL_CHECLUSTER_CRD)"
	KIP_CHECLUSTER_CRD="$(REAL_CHECLUSTER_CRD)" $(GO) test -count=1 -tags e2e -timeout 30m -run 'Operator|CheCluster' ./test/e2e/...
endif

BENCH_IMAGES ?= 10,50
BENCH_SIZE_MB ?= 10
BENCH_RUNS ?= 5
# The Go benchmarks' runs: benchstat gives a confidence interval from 6.
GO_BENCH_COUNT ?= 10
# Where make bench writes its tables and every sample (committed: the
# README's figures come from there).
BENCH_OUT ?= hack/bench
# benchstat (golang.org/x/perf), pinned in a module of its own: the median
# of a Go benchmark's runs and their 95% confidence interval.
BENCHSTAT ?= $(GO) tool -modfile=$(CURDIR)/hack/tools/benchstat/go.mod benchstat
bench: kube-binaries ## Benchmarks: the controller's cache, the controller on envtest, then the puller against CRI pulls on the local cluster; BENCH_RUNS interleaved runs per cell, tables in $(BENCH_OUT)
	mkdir -p $(BENCH_OUT)
	$(GO) test -run '^$$' -bench CacheContent -benchtime 1x -count $(GO_BENCH_COUNT) ./internal/observe/ | tee $(BENCH_OUT)/cache-samples.txt
	$(BENCHSTAT) $(BENCH_OUT)/cache-samples.txt | tee $(BENCH_OUT)/cache.txt
	KUBEBUILDER_ASSETS="$$(hack/kube-binaries.sh etcd kube-apiserver)" \
		$(GO) test -tags integration -run '^$$' -bench . -benchtime 20x -count $(GO_BENCH_COUNT) ./internal/controller/puller/... | tee $(BENCH_OUT)/controller-samples.txt
	$(BENCHSTAT) $(BENCH_OUT)/controller-samples.txt | tee $(BENCH_OUT)/controller.txt
	hack/cluster.sh up $(NODES)
	$(MAKE) image REGISTRY=127.0.0.1:5001
	$(BIN)/kip-dev bench --images $(BENCH_IMAGES) --size-mb $(BENCH_SIZE_MB) --runs $(BENCH_RUNS) --raw $(BENCH_OUT)/modes-samples.tsv | tee $(BENCH_OUT)/modes.txt

# kwok simulates nodes for bench-scale; built from the Go module proxy, cached.
KWOK_VERSION := v0.8.0
KWOK := $(KIP_CACHE_DIR)/kwok-$(KWOK_VERSION)/kwok
$(KWOK):
	GOBIN=$(dir $(KWOK)) GOFLAGS=-mod=mod $(GO) install sigs.k8s.io/kwok/cmd/kwok@$(KWOK_VERSION)

SCALE_NODES ?= 500,2000
SCALE_IMAGES ?= 100
# More bench-scale flags, e.g. SCALE_ARGS="--installs controller --modes agent".
SCALE_ARGS ?=
# The control plane's DaemonSet controller creates pods at 200 requests/s
# instead of 20, and simulated nodes, whose status kwok renews only every 10
# to 30 minutes, stay Ready for an hour.
SCALE_KCM_ARGS := --kube-api-qps=200 --kube-api-burst=400 --node-monitor-grace-period=1h
bench-scale: kube-binaries build $(KWOK) ## The controller and the operator at SCALE_NODES simulated nodes (kwok) and SCALE_IMAGES images: a table (a fresh 1-node local cluster)
	hack/cluster.sh down
	KCM_EXTRA_ARGS="$(SCALE_KCM_ARGS)" hack/cluster.sh up 1
	$(MAKE) image REGISTRY=127.0.0.1:5001
	$(BIN)/kip-dev bench-scale --kwok $(KWOK) --nodes $(SCALE_NODES) --images $(SCALE_IMAGES) $(SCALE_ARGS)

mutate: ## Mutation testing of the pure packages (gremlins): a table of efficacy and mutator coverage, and the survivors
	hack/mutate.sh

fuzz: ## Run each fuzz target for FUZZTIME
	$(GO) test -run '^$$' -fuzz FuzzParseImages -fuzztime $(FUZZTIME) ./internal/config
	$(GO) test -run '^$$' -fuzz FuzzParseJSONKeys -fuzztime $(FUZZTIME) ./internal/config

# golangci-lint, pinned in a module of its own (hack/tools/go.mod) so its
# dependencies never touch the product's.
GOLANGCI_LINT ?= $(GO) tool -modfile=$(CURDIR)/hack/tools/go.mod golangci-lint
lint: ## golangci-lint with .golangci.yml, every build tag, and its formatters
	$(GOLANGCI_LINT) run ./...
	$(GOLANGCI_LINT) fmt --diff ./...
	cd test/monitoring && $(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./... && $(GOLANGCI_LINT) fmt --config $(CURDIR)/.golangci.yml --diff ./...

fmt: ## Format the code as lint wants it
	$(GOLANGCI_LINT) fmt ./...

demo: ## The main job: local cluster, images cached on every node by the puller, cold vs warm start
	hack/demo.sh

NODES ?= 3
cluster-up: ## A local multi-node cluster built from source, with registries on 127.0.0.1 (root)
	hack/cluster.sh up $(NODES)

cluster-down: ## Stop the local cluster and remove its files, mounts and bridge
	hack/cluster.sh down

REGISTRY ?= 127.0.0.1:5001
image: build ## Build the project's image without Docker and push it to $(REGISTRY)
	CGO_ENABLED=0 $(GO) build -o $(BIN)/kip-dev ./cmd/kip-dev
	$(BIN)/kip-dev push-image --registry $(REGISTRY) --image kip:dev --platform amd64=$(BIN)

CONTROLLER_GEN ?= $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
manifests: ## Generate the KubernetesImagePuller CRD and deepcopy code with controller-gen, then the OLM bundle
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:dir=deploy/operator/crd
	$(MAKE) bundle

bundle: ## Write the operator's OLM bundle (deploy/operator/bundle) from deploy/operator
	$(GO) run ./cmd/kip-dev bundle --manifests deploy/operator --out deploy/operator/bundle

deploy-operator: ## Install the operator on the local cluster (make cluster-up first), running the image `make image` pushed
	$(MAKE) image
	. /tmp/kip-cluster/env && "$$KIP_KUBE_BIN/kubectl" apply --server-side -k hack/local-operator
	. /tmp/kip-cluster/env && "$$KIP_KUBE_BIN/kubectl" -n kip-operator rollout status deployment/kip-operator --timeout 180s

clean:
	rm -rf $(BIN)
