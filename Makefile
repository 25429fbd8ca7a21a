# halo: build, generate, test. Root is needed for `test`, `demo` and `bench`
# (network namespaces, XDP); `test-unit` runs anywhere.
SHELL := /bin/bash
GO ?= go
export CGO_ENABLED := 0
PKGS := ./...
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build generate test test-unit lint fuzz demo bench clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/halod ./cmd/haloctl

# Rebuilds bpf/*.c into the committed *_bpfel.go / *_bpfel.o (needs clang,
# llvm and libbpf-dev; `go build` itself never does).
generate:
	$(GO) generate ./...

# Everything, including the tests that need root and BPF. Prints go test's
# package lines, every failure, and a closing count.
test:
	@scripts/gotest -timeout 25m $(PKGS)

# Only what needs no privileges.
test-unit:
	@HALO_UNPRIVILEGED=1 scripts/gotest -timeout 10m $(PKGS)

lint:
	@out=$$(gofmt -l cmd pkg tests); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/testkit/packet
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./pkg/config
	$(GO) test -run '^$$' -fuzz '^FuzzIncludes$$' -fuzztime $(FUZZTIME) ./pkg/config

demo:
	$(GO) run ./tests/demo

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x $(PKGS)

clean:
	rm -rf bin test.log
