# halo: build, generate, test. Root is needed for `test`, `demo` and `bench`
# (network namespaces, XDP); `test-unit` runs anywhere.
#
# `make test`, `demo`, `bench` and `test-vm` first run scripts/deps, which
# installs (Debian/Ubuntu, as root) only the packages that target needs and
# are missing, and otherwise says what is missing and stops. Under `make
# test` a test that lacks a tool fails instead of skipping
# (HALO_REQUIRE_TOOLS, read by internal/testkit).
SHELL := /bin/bash
GO ?= go
export CGO_ENABLED := 0
PKGS := ./...
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build generate check-generate deps deps-demo deps-test deps-vm deps-generate deps-race deps-bench \
	test test-unit test-race test-vm lint fuzz demo bench bench-quick mutants clean deb

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/halod ./cmd/haloctl

# Rebuilds bpf/*.c into the committed *_bpfel.go / *_bpfel.o (needs clang,
# llvm and libbpf-dev; `go build` itself never does).
generate:
	$(GO) generate ./...

# CI: the committed objects are what the C sources compile to.
check-generate: deps-generate generate
	@out=$$(git status --porcelain -- '*_bpfel.go' '*_bpfel.o'); if [ -n "$$out" ]; then \
	  echo "make generate changed the committed BPF objects (commit them):"; echo "$$out"; \
	  git diff --stat -- '*_bpfel.go' '*_bpfel.o'; exit 1; fi

# Everything every target needs; the targets below install their own part.
deps:
	@scripts/deps all
deps-demo:
	@scripts/deps demo
deps-test:
	@scripts/deps test
deps-vm:
	@scripts/deps vm
deps-generate:
	@scripts/deps generate
deps-race:
	@scripts/deps race
deps-bench:
	@scripts/deps bench

# Everything, including the tests that need root and BPF. Prints go test's
# package lines, every failure, and a closing count.
test: deps-test
	@if [ "$$(id -u)" != 0 ]; then echo "make test needs root (namespaces, XDP); make test-unit runs without"; exit 1; fi
	@HALO_REQUIRE_TOOLS=1 HALO_UNPRIVILEGED=0 scripts/gotest -timeout 25m $(PKGS)

# The kernel tests inside Debian's current cloud kernel under qemu (TCG):
# IPVS backend, the end-to-end scenario with --dataplane ipvs, and the XDP
# golden tests on an older kernel. Downloads are cached under
# $XDG_CACHE_HOME/halo-vm (default ~/.cache/halo-vm); see docs/ipvs.md.
test-vm: deps-vm
	$(GO) run ./tests/vm/harness

# Only what needs no privileges.
test-unit:
	@HALO_UNPRIVILEGED=1 scripts/gotest -timeout 10m $(PKGS)

# The race detector needs cgo, so only this target builds with it. Tests
# that need root run too when it is root. By default it covers every package
# whose code runs in the test process; the lab suites (tests/e2e, diff, demo,
# vm/scenario) drive halod as a separate binary built without -race, so
# under -race they would only re-check their own drivers at twice the time.
# `make test-race RACE_PKGS=./...` runs everything.
RACE_PKGS ?= $(shell $(GO) list ./... | grep -vE '/tests/(e2e|diff|demo|vm/scenario)$$')
test-race: deps-race
	@CGO_ENABLED=1 HALO_REQUIRE_TOOLS=$$([ "$$(id -u)" = 0 ] && echo 1 || echo 0) \
	  TEST_LOG=test-race.log scripts/gotest -race -timeout 40m $(RACE_PKGS)

# staticcheck is pinned in go.mod (tool directive): `go tool` builds it
# from the module cache, no separate install.
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

# Every fuzz target in the repository (found with `go test -list`), each for
# FUZZTIME. `make test` runs them over their corpus as ordinary tests.
FUZZTIME ?= 30s
fuzz:
	@FUZZTIME=$(FUZZTIME) scripts/fuzz

# The fault scenarios' long version (docs/reliability.md): repeated master
# failovers under TCP and UDP for SOAK (default 10m; SOAK_TIMEOUT bounds
# the whole run), as root.
SOAK ?= 10m
SOAK_TIMEOUT ?= 1h
.PHONY: soak
soak: deps-test
	HALO_SOAK=$(SOAK) HALO_REQUIRE_TOOLS=1 $(GO) test -count=1 -v -timeout $(SOAK_TIMEOUT) -run '^TestFaultSoakFailovers$$' ./tests/e2e/

demo: deps-demo
	$(GO) run ./tests/demo

# cmd/halo-bench: the forwarding scenarios side by side on one lab, the
# microbenchmarks, docs/benchmarks.md and its charts (progress on stderr);
# then every other Go benchmark once. bench-quick runs each scenario briefly
# and writes nothing (TestQuick in pkg/bench does the same under make test).
bench: deps-bench
	$(GO) run ./cmd/halo-bench
	$(GO) test -run '^$$' -bench . -skip '^(BenchmarkGolden|BenchmarkTCPChecks|BenchmarkFailover)$$' -benchtime 1x $(PKGS)

bench-quick: deps-bench
	$(GO) run ./cmd/halo-bench --quick

# As root: plants each bug listed in tests/mutants/mutants.txt in a temporary
# copy of the tree, one at a time, and checks that the tests it names fail;
# the report goes to docs/mutants.md. MUTANTS_ARGS=-full runs every test
# against each mutant (slow); MUTANTS_ARGS='-only NAME' picks mutants.
mutants: deps-test deps-generate
	$(GO) run ./tests/mutants $(MUTANTS_ARGS)

# The Debian package (nfpm as a Go library): binaries, systemd unit, example
# config, /etc/default/halod, man pages generated from the flags. Into dist/.
deb:
	$(GO) run ./packaging/mkdeb -root . -o dist -version $(patsubst v%,%,$(VERSION))

clean:
	rm -rf dist bin test.log test.json test-race.log test-race.json
