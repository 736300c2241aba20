# kafkasender: the one entry point. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(HOME)/.cargo/bin:$(PATH)

# One target triple and one profile for every build (cargo, and later maturin and napi), so
# librdkafka and OpenSSL are compiled once; see .cargo/config.toml.
TARGET := x86_64-unknown-linux-gnu
PROFILE := release
LIB_DIR := target/$(TARGET)/$(PROFILE)
# The Go package links this copy of libkafkasender.a (and its header), as the module shipped by
# make dist-go does; Go does not notice a changed archive, so every `go build -o` here removes its output first.
GO_VENDOR := bindings/go/libkafkasender_vendor
BIN := $(LIB_DIR)/kafkasender
CARGO = $(RUST_ENV) cargo
PYTHON ?= python3
CC ?= cc
C_FLAGS := -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude
C_LIBS := -L$(LIB_DIR) -lkafkasender -lpthread -Wl,-rpath,$(abspath $(LIB_DIR))

# Every Rust build run here (cargo, maturin, napi) compiles its C and links with zig for glibc 2.17
# (scripts/zig/tool): still one build of librdkafka, and every artifact (the .so and .a, the wheel,
# the addon, the Go library, the CLI) runs on any Linux with glibc >= 2.17, i.e. manylinux2014.
ZIGLANG_VERSION := 0.17.1
CARGO_ZIGBUILD_VERSION := 0.24.1
ZIG := .cache/tools/zig/cargo-zigbuild.env
RUST_ENV := $(abspath scripts/zig/env)

# cbindgen, pinned, installed into .cache/tools by `make header` or `make test`.
CBINDGEN_VERSION := 0.29.2
CBINDGEN := .cache/tools/bin/cbindgen
CBINDGEN_TO = $(CBINDGEN) --quiet --config crates/kafkasender-ffi/cbindgen.toml --crate kafkasender-ffi crates/kafkasender-ffi --output

DEMO_COUNT ?= 50000
DEMO_RATE ?= 10000

.DEFAULT_GOAL := help

$(ZIG):
	$(PYTHON) -m venv $(dir $@)
	$(dir $@)bin/pip install --quiet 'ziglang==$(ZIGLANG_VERSION)' 'cargo-zigbuild==$(CARGO_ZIGBUILD_VERSION)'
	echo 'export CARGO_ZIGBUILD_ZIG_VERSION=$(ZIGLANG_VERSION) CARGO_ZIGBUILD_ZIG_COMMAND=$(abspath $(dir $@)bin/python) CARGO_ZIGBUILD_ZIG_COMMAND_ARGS="-m ziglang"' > $@

.PHONY: zig
zig: $(ZIG) ## Install zig and cargo-zigbuild (PyPI) into .cache/tools/zig: every Rust build links through them

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

.PHONY: build
build: $(ZIG) ## Build the core, the C library, the CLI (release profile)
	$(CARGO) build --$(PROFILE) --workspace

.PHONY: demo
demo: build ## Run the demo (embedded mock cluster, or KAFKA_BROKERS when set)
	$(BIN) demo --count $(DEMO_COUNT) --rate $(DEMO_RATE)

.PHONY: test
test: lint test-rust test-header test-api-parity test-c test-dist test-go test-python test-node test-parity examples test-e2e test-demo ## Run every test: lint, Rust, header drift, API parity table, C (plain, valgrind, ASan), the installable artifacts, Go (-race), Python, Node, the parity scenarios in every face, examples, end-to-end on real Kafka, the demo
	@echo "make test: all green"

.PHONY: test-rust
test-rust: $(ZIG) ## Core and CLI tests against the in-process mock cluster
	$(CARGO) test --$(PROFILE) --workspace

$(CBINDGEN): $(ZIG)
	$(CARGO) install --quiet --locked --root .cache/tools cbindgen --version $(CBINDGEN_VERSION)

.PHONY: header
header: $(CBINDGEN) ## Regenerate include/kafkasender.h from crates/kafkasender-ffi
	$(CBINDGEN_TO) include/kafkasender.h

