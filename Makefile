# The two commands a newcomer needs:
#   make demo   - builds everything and runs the two-node OVN sandbox demo
#   make test   - unit tests plus integration/e2e tests on real OVS/OVN
# Both install what they need first (Debian packages, Go modules). They
# need root: the sandbox creates network namespaces, veths and OVS bridges.

DEBS := openvswitch-switch ovn-central ovn-host iproute2 iputils-ping ethtool etcd-server isc-dhcp-client
GO   ?= go

# The OVN the sandbox runs (demo, tests, benchmarks): 25.03 is Debian 13's
# OVN 25.03 with OVS 3.5, from a root prepared on first use
# (scripts/ovn-root.sh, about a minute, cached under /var/cache); 23.03 is
# the host's Debian 12 packages. `make test OVN=23.03` runs everything on
# the old one.
OVN      ?= 25.03
OVN_ROOT ?= /var/cache/ovn-overlay/ovn-$(OVN)
export OVN_OVERLAY_OVN      := $(OVN)
export OVN_OVERLAY_OVN_ROOT := $(OVN_ROOT)
# The benchmark measures both releases in one report (OVN first).
BENCH_OVN ?= $(OVN)$(if $(filter 23.03,$(OVN)),,$(comma)23.03)
comma := ,
# CI also runs the e2e suites on the other release: daemons and OVN are
# upgraded at different times, so both must work.
ifeq ($(CI),true)
E2E_ALSO ?= $(filter-out $(OVN),25.03 23.03)
endif
STATICCHECK_VERSION := v0.8.2
BIN  := bin

.PHONY: all bench scale deps build demo demo-keep demo-cleanup test unit lint e2e-tools generate clean kill-loop faults

all: build

# Installs only what is missing, so repeated runs cost a few dpkg look-ups.
deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "==> installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@for r in $(OVN) $(E2E_ALSO); do \
		if [ "$$r" != "23.03" ]; then scripts/ovn-root.sh $$r /var/cache/ovn-overlay/ovn-$$r || exit 1; fi; \
	done
	@echo "==> downloading Go modules"
	@$(GO) mod download
	@cd e2e && $(GO) mod download
	@cd bench && $(GO) mod download

build: deps
	@echo "==> building $(BIN)/"
	@CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/...

demo: build
	@$(BIN)/ovn-overlay-demo --bin $(BIN)

# Leaves the sandbox up until Ctrl-C, with commands to poke at it.
demo-keep: build
	@$(BIN)/ovn-overlay-demo --bin $(BIN) --keep

demo-cleanup:
	@$(GO) run ./cmd/ovn-overlay-demo cleanup

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(GO) vet ./...
	@cd e2e && $(GO) vet ./...
	@cd bench && $(GO) vet ./...
	@echo "==> staticcheck $(STATICCHECK_VERSION)"
	@$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	@cd e2e && $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	@cd bench && $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

unit: deps
	@$(GO) test -count=1 ./daemon/... ./cniplugin/...

# Every package, then the e2e module (real OVS/OVN in network namespaces;
# the Kubernetes suite also builds and runs kube-apiserver, etcd and
# Multus: the first build of kube-apiserver takes ~5 minutes on 2 cores).
# -p 1: the suites each start their own processes and the machines have
# two cores.
test: deps lint e2e-tools
	@echo "==> go test: unit and integration on real OVS/OVN $(OVN)"
	@$(GO) test -count=1 -p 1 -timeout 20m ./...
	@echo "==> fuzzing: config parsing and the socket protocol, ~10 s each (every target's seeds already ran above)"
	@# Budgets are execution counts, not durations: with a duration, Go's
	@# fuzz coordinator (before go1.27, golang/go#75804) can fail the target
	@# with "context deadline exceeded" when a starved worker is mid-input
	@# as the time runs out. The counts are what a 2-core CI machine does
	@# in about 10 s.
	@$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 200000x ./netconf/
	@$(GO) test -run '^$$' -fuzz '^FuzzServeCNI$$' -fuzztime 2500x ./daemon/
	@echo "==> go test: end to end (e2e module), OVN $(OVN)"
	@cd e2e && $(GO) test -count=1 -p 1 -timeout 45m ./...
	@for r in $(E2E_ALSO); do \
		echo "==> go test: end to end (e2e module), OVN $$r"; \
		(cd e2e && OVN_OVERLAY_OVN=$$r OVN_OVERLAY_OVN_ROOT=/var/cache/ovn-overlay/ovn-$$r $(GO) test -count=1 -p 1 -timeout 45m ./...) || exit 1; \
	done
	@echo "==> benchmark smoke run (short mode: every path and output, no timing assertions)"
	@out=$$(mktemp -d) && cd bench && $(GO) run . -short -ovn $(BENCH_OVN) -out $$out && rm -rf $$out

# The benchmark suite: ovn-overlay against the floor and the conventional
# path, in one run on the sandbox. Writes bench/results/{bench.json,
# bench.md,latency-cdf.png}; takes a few minutes.
bench: deps
	@cd bench && $(GO) run . -ovn $(BENCH_OVN) -out results

# The scale runs (docs/performance.md): 1,000 local ports, then the NB
# filled to 20,000 ports of 200 simulated nodes, on every path and every
# release in BENCH_OVN. Writes bench/results/scale.{json,md}; about 15
# minutes per release.
scale: deps
	@cd bench && $(GO) run . -scale -ovn $(BENCH_OVN) -out results

# Builds the real kube-apiserver and Multus the Kubernetes e2e suite runs
# (the suite builds them again, from Go's build cache: this target is here
# so that the long first build shows up in the log as it happens).
e2e-tools: deps
	@echo "==> building kube-apiserver v1.34.2 and Multus v4.3.0 for the e2e suite (first time: ~5-8 minutes on 2 cores)"
	@cd e2e/tools/kube-apiserver && $(GO) build -o ../../../$(BIN)/kube-apiserver -ldflags "-X k8s.io/component-base/version.gitVersion=v1.34.2" k8s.io/kubernetes/cmd/kube-apiserver
	@cd e2e/tools/multus && $(GO) build -o ../../../$(BIN)/multus gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus
	@echo "==> e2e tools ready"

# The attachment kill loop at full length: 20 rounds of 100 concurrent ADDs
# (plus DELs) with the node daemon SIGKILLed mid-burst, kubelet-style
# retries, then the leak/duplicate check (e2e/attachment_test.go).
kill-loop: deps
	@cd e2e && E2E_KILL_ROUNDS=20 $(GO) test -count=1 -p 1 -timeout 90m -run '^TestAttachmentKillLoop$$' -v ./

# The fault-injection suite at full size (e2e/faults): 10 rounds of RAFT
# leader kills (NB and SB alternately) under bursts of 200 ADDs, NB/SB
# outages, a daemon started before the NB, node OVN/OVS restarts; each
# checks from OVN, OVS and the kernel that nothing leaked or was lost. The
# default (short) size runs in `make test`.
faults: deps
	@cd e2e && E2E_FAULT_ROUNDS=10 E2E_FAULT_BURST=200 $(GO) test -count=1 -p 1 -timeout 90m -run 'TestFault' -v ./faults/

# Regenerates the OVSDB models from the newest supported schemas (OVN 25.03's
# root) pruned to the oldest supported ones (the host's 23.03): schemas/README.md.
generate: deps
	@$(GO) run ./schemas/gen -newest /var/cache/ovn-overlay/ovn-25.03 -oldest /

clean:
	rm -rf $(BIN)
