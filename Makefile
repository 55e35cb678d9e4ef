# The two commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: setup test demo bench fmt clippy build

setup:
	@./scripts/setup.sh

build: setup
	$(CARGO) build --locked -p imi-node -p imi-sim

# fmt check, clippy on all targets with warnings denied, then every test. The end-to-end
# tests in tests/ start real imi-node processes: `cargo test --workspace` builds the binary
# (imi-node has integration tests of its own) with the same features as the tests, before
# any test runs; a separate `cargo build -p imi-node` would resolve other features and
# compile much of the dependency tree a second time.
test: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --workspace --no-deps -q
	$(CARGO) test --locked --workspace

# A local federation of all 31 nodes on loopback: every node sends diagnostics to every
# other; prints the table of receipts and latencies; stops cleanly.
demo: build
	$(CARGO) run --locked -q -p imi-sim -- demo

# The benchmarks (release build): the substrate exchange, the authorities' API, the
# scoreboard over 10 million facts and the transparency log; see
# BENCHMARKS.md.
bench: setup
	$(CARGO) build --locked --release -p imi-node -p imi-sim
	$(CARGO) run --locked --release -q -p imi-sim -- bench exchange
	$(CARGO) run --locked --release -q -p imi-sim -- bench api
	$(CARGO) run --locked --release -q -p imi-sim -- bench scoreboard
	$(CARGO) run --locked --release -q -p imi-sim -- bench audit

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
