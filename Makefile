# tq — `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
CARGO ?= cargo
PORT ?= 6379
MODULE := target/release/libtq.so
# The servers `make test` runs the suite on (testkit/src/server_bin.rs).
SERVER ?= redis valkey valkey8

.PHONY: help deps build pgo run test unit lint fmt bench dist clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-8s %s\n", $$1, $$2}'

deps: ## Install redis-server and libclang if missing (apt)
	@scripts/deps.sh

build: deps ## Build the module (target/release/libtq.so) and the tq binary
	$(CARGO) build --release --workspace

pgo: deps ## The module built with profile-guided optimization (target/pgo/libtq.so; what dist and bench use)
	@scripts/pgo.sh

run: build ## Start redis-server with the module on 127.0.0.1:$(PORT), in the foreground
	@echo
	@echo "  tq is loading into redis-server on 127.0.0.1:$(PORT). In another terminal try:"
	@echo "    redis-cli TQ.ENQUEUE resque math add '[1,2]'"
	@echo "    redis-cli TQ.ENQUEUEIN resque 2000 math add '[3,4]'"
	@echo "    redis-cli TQ.PROMOTE resque"
	@echo "    redis-cli TQ.POP resque host:1 math"
	@echo "    redis-cli TQ.ACK resque host:1 1      # the delivery id: 3rd element of the pop reply"
	@echo "    redis-cli TQ.DETAILS resque"
	@echo "    redis-cli INFO tq"
	@echo "  or run jobs with: target/release/tq work --queues math --handlers <dir>"
	@echo "  Ctrl-C stops the server."
	@echo
	redis-server --port $(PORT) --bind 127.0.0.1 --save '' --appendonly no --loadmodule $(CURDIR)/$(MODULE)

test: ## Every test (unit, real servers, node-resque interop, tq web in headless Chromium) on each server: Redis 7.0, Valkey 9.1, Valkey 8.1 (SERVER=redis: one)
	@scripts/deps.sh --node --servers --browser
	$(CARGO) build --workspace
	scripts/test_servers.sh $(SERVER)

unit: ## Only the tests that need no server
	$(CARGO) test -p tq-core

lint: deps ## rustfmt check and clippy (warnings are errors); CI runs it beside `make test`
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

bench: build ## Every benchmark, one table in target/bench/table.md (QUICK=1: a short run)
	scripts/bench_all.sh

dist: deps ## Release tarball in target/dist/: stripped libtq.so and tq, tq.conf, Dockerfile, SHA256SUMS
	scripts/dist.sh

clean: ## Remove build output and test server directories
	$(CARGO) clean
