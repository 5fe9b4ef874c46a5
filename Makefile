# drillerd — see README.md.
SHELL := /bin/bash
GO ?= go
BIN := bin
# End-to-end tests start real processes; scale their timeouts with
# DRILLERD_E2E_TIMEOUT_SCALE=2 on a slow machine.
TEST_TIMEOUT ?= 60m
STATICCHECK_VERSION ?= v0.8.2
CONTROLLER_GEN_VERSION ?= v0.23.0
CONTROLLER_GEN := $(shell $(GO) env GOPATH)/bin/controller-gen

.PHONY: demo generate all deps apt-deps go-deps tools build test soak unit e2e fuzz bench lint fmt cluster-up cluster-down clean

all: build

## deps: install every prerequisite on a fresh machine (Debian packages, Go modules, control-plane binaries)
deps: apt-deps go-deps tools

APT_PACKAGES := postgresql postgresql-contrib chromium prometheus skopeo
apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

go-deps:
	$(GO) mod download
	cd test/tools/kubernetes && $(GO) mod download
	cd test/tools/snapshot-controller && $(GO) mod download
	cd test/tools/etcd && $(GO) mod download
	cd test/tools/prometheus-operator && $(GO) mod download github.com/prometheus-operator/prometheus-operator
	cd test/tools/cert-manager && $(GO) mod download github.com/cert-manager/cert-manager
	cd test/tools/helm && $(GO) mod download
	@test -x "$$($(GO) env GOPATH)/bin/staticcheck" || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@test -x $(CONTROLLER_GEN) || GOFLAGS= $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)

## tools: build (or find in the cache) etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, snapshot-controller, helm
tools:
	@test/tools/build.sh >/dev/null
	@test/tools/build.sh helm >/dev/null

## build: build the commands into bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$$(git describe --always --dirty 2>/dev/null || echo dev)" -o $(BIN)/drillerd ./cmd/drillerd
	$(GO) build -o $(BIN)/localcluster ./test/cmd/localcluster

TEST_CLUSTER := $(CURDIR)/.localcluster-test

# FAULTS: the fault suite, which stops drillerd and cluster components.
FAULTS := ./test/e2e/faults

## test: prerequisites, lint, then every unit and end-to-end test on local clusters of their own: the fault
## suite and the broken-backup corpus each on one of theirs, beside the rest (test/suites.sh)
test: deps lint build
	@GO=$(GO) test/suites.sh $(BIN)/localcluster $(CURDIR)/.localcluster -count=1 -timeout $(TEST_TIMEOUT)

## soak: the fault suite with its longer variants (each crash instant alone), on a local cluster of its own (README: Fault tests)
soak: deps build
	@$(BIN)/localcluster up --state-dir $(TEST_CLUSTER) >/dev/null
	@DRILLERD_LOCALCLUSTER=$(TEST_CLUSTER) DRILLERD_SOAK=1 $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -v $(FAULTS); \
	  rc=$$?; $(BIN)/localcluster down --state-dir $(TEST_CLUSTER) >/dev/null; exit $$rc

BENCH_CLUSTER ?= $(CURDIR)/.localcluster-bench

## bench: measure drillerd on a local cluster of its own (not part of make test; half an hour or more):
## writes bench/results.json and prints a table; docs/benchmarks.md says how each figure is made
bench: build tools
	@$(BIN)/localcluster up --state-dir $(BENCH_CLUSTER) >/dev/null
	@DRILLERD_LOCALCLUSTER=$(BENCH_CLUSTER) $(GO) test -tags bench -count=1 -timeout 4h -run TestBench -v ./bench; \
	  rc=$$?; $(BIN)/localcluster down --state-dir $(BENCH_CLUSTER) >/dev/null; exit $$rc

## unit: only the fast tests that need no cluster
unit:
	$(GO) test -count=1 -short ./...

# Every fuzz target, as package:Name. `go test` runs their committed seeds
# (testdata/fuzz) with the unit tests; make fuzz looks for new inputs.
FUZZ_TARGETS := ./internal/drill:FuzzSpec ./internal/validate:FuzzExpectation ./internal/scheduler:FuzzParse \
	./internal/server:FuzzRequests ./internal/server:FuzzHandlers
FUZZTIME ?= 60s

## fuzz: run each fuzz target for FUZZTIME (default 60s); a failing input is saved under its package's testdata/fuzz
fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; log=$$(mktemp); \
	  if $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg >$$log 2>&1; then \
	    line=$$(grep '^fuzz: elapsed.*execs:' $$log | tail -1); [ -n "$$line" ] || line=$$(grep '^fuzz: elapsed' $$log | tail -1); \
	    echo "$$name ($$pkg): $$(echo "$$line" | sed 's/^fuzz: //; s/ ([0-9]*\/sec)//')"; rm -f $$log; \
	  else cat $$log; rm -f $$log; exit 1; fi; \
	done

lint: generate chart-check
	@if [ -n "$$CI" ]; then git diff --exit-code --stat -- api deploy/crds || { echo "generated files are stale: run make generate and commit"; exit 1; }; fi
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

## cluster-up: start the local cluster in the background (writes .localcluster/kubeconfig)
cluster-up: build tools
	$(BIN)/localcluster up

## demo: start the local cluster, a production database with a snapshot, drillerd, and run one drill
demo: deps build
	test/demo/demo.sh

## cluster-down: stop the local cluster, drillerd and the writer started by the demo, and everything they started
cluster-down:
	@for f in .localcluster/drillerd.pid .localcluster/writer.pid; do \
	  if [ -f $$f ]; then kill $$(cat $$f) 2>/dev/null || true; rm -f $$f; fi; \
	done
	@if [ -x $(BIN)/localcluster ]; then $(BIN)/localcluster down; else $(GO) run ./test/cmd/localcluster down; fi

clean:
	rm -rf $(BIN)

## chart: write charts/drillerd's CRDs and generated templates from deploy/ (build/chart; README: Helm)
.PHONY: chart chart-check
chart:
	$(GO) run ./build/chart

chart-check:
	@$(GO) run ./build/chart -check

## image: drillerd's OCI image without a container engine: bin/image (OCI layout, linux/amd64 and
## linux/arm64) and bin/drillerd-image.tar (docker-archive, linux/amd64); VERSION=v0.1.0 names the
## release (default: git describe); README: Container image
.PHONY: image
image:
	$(GO) run ./build/image $(if $(VERSION),-version $(VERSION)) -out $(BIN)/image -docker-archive $(BIN)/drillerd-image.tar

## generate: deepcopy functions and CRD manifests from api/
generate:
	@test -x $(CONTROLLER_GEN) || GOFLAGS= $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd:allowDangerousTypes=true paths=./api/... output:crd:artifacts:config=deploy/crds
