# otgen front door. Every target installs what it needs first (make setup), so on a fresh Debian 12
MAKEFLAGS += --no-print-directory
# machine `make demo` or `make test` works as the only command typed.
BUILD ?= build
JOBS ?= $(shell nproc)
PY := /usr/bin/python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages for building and testing.
PKGS := cmake g++ make libopenblas-dev liblemon-dev libcli11-dev nlohmann-json3-dev libstb-dev \
        zlib1g-dev libgtest-dev libbenchmark-dev pybind11-dev python3-dev python3-numpy python3-pytest \
        python3-scipy python3-pot python3-sklearn python3-faiss python3-torch dataset-fashion-mnist \
        libtorch-dev
# Extra packages for the comparison benchmarks and plots.
BENCH_PKGS := libfaiss-dev python3-matplotlib

.PHONY: setup setup-bench configure build demo test bench install clean reproduce reproduce-quick

setup:
	@PKGS="$(PKGS)" SUDO="$(SUDO)" sh scripts/install_packages.sh

setup-bench: setup
	@PKGS="$(BENCH_PKGS)" SUDO="$(SUDO)" sh scripts/install_packages.sh

configure: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j$(JOBS)

demo: build
	@BUILD=$(BUILD) bash scripts/demo.sh

test: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	@if [ -d tests/python ] && ls tests/python/test_*.py >/dev/null 2>&1; then \
	  PYTHONPATH=$(BUILD)/python OTGEN_CLI=$(BUILD)/otgen $(PY) -m pytest -q tests/python; fi

bench: setup-bench
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DOTGEN_BUILD_BENCH=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)
	@BUILD=$(BUILD) bash scripts/bench.sh

# The I-FM vs OT-FM vs SD-FM study (docs/study.md): 8 Gaussians and digits, 3 seeds each.
reproduce: build
	@$(BUILD)/otgen study --config examples/study/8gaussians.json --out $(BUILD)/study-8gaussians
	@$(BUILD)/otgen study --config examples/study/digits.json --out $(BUILD)/study-digits

# The same pipeline on a tiny budget (also run by `make test`, as tests/cli_study_test.cpp).
reproduce-quick: build
	@$(BUILD)/otgen study --config examples/study/quick.json --out $(BUILD)/study-quick

clean:
	rm -rf $(BUILD)

# Installs the CLI (/usr/local/bin/otgen) and the Python package for Debian's /usr/bin/python3.
install: build
	@cmake --install $(BUILD)
