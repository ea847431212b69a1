# settle: see README.md. Everything runs as root on Debian 12 (CI does).
GO      ?= go
BIN     := bin/settle
E2E_PKG := ./e2e/

.PHONY: all build test unit e2e fuzz bench demo deps sandbox-up sandbox-down clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/settle

deps:
	scripts/install-deps

# The README's test command: unit tests, a short fuzz run of the desired
# loader, then end-to-end tests against real PM2, nginx, PostgreSQL and Redis.
test: unit fuzz e2e

unit:
	$(GO) vet ./...
	$(GO) test -count=1 ./...

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=20s ./desired

e2e: build
	$(GO) test -tags e2e -count=1 -p 1 -timeout 40m $(E2E_PKG)

# Figures the issues ask for: switch latency under load, full rollback time,
# restore against pg_restore by hand, the swap's refusal window.
bench: build
	$(GO) run ./bench/switch
	$(GO) run ./bench/rollback
	$(GO) run ./bench/restore

demo: deps build
	scripts/demo

sandbox-up:
	$(GO) run ./e2e/cmd/sandbox up --dir $(or $(DIR),/tmp/settle-sandbox)

sandbox-down:
	$(GO) run ./e2e/cmd/sandbox down --dir $(or $(DIR),/tmp/settle-sandbox)

clean:
	rm -rf bin
