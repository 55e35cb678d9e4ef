# The two commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: setup test demo bench fmt clippy build fuzz deb

setup:
	@./scripts/setup.sh

build: setup
	$(CARGO) build --locked -p imi-node -p imi-sim

# fmt check (the fuzz targets' workspace too), clippy on all targets with warnings denied,
# then every test. The end-to-end tests in tests/ start real imi-node processes: `cargo test
# --workspace` builds the binary (imi-node has integration tests of its own) with the same
# features as the tests, before any test runs; a separate `cargo build -p imi-node` would
# resolve other features and compile much of the dependency tree a second time.
test: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --all --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --workspace --no-deps -q
	$(CARGO) test --locked --workspace

# The EEA federation on one machine: 31 nodes on loopback live through the 2021 reporting
# year on a simulated clock (a fiftieth of IMI's traffic, through the authorities' API);
# prints the accounting and the Commission's scoreboard beside the 2021 map, then leaves the
# federation running with URLs and users until Ctrl-C (DEMO_ARGS=--exit ends after the
# summary). `imi-sim demo` is the older diagnostics-and-directory tour.
DEMO_ARGS ?=
demo: build
	$(CARGO) run --locked -q -p imi-sim -- run --scenario scoreboard-2021 --scale 0.02 --wall-s 150 --dir data/demo $(DEMO_ARGS)

# The benchmarks (release build): the substrate exchange, the authorities' API, the
# scoreboard over 10 million facts, the transparency log and the directory; see
# BENCHMARKS.md.
bench: setup
	$(CARGO) build --locked --release -p imi-node -p imi-sim
	$(CARGO) run --locked --release -q -p imi-sim -- bench exchange
	$(CARGO) run --locked --release -q -p imi-sim -- bench api
	$(CARGO) run --locked --release -q -p imi-sim -- bench scoreboard
	$(CARGO) run --locked --release -q -p imi-sim -- bench audit
	$(CARGO) run --locked --release -q -p imi-sim -- bench directory

# The Debian package of imi-node (release build): target/deb/imi-node_<version>_<arch>.deb,
# with the systemd unit, /etc/imi-node/node.toml and the catalogue; docs/operations.md.
# The packaging test in `make test` builds the same package from the debug binary.
deb: setup
	$(CARGO) build --locked --release -p imi-node
	./scripts/deb.sh "$${CARGO_TARGET_DIR:-target}/release/imi-node" "$${CARGO_TARGET_DIR:-target}/deb"

fmt:
	$(CARGO) fmt --all
	$(CARGO) fmt --all --manifest-path fuzz/Cargo.toml

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every decoder another node or an API
# client reaches; docs/fuzzing.md. Not part of `make test`. Installs the pinned cargo-fuzz,
# regenerates the seed corpora (fuzz/seeds/, from protocol/vectors/v1.json and the
# repository's fixtures), builds on the stable toolchain (RUSTC_BOOTSTRAP=1 lets stable take
# the sanitizer flags) and runs each target for FUZZ_SECONDS. A crash, a timeout or running
# out of memory fails the run; libFuzzer leaves the input in fuzz/artifacts/<target>/.
# `make fuzz FUZZ_TARGETS=envelope FUZZ_SECONDS=600` runs one target longer.
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= frame batch envelope receipt trust_list case_message one_to_many fact_report checkpoint witness bundle api_bodies
FUZZ_TARGET_DIR ?= $(CURDIR)/fuzz/target
FUZZ_FLAGS := --target-dir $(FUZZ_TARGET_DIR)

fuzz: setup
	@cargo fuzz --version 2>/dev/null | grep -qx 'cargo-fuzz $(CARGO_FUZZ_VERSION)' || \
		$(CARGO) install --locked cargo-fuzz --version $(CARGO_FUZZ_VERSION)
	$(CARGO) run --locked -q --manifest-path fuzz/Cargo.toml --target-dir $(FUZZ_TARGET_DIR) \
		-p imi-fuzz-fixtures --bin imi-fuzz-seeds
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build $(FUZZ_FLAGS)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t && \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s" && \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $(FUZZ_FLAGS) $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=30 -rss_limit_mb=2048 \
			-print_final_stats=1 || exit 1; \
	done