.PHONY: test-parity
# Each face's scenario runner (tests/parity/run.py explains the protocol).
PARITY_RUNNERS = --runner rust="$(abspath $(BIN)) parity-run" --runner c=$(abspath target/parity/c-runner) \
  --runner go=$(abspath target/parity/go-runner) --runner python="$(abspath $(PY)) $(abspath tests/parity/runners/runner.py)" \
  --runner node="node $(abspath tests/parity/runners/runner.js)"
PARITY_RUNNER_BUILDS = build target/parity/go-runner python-install node target/parity/c-runner

test-parity: $(PARITY_RUNNER_BUILDS) ## Every tests/parity scenario through every face (Rust, C, Go, Python, Node): outcomes as expected and alike
	$(PYTHON) tests/parity/run.py $(PARITY_RUNNERS)

target/parity/go-runner: go
	rm -f $@ && cd bindings/go && go build -o ../../target/parity/go-runner ./cmd/kafkasender-parity

target/parity/c-runner: tests/parity/runners/runner.c include/kafkasender.h build
	@mkdir -p target/parity
	$(CC) $(C_FLAGS) -O1 $< -o $@ $(C_LIBS)

.PHONY: test-api-parity
test-api-parity: ## Fail when docs/api-parity.md and the faces' public APIs disagree
	$(PYTHON) tests/parity/check_api.py

.PHONY: test-header
test-header: $(CBINDGEN) ## Fail when the committed header differs from a freshly generated one
	@mkdir -p target/header
	$(CBINDGEN_TO) target/header/kafkasender.h
	@diff -u include/kafkasender.h target/header/kafkasender.h || { echo "include/kafkasender.h is stale: run make header and commit it"; exit 1; }

target/c/test_ffi: tests/c/test_ffi.c include/kafkasender.h build
	@mkdir -p target/c
	$(CC) $(C_FLAGS) -O1 -g tests/c/test_ffi.c -o $@ $(C_LIBS)

target/c/test_ffi_asan: tests/c/test_ffi.c include/kafkasender.h build
	@mkdir -p target/c
	$(CC) $(C_FLAGS) -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer tests/c/test_ffi.c -o $@ $(C_LIBS)

.PHONY: test-c
test-c: target/c/test_ffi target/c/test_ffi_asan ## C API tests: plain, under valgrind, and with ASan/UBSan
	target/c/test_ffi
	KS_TEST_SCALE=0.05 valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1 \
	  --suppressions=tests/c/valgrind.supp target/c/test_ffi
	ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 LSAN_OPTIONS=suppressions=tests/c/lsan.supp UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  target/c/test_ffi_asan

.PHONY: go
go: build ## The Go package's static library: bindings/go/libkafkasender_vendor/ (generated, not committed)
	@mkdir -p $(GO_VENDOR)
	cp include/kafkasender.h $(GO_VENDOR)/
	strip --strip-debug -o $(GO_VENDOR)/libkafkasender_glibc_linux_amd64.a $(LIB_DIR)/libkafkasender.a

.PHONY: test-go
test-go: go ## Go package tests with the race detector
	cd bindings/go && go vet ./... && go test -race -count=1 -v ./...

PREFIX ?= /usr/local
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# The prefix written into the .pc files: PREFIX itself, or (for a tarball) relative to the .pc file.
PC_PREFIX ?= $(abspath $(PREFIX))

.PHONY: install
install: build ## Install libkafkasender.{so,a}, kafkasender.h and kafkasender.pc / kafkasender-static.pc under PREFIX (default /usr/local)
	install -D -m 644 include/kafkasender.h $(PREFIX)/include/kafkasender.h
	install -D -m 755 $(LIB_DIR)/libkafkasender.so $(PREFIX)/lib/libkafkasender.so
	install -D -m 644 $(LIB_DIR)/libkafkasender.a $(PREFIX)/lib/libkafkasender.a
	@mkdir -p $(PREFIX)/lib/pkgconfig
	for pc in kafkasender kafkasender-static; do \
	  sed -e 's|@PREFIX@|$(PC_PREFIX)|' -e 's|@VERSION@|$(VERSION)|' crates/kafkasender-ffi/$$pc.pc.in > $(PREFIX)/lib/pkgconfig/$$pc.pc; done

# Each test-dist-* target runs this after narrowing PATH: the artifact must work without Rust.
NO_RUST_ON_PATH := ! command -v cargo && ! command -v rustc

