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
        libtorch-dev libplplot-dev plplot-driver-cairo libopenmpi-dev openmpi-bin
# Extra packages for the comparison benchmarks and plots.
BENCH_PKGS := libfaiss-dev python3-matplotlib
# Extra packages for the libFuzzer targets (make fuzz): clang and its fuzzer/sanitizer runtimes.
FUZZ_PKGS := clang libclang-rt-14-dev libomp-14-dev

# The sanitizer build (make test-asan) and the fuzzers (make fuzz): docs/RELIABILITY.md.
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := fuzz_npy fuzz_idx fuzz_csv fuzz_json
# Leak checks everywhere except under mpirun: Open MPI's own allocations (libmpi, libopen-pal, hwloc and
# plugins it unloads) are never freed, so the MPI tests run with detect_leaks=0 (memory errors and UB
# still abort them). PLplot's fontconfig caches are suppressed by name (scripts/lsan.supp).
ASAN_CHECKS := abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:$(ASAN_CHECKS) \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
           LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan.supp:print_suppressions=0

.PHONY: setup setup-bench setup-fuzz configure build demo test test-asan fuzz bench install clean reproduce reproduce-quick

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

# ASan + UBSan over the torch-free library, the CLI without train/sample, and every test that does not
# link LibTorch (the flow* tests and the Python module are left out: LibTorch is not instrumented).
test-asan: setup
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOTGEN_SANITIZE=ON -DOTGEN_WITH_FLOW=OFF \
	  -DOTGEN_BUILD_PYTHON=OFF $(CMAKE_ARGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)
	@cd $(ASAN_BUILD) && $(SAN_ENV) ctest --output-on-failure -j$(JOBS) -LE mpi
	@cd $(ASAN_BUILD) && $(SAN_ENV) ASAN_OPTIONS=detect_leaks=0:$(ASAN_CHECKS) ctest --output-on-failure -L mpi

setup-fuzz: setup
	@PKGS="$(FUZZ_PKGS)" SUDO="$(SUDO)" sh scripts/install_packages.sh

# Each libFuzzer target for FUZZ_SECONDS (default 300), one after the other, from its seed corpus in
# fuzz/corpus/<target>/ (new inputs go to $(FUZZ_BUILD)/corpus/, crashes to $(FUZZ_BUILD)/crashes/).
fuzz: setup-fuzz
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_CXX_COMPILER=clang++ -DOTGEN_BUILD_FUZZ=ON -DOTGEN_WITH_FLOW=OFF -DOTGEN_BUILD_TESTS=OFF \
	  -DOTGEN_BUILD_PYTHON=OFF $(CMAKE_ARGS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS) --target $(FUZZ_TARGETS)
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh $(FUZZ_TARGETS)

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
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

# Installs the CLI (/usr/local/bin/otgen) and the Python package for Debian's /usr/bin/python3.
install: build
	@cmake --install $(BUILD)
