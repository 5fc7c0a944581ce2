# Two commands matter to users: `make demo` and `make test` (see README.md).
# Each area of the project adds its own targets in mk/<area>.mk and the Debian
# packages it needs in scripts/deps.d/<area>.txt.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
BUILD := $(CURDIR)/build
export GOFLAGS ?= -buildvcs=false
# What every binary's --version says.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
CMDS := $(notdir $(wildcard cmd/*))

# build/ holds generated trees (benchmarks copy whole Go releases there); a
# go.mod makes it a separate module so that ./... never walks into it.
$(shell mkdir -p $(BUILD) && test -f $(BUILD)/go.mod || printf 'module ignored\n' > $(BUILD)/go.mod)

# Fragments append to these.
TEST_EXTRA :=
BENCH_TARGETS :=
include $(sort $(wildcard mk/*.mk))

.PHONY: all deps build test gotest bench demo clean fmt vet
all: build

deps:
	scripts/deps.sh

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X laptop.org/upgrade/version.Version=$(VERSION)" -o $(BIN)/ ./cmd/...

vet:
	$(GO) vet ./...

# The Go suites (unit and integration, with the race detector), then the
# suites that need more than `go test` (VM boots, namespaces, ...).
gotest: deps build vet
	UPGRADE_BIN=$(BIN) $(GO) test -race -count=1 -timeout 25m ./...

test: gotest $(TEST_EXTRA)
	@echo "make test: all suites passed"

# The report comes last: it reads every fragment's BENCH lines from the log.
bench: deps build $(BENCH_TARGETS)
	@$(MAKE) --no-print-directory bench-report

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN) $(BUILD)

# The main job end to end on an embedded default (see scripts/demo.sh); it
# installs only what it needs (scripts/deps.d/demo.txt), `make test` the rest.
demo: build
	scripts/deps.sh demo
	scripts/demo.sh