# What users install without this repository or Rust, for linux x86_64 (glibc >= 2.17): the C
# tarball, the Go module, the Python wheel and sdist, the npm packages.
.PHONY: dist
dist: dist-c dist-go dist-python dist-node ## Every installable artifact in dist/ (C tarball, Go module, wheel and sdist, npm packages)

.PHONY: test-dist
test-dist: test-dist-c test-dist-go test-dist-python test-dist-node ## Each artifact used outside the repository with no cargo or rustc on PATH

# The C tarball: include/, lib/ (.so stripped, .a), lib/pkgconfig/ (relocatable: the prefix is found
# from the .pc file's own place), LICENSE and README.md. kafkasender.pc has Libs.private, so
# `pkg-config --static` with `cc -static` links a fully static program; pkg-config cannot make
# `--static` alone pick the archive over the .so in one directory, so linking libkafkasender
# statically into an otherwise dynamic program has its own module, kafkasender-static.
C_DIST := dist/kafkasender-$(VERSION)-linux-x86_64

.PHONY: dist-c
dist-c: build ## The C tarball in dist/: headers, shared and static library, pkg-config files
	rm -rf $(C_DIST) && $(MAKE) --no-print-directory install PREFIX=$(C_DIST) PC_PREFIX='$$$${pcfiledir}/../..'
	strip --strip-unneeded $(C_DIST)/lib/libkafkasender.so && strip --strip-debug $(C_DIST)/lib/libkafkasender.a
	cp LICENSE README.md $(C_DIST)/
	tar -C dist -czf $(C_DIST).tar.gz $(notdir $(C_DIST))

# Outside the repository, with no cargo or rustc on PATH: a program built from the tarball alone,
# statically (kafkasender-static: no libkafkasender at run time), fully statically (`cc -static`
# with `pkg-config --static`) and dynamically.
.PHONY: test-dist-c
test-dist-c: dist-c ## Build and run tests/dist/send.c against the C tarball alone, static and dynamic
	scratch=$$(mktemp -d) && tar -C $$scratch -xzf $(C_DIST).tar.gz && cp tests/dist/send.c $$scratch/ && cd $$scratch \
	  && export PATH=/usr/local/bin:/usr/bin:/bin PKG_CONFIG_PATH=$$scratch/$(notdir $(C_DIST))/lib/pkgconfig \
	  && $(NO_RUST_ON_PATH) \
	  && $(CC) -std=c99 -Wall -Werror send.c $$(pkg-config --cflags --libs kafkasender-static) -o send-static \
	  && $(CC) -std=c99 -Wall -Werror -static send.c $$(pkg-config --cflags --static --libs kafkasender) \
	       -o send-full-static \
	  && $(CC) -std=c99 -Wall -Werror send.c $$(pkg-config --cflags --libs kafkasender) \
	       -Wl,-rpath,$$(pkg-config --variable=libdir kafkasender) -o send-dynamic \
	  && ./send-static && ./send-full-static && ./send-dynamic \
	  && ! ldd send-static | grep libkafkasender && ! ldd send-full-static \
	  && ldd send-dynamic | grep "$$scratch" >/dev/null \
	  && cd / && rm -rf $$scratch

# The Go module as it is published (its own repository, github.com/kafkasender/kafkasender-go): the
# package without its tests and tools, and the static library it links (libkafkasender_vendor/).
GO_DIST := dist/kafkasender-go

.PHONY: dist-go
dist-go: go ## The Go module in dist/kafkasender-go (and a .tar.gz) with its vendored static library
	rm -rf $(GO_DIST) && mkdir -p $(GO_DIST)
	cp bindings/go/go.mod bindings/go/go.sum bindings/go/shim.c bindings/go/shim.h bindings/go/README.md LICENSE \
	  $(filter-out %_test.go,$(wildcard bindings/go/*.go)) $(GO_DIST)/
	cp -r $(GO_VENDOR) $(GO_DIST)/
	tar -C dist -czf $(GO_DIST)-$(VERSION)-linux-amd64.tar.gz $(notdir $(GO_DIST))

# Outside the repository, with no cargo or rustc on PATH and no network: a program built against
# the module from dist/ (a replace directive stands in for `go get`, and the module's go.sum and
# downloaded dependencies for what `go get` would fetch), statically by default (no
# libkafkasender at run time), and with -tags dynamic against the C tarball's libkafkasender.so.
.PHONY: test-dist-go
test-dist-go: dist-go dist-c ## Build and run tests/dist/go against the Go module alone, static and -tags dynamic
	cd bindings/go && go mod download
	scratch=$$(mktemp -d) && cp -r $(GO_DIST) $$scratch/kafkasender-go && cp -r tests/dist/go $$scratch/app \
	  && cp $(GO_DIST)/go.sum $$scratch/app/ \
	  && tar -C $$scratch -xzf $(C_DIST).tar.gz && cd $$scratch/app \
	  && export PATH=$(dir $(shell command -v go)):/usr/local/bin:/usr/bin:/bin GOFLAGS=-mod=mod GOPROXY=off \
	  && $(NO_RUST_ON_PATH) \
	  && go build -o send-static . && ./send-static && ! ldd send-static | grep libkafkasender \
	  && export PKG_CONFIG_PATH=$$scratch/$(notdir $(C_DIST))/lib/pkgconfig \
	  && CGO_LDFLAGS="-Wl,-rpath,$$(pkg-config --variable=libdir kafkasender)" go build -tags dynamic -o send-dynamic . \
	  && ./send-dynamic && ldd send-dynamic | grep "$$scratch" >/dev/null \
	  && cd / && rm -rf $$scratch

# npm packages in napi-rs's layout: @kafkasender/linux-x64-gnu carries the stripped addon (os, cpu
# and libc set), kafkasender the JavaScript, naming the former in optionalDependencies.
NPM_DIST := dist/npm

.PHONY: dist-node
dist-node: node ## npm tarballs in dist/npm: kafkasender and @kafkasender/linux-x64-gnu (the prebuilt addon)
	rm -rf $(NPM_DIST) && mkdir -p $(NPM_DIST)
	strip --strip-unneeded -o $(NPM_DIST)/addon.node $(NODE_DIR)/kafkasender.linux-x64-gnu.node
	node $(NODE_DIR)/scripts/npm-dist.js $(NPM_DIST) linux-x64-gnu=$(NPM_DIST)/addon.node
	rm $(NPM_DIST)/addon.node

# Outside the repository, with no cargo or rustc on PATH and npm offline: both tarballs installed
# into a new project; the addon must come from the platform package (no install script runs).
.PHONY: test-dist-node
test-dist-node: dist-node ## npm install the two tarballs into a scratch project and send with them
	scratch=$$(mktemp -d) && cp tests/dist/send.js $$scratch/ && cd $$scratch \
	  && export PATH=$(dir $(shell command -v node)):/usr/local/bin:/usr/bin:/bin && $(NO_RUST_ON_PATH) \
	  && npm init -y >/dev/null && npm install --offline --no-audit --no-fund --loglevel=error \
	       $(abspath $(NPM_DIST))/kafkasender-linux-x64-gnu-$(VERSION).tgz $(abspath $(NPM_DIST))/kafkasender-$(VERSION).tgz \
	  && test ! -e node_modules/kafkasender/kafkasender.linux-x64-gnu.node \
	  && test -e node_modules/@kafkasender/linux-x64-gnu/kafkasender.linux-x64-gnu.node \
	  && node send.js && cd / && rm -rf $$scratch

.PHONY: examples
examples: build go ## Build and run the C, C++, Go and Rust examples (C through an install and pkg-config; Python and Node run in test-python and test-node)
	$(MAKE) --no-print-directory install PREFIX=target/install
	@mkdir -p target/examples
	$(CC) -std=c99 -Wall -Wextra -Werror examples/c/producer.c \
	  $$(PKG_CONFIG_PATH=target/install/lib/pkgconfig pkg-config --cflags --libs kafkasender) \
	  -Wl,-rpath,$(abspath target/install/lib) -o target/examples/producer-c
	target/examples/producer-c
	$(CXX) -std=c++17 -Wall -Wextra -Werror -Iinclude examples/cpp/main.cpp -o target/examples/producer-cpp $(C_LIBS)
	target/examples/producer-cpp
	cd examples/go && go run .
	$(CARGO) run --$(PROFILE) --quiet -p kafkasender --example send

# A virtualenv of the project's own for the Python package, its tests and benchmark.
PY_VENV := target/python-venv
MATURIN_VERSION := 1.16.0
AUDITWHEEL_VERSION := 6.8.2
PY := $(PY_VENV)/bin/python

$(PY):
	$(PYTHON) -m venv $(PY_VENV)
	$(PY) -m pip install --quiet --upgrade pip

.PHONY: python
python: $(PY) $(ZIG) ## The Python wheel into target/wheels: abi3 (CPython >= 3.10), manylinux2014 (glibc >= 2.17), stripped
	$(PY) -m pip install --quiet 'maturin==$(MATURIN_VERSION)'
	rm -f target/wheels/*.whl
	$(RUST_ENV) $(PY_VENV)/bin/maturin build --release --strip --compatibility manylinux2014 \
	  -m bindings/python/Cargo.toml --out target/wheels

PY_DIST := dist/python

.PHONY: dist-python
dist-python: python ## The wheel and the sdist in dist/python
	rm -rf $(PY_DIST) && mkdir -p $(PY_DIST) && cp target/wheels/*.whl $(PY_DIST)/
	$(PY_VENV)/bin/maturin sdist -m bindings/python/Cargo.toml --out $(PY_DIST)

# auditwheel names the oldest platform the wheel fits; then, outside the repository, with no cargo
# or rustc on PATH and no index: the wheel alone into a new virtualenv, sending and reading back.
.PHONY: test-dist-python
test-dist-python: dist-python ## Check the wheel with auditwheel, pip install it into a clean venv and send with it
	$(PY) -m pip install --quiet 'auditwheel==$(AUDITWHEEL_VERSION)'
	report=$$($(PY_VENV)/bin/auditwheel show $(PY_DIST)/*.whl) && echo "$$report" \
	  && echo "$$report" | tr -d '\n' | grep '"manylinux_2_17_x86_64"' >/dev/null
	scratch=$$(mktemp -d) && cp tests/dist/send.py $$scratch/ && $(PYTHON) -m venv $$scratch/venv && cd $$scratch \
	  && export PATH=/usr/local/bin:/usr/bin:/bin && $(NO_RUST_ON_PATH) \
	  && venv/bin/pip install --quiet --no-index $(abspath $(PY_DIST))/*.whl && venv/bin/python send.py \
	  && cd / && rm -rf $$scratch

.PHONY: python-install
python-install: $(PY) $(ZIG) ## pip install ./bindings/python into target/python-venv (builds from source)
	$(RUST_ENV) $(PY) -m pip install --quiet ./bindings/python pytest jsonschema prometheus_client opentelemetry-sdk

.PHONY: test-python
test-python: python-install ## Python tests (pytest) on the mock cluster, and the Python example
	$(PY) -m pytest -q -p no:cacheprovider bindings/python/tests
	$(PY) examples/python/send.py

NODE_DIR := bindings/node

# `npm install`, not `npm ci`: ci refuses the lock file over @napi-rs/cli's optional platform packages.
.PHONY: node
node: $(ZIG) ## Build the Node addon and regenerate its native.d.ts with napi-rs
	cd $(NODE_DIR) && npm install --no-audit --no-fund --loglevel=error && $(RUST_ENV) npm run --silent build

.PHONY: test-node
test-node: node ## Node tests (node --test), tsc on a usage file, native.d.ts drift, npm install from another project, the Node example
	@git diff --exit-code -- $(NODE_DIR)/native.d.ts || { echo "$(NODE_DIR)/native.d.ts is stale: run make node and commit it"; exit 1; }
	cd $(NODE_DIR) && npm run --silent typecheck && npm test
	scratch=$$(mktemp -d) && cp examples/node/send.js $$scratch/ && cd $$scratch && npm init -y >/dev/null \
	  && npm install --no-audit --no-fund --loglevel=error $(abspath $(NODE_DIR)) && node send.js && rm -rf $$scratch

target/c/transaction_scenario: tests/c/transaction_scenario.c include/kafkasender.h build
	@mkdir -p target/c
	$(CC) $(C_FLAGS) -O1 tests/c/transaction_scenario.c -o $@ $(C_LIBS)

.PHONY: test-e2e
test-e2e: build go target/c/transaction_scenario ## End-to-end tests against a real Apache Kafka broker (started and stopped here), transactions from every face
	@$(PYTHON) -m pytest --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet pytest
	KAFKASENDER_BIN=$(abspath $(BIN)) $(PYTHON) -m pytest -q tests/e2e

.PHONY: test-demo
test-demo: build ## The demo with a small count; fails unless read-back == sent
	$(BIN) demo --count 5000 --rate 2500

# Benchmarks. The rules every one follows are at the top of crates/kafkasender-cli/src/bench.rs
# (warm, keyed, broker in another process, fresh topic per run, interleaved rounds, ratios within a
# round). Each face's and each peer's program is built as target/bench/NAME and joins a run as
# `--external NAME=target/bench/NAME`. BENCH_ARGS adds options (--rounds 7, --latency-rate 0, …).
BENCH_ARGS ?=
C_CONTENDERS := c-send
GO_CONTENDERS := go-send-async go-send-batch confluent-go
PY_CONTENDERS := py-send py-send-batch py-send-batch-columns confluent-python
NODE_CONTENDERS := node-send node-send-callback node-send-batch kafkajs
JAVA_CONTENDERS := java
FACE_CONTENDERS := $(C_CONTENDERS) $(GO_CONTENDERS) $(PY_CONTENDERS) $(NODE_CONTENDERS)
# The Python peer pinned to librdkafka's 2.12 line (the Go peer's version is in bench/confluent-go/go.mod).
CONFLUENT_PYTHON_VERSION := 2.12.1
comma := ,
externals = $(foreach name,$(1),--external $(name)=target/bench/$(name))
only_with_raw = --only librdkafka,$(subst $(eval) ,$(comma),$(strip $(1)))

.PHONY: bench
bench: build c-contenders ## Benchmark the core (send, send_batch) and C against raw librdkafka: msg/s, p50/p99, RSS
	$(BIN) bench $(call externals,$(C_CONTENDERS)) --json target/bench/core.json $(BENCH_ARGS)

.PHONY: bench-faces
bench-faces: build face-contenders ## The same with every face and its peer: C, Go and confluent-kafka-go, Python and confluent-kafka-python, Node and kafkajs
	$(BIN) bench $(call externals,$(FACE_CONTENDERS)) --json target/bench/faces.json $(BENCH_ARGS)

.PHONY: bench-python
bench-python: build python-contenders ## The Python face against confluent-kafka-python alone
	$(BIN) bench $(call only_with_raw,$(PY_CONTENDERS)) $(call externals,$(PY_CONTENDERS)) --json target/bench/python.json $(BENCH_ARGS)

.PHONY: bench-node
bench-node: build node-contenders ## The Node face against kafkajs alone
	$(BIN) bench $(call only_with_raw,$(NODE_CONTENDERS)) $(call externals,$(NODE_CONTENDERS)) --json target/bench/node.json $(BENCH_ARGS)

.PHONY: bench-all
bench-all: build face-contenders java-contenders ## Every contender on the mock cluster, then with Java's client too on a real Kafka; tables, JSON and charts in docs/benchmarks
	git describe --always --dirty > target/bench/all-commit.txt
	$(BIN) bench $(call externals,$(FACE_CONTENDERS)) --json target/bench/all-mock.json $(BENCH_ARGS)
	trap scripts/kafka/down.sh EXIT; brokers=$$(scripts/kafka/up.sh); \
	  KAFKA_BROKERS=$$brokers $(BIN) bench $(call externals,$(FACE_CONTENDERS) $(JAVA_CONTENDERS)) --json target/bench/all-kafka.json $(BENCH_ARGS)
	$(MAKE) --no-print-directory bench-report

.PHONY: bench-report
bench-report: python-install ## Rewrite docs/benchmarks (tables and charts) from the last make bench-all's JSON
	$(PY) -m pip install --quiet 'matplotlib==$(MATPLOTLIB_VERSION)'
	$(PY) bench/report.py --out docs/benchmarks target/bench/all-mock.json target/bench/all-kafka.json

MATPLOTLIB_VERSION := 3.10.9

.PHONY: face-contenders c-contenders go-contenders python-contenders node-contenders java-contenders
face-contenders: c-contenders go-contenders python-contenders node-contenders

c-contenders: target/bench/c-send
target/bench/c-send: tests/c/bench_ffi.c include/kafkasender.h build
	@mkdir -p target/bench
	$(CC) $(C_FLAGS) -O2 tests/c/bench_ffi.c -o $@ $(C_LIBS)

go-contenders: go
	@mkdir -p target/bench && rm -f target/bench/go-send-async target/bench/confluent-go
	cd bindings/go && go build -o ../../target/bench/go-send-async ./cmd/kafkasender-bench
	cd bench/confluent-go && go build -o ../../target/bench/confluent-go .
	printf '#!/bin/sh\nexec %s --batch "$$@"\n' $(abspath target/bench/go-send-async) > target/bench/go-send-batch
	chmod +x target/bench/go-send-batch

# Wrapper scripts that run bindings/python/bench/contender.py in the project's virtualenv.
python-contenders: python-install
	$(PY) -m pip install --quiet 'confluent-kafka==$(CONFLUENT_PYTHON_VERSION)'
	@mkdir -p target/bench
	@for name in $(PY_CONTENDERS); do \
	  printf '#!/bin/sh\nexec %s %s %s "$$@"\n' $(abspath $(PY)) $(abspath bindings/python/bench/contender.py) $$name > target/bench/$$name; \
	  chmod +x target/bench/$$name; done

# bindings/node/bench/contender.js (kafkajs comes with the package's dev dependencies).
node-contenders: node
	@mkdir -p target/bench
	@for name in $(NODE_CONTENDERS); do \
	  printf '#!/bin/sh\nexec node %s %s "$$@"\n' $(abspath bindings/node/bench/contender.js) $$name > target/bench/$$name; \
	  chmod +x target/bench/$$name; done

# bench/java/Contender.java on the kafka-clients jar that scripts/kafka/fetch.sh brings.
java-contenders:
	scripts/kafka/fetch.sh
	@mkdir -p target/bench target/java
	javac -d target/java -cp '$(abspath .cache/kafka/libs)/*' bench/java/Contender.java
	printf '#!/bin/sh\nexec java -Dlog4j.configuration=file:%s -cp %s:%s Contender "$$@"\n' \
	  $(abspath scripts/kafka/log4j-quiet.properties) $(abspath target/java) '$(abspath .cache/kafka/libs)/*' > target/bench/java
	chmod +x target/bench/java

.PHONY: kafka-up
kafka-up: ## Start a single-node Apache Kafka (KRaft) on 127.0.0.1; prints its address
	scripts/kafka/up.sh

.PHONY: kafka-down
kafka-down: ## Stop that broker and delete its data
	scripts/kafka/down.sh

.PHONY: kafka-cluster-up
kafka-cluster-up: ## Start a 3-node Apache Kafka cluster (RF=3, min.insync.replicas=2, SCRAM and TLS listeners); `scripts/kafka/cluster.sh env` gives its addresses
	scripts/kafka/cluster.sh up

.PHONY: test-cluster
test-cluster: $(PARITY_RUNNER_BUILDS) ## Reliability tests on a real 3-node Kafka cluster (leader loss, two of three brokers down, SASL/TLS, authentication failures in every face), started and stopped here
	@$(PYTHON) -m pytest --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet pytest
	KAFKASENDER_BIN=$(abspath $(BIN)) KS_PARITY_RUNNERS='$(PARITY_RUNNERS)' $(PYTHON) -m pytest -q -s tests/cluster

.PHONY: reliability
reliability: build ## Run every reliability scenario on the 3-node cluster and rewrite the table in docs/reliability.md
	scripts/kafka/cluster.sh up
	KAFKASENDER_BIN=$(abspath $(BIN)) $(PYTHON) tests/cluster/scenarios.py --doc docs/reliability.md
	scripts/kafka/cluster.sh down

.PHONY: kafka-cluster-down
kafka-cluster-down: ## Stop the 3-node cluster and delete its data
	scripts/kafka/cluster.sh down

.PHONY: lint
lint: $(ZIG) ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --$(PROFILE) --workspace --all-targets -- -D warnings

.PHONY: clean
clean: kafka-down ## Remove build output and the broker's data (keeps downloaded jars)
	$(CARGO) clean
