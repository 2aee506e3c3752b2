# gran: two commands on a fresh machine.
#   make demo   trains GRAN on the built-in MNIST digits with the `gran` tool, writes pictures to out/
#   make test   runs every test
# Each installs what it needs: libtorch 2.11.0 from PyPI into a project-local .venv (and, for
# the install test, cmake from PyPI into the same .venv).
#
# Targets
#   setup          the .venv with libtorch
#   build          libgran (target/release/libgran.so), the `gran` tool and the examples
#   cli            the `gran` command-line tool (target/release/gran)
#   demo           the demo, as a user types it: `gran train`, `sample`, `steps`, `gam` (in $(OUT)/)
#   demo-c         the same job as a C program linked against libgran (examples/demo.c)
#   bench          gran against the PyTorch reference (BENCH_ARGS, default --quick)
#   bench-rust     criterion benchmarks of the Rust side (C-boundary cost, sampling, training)
#   colour-data    data/colour32 and data/colour64: 32x32x3 and 64x64x3 crops of the CC0 /
#                  public-domain photographs in the scikit-image wheel (PyPI), in CIFAR-10's
#                  record layout (examples/colour_patches.rs)
#   experiment     docs/RESULTS.md's MNIST tables (EXPERIMENT_ARGS)
#   test           test-rust, check-symbols, test-c, test-runtime, test-bindings, test-install,
#                  gpu-check-dry
#   test-rust      cargo test --release over the workspace (libgran; gran-common, the runtime and
#                  the headers' check)
#   test-c         the C tests (tests/c) under AddressSanitizer + UBSan, examples/demo.c on a
#                  tiny model, and the header compiled as C (c99/c11/c17) and C++ (c++11 .. c++20)
#   check-symbols  libgran.so exports gran_* symbols only, exactly those of include/gran.h
#   test-bindings  bash bindings/test.sh (the C++ and Python bindings), when it exists
#   test-install   install into a temporary PREFIX; build tests/consumer with pkg-config and
#                  with CMake; run both without LD_LIBRARY_PATH
#   gpu-check      target/gpu: what a GPU machine needs to check gran in one call (stripped
#                  library, device tests, C tests, examples; under 64 MiB), run there by
#                  gpu/check.sh (DEVELOPERS.md, "On a GPU")
#   gpu-check-dry  gpu/check.sh here, on the CPU, with a small budget (GPU_DRY_BUDGET seconds),
#                  the stages of GPU_DRY_STAGES
#   header         regenerate include/gran.h and include/gran_runtime.h (cbindgen)
#   runtime        libgran_runtime (target/release/libgran_runtime.so and .a): sampling without
#                  libtorch (runtime/), built stripped with LTO (the `ship` profile)
#   wasm           the runtime for WebAssembly (target/wasm/gran_runtime.wasm); installs the
#                  wasm32-unknown-unknown target with rustup when it is missing
#   runtime-demo   examples/runtime_demo.c linked against libgran_runtime only: a PNG grid
#   test-runtime   the runtime's C test under ASan/UBSan, its exported symbols, runtime_demo (no
#                  libtorch in its ldd), and the WebAssembly module in Node (when wasm builds)
#   wheel          a wheel of the Python binding with libgran_runtime inside (target/wheels)
#   web-check      examples/web in headless Chromium (Debian's package, installed when missing):
#                  a screenshot in docs/img/web_runtime.png
#   install        PREFIX=/usr/local (and DESTDIR=) : bin/gran, lib/libgran.so.$(VERSION) with its
#                  links, include/gran.h (and gran.hpp), lib/pkgconfig/gran.pc,
#                  lib/cmake/gran/granConfig*.cmake (imported target gran::gran); the runtime:
#                  lib/libgran_runtime.so.$(VERSION) (links, .a), include/gran_runtime.h,
#                  lib/pkgconfig/gran-runtime.pc
#   clean          cargo clean, and $(OUT)

TORCH_VERSION := 2.11.0
CMAKE_VERSION := 3.31.10
PYTHON        ?= python3
VENV          := $(CURDIR)/.venv
TORCH_STAMP   := $(VENV)/.torch-$(TORCH_VERSION)
CMAKE_STAMP   := $(VENV)/.cmake-$(CMAKE_VERSION)
# Gloo's headers (the torch wheel has c10d's, which include them, but not gloo's): Debian's
# libgloo-dev unpacked into the venv, never installed system-wide. build.rs compiles the
# process-group shim (csrc/dist.cpp) against them; the code itself is libtorch_cpu's.
GLOO_DEB      := libgloo-dev
GLOO_STAMP    := $(VENV)/.gloo-headers
# CUDA's CCCL headers (nv/target), which c10d's NCCL header needs and the torch wheel's nvidia
# wheels lack: from PyPI, the version of the wheel's CUDA runtime (headers only).
CCCL_VERSION  := 13.0.85
CCCL_STAMP    := $(VENV)/.cccl-$(CCCL_VERSION)
# What every build needs.
DEPS          := $(TORCH_STAMP) $(GLOO_STAMP) $(CCCL_STAMP)
CMAKE         := $(VENV)/bin/cmake
CARGO         ?= cargo
OUT           ?= out
PREFIX        ?= /usr/local
DESTDIR       ?=

# gcc and g++ unless CC / CXX are given (make's built-in default `cc` is not the tested one).
ifeq ($(origin CC),default)
CC := gcc
endif
ifeq ($(origin CXX),default)
CXX := g++
endif

# Where pip put libtorch (include/ and lib/): found without importing torch (seconds faster and
# no warnings), evaluated once, and only when a recipe needs it (after the venv exists).
LIBTORCH = $(eval LIBTORCH := $(shell $(VENV)/bin/python -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("torch").origin))'))$(LIBTORCH)
CARGO_ENV = LIBTORCH=$(LIBTORCH) LIBTORCH_CXX11_ABI=1 GRAN_REQUIRE_GLOO=1

LIB     := target/release/libgran.so
VERSION := $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n1)
# The soname build.rs gives the library (libgran.so.<SOMAJOR>), read from the built file.
SONAME  = $(shell readelf -d $(LIB) 2>/dev/null | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
SOMAJOR = $(patsubst libgran.so.%,%,$(SONAME))
# The folder of the libtorch that the library's RUNPATH names: where it finds libtorch at run time.
LIB_RUNPATH = $(shell readelf -d $(LIB) 2>/dev/null | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
ABI_VERSION = $(shell sed -n 's/^\#define GRAN_ABI_VERSION \([0-9]*\).*/\1/p' include/gran.h)

.PHONY: all setup build lib cli demo demo-ddp demo-c bench bench-rust colour-data experiment test test-rust test-c check-header check-symbols test-bindings \
        test-install install header clean gpu-check gpu-check-dry runtime wasm runtime-demo test-runtime wheel web-check

all: build

setup: $(DEPS)

$(TORCH_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check torch==$(TORCH_VERSION)
	touch $@

$(GLOO_STAMP): $(TORCH_STAMP)
	rm -rf $(VENV)/gloo && mkdir -p $(VENV)/gloo
	cd $(VENV)/gloo && { apt-get download $(GLOO_DEB) 2>/dev/null || { apt-get update -qq && apt-get download $(GLOO_DEB); }; } \
	    || { echo "setup: Debian's $(GLOO_DEB) could not be downloaded (apt-get download); on another system put gloo's headers in $(VENV)/gloo/usr/include"; exit 1; }
	dpkg -x $(VENV)/gloo/$(GLOO_DEB)_*.deb $(VENV)/gloo && test -f $(VENV)/gloo/usr/include/gloo/config.h
	touch $@

# cmake for test-install only, from PyPI into the project venv.
$(CCCL_STAMP): $(TORCH_STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps nvidia-cuda-cccl==$(CCCL_VERSION)
	touch $@

$(CMAKE_STAMP): $(TORCH_STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check cmake==$(CMAKE_VERSION)
	touch $@

# The soname link beside the library, so that programs linked with -Ltarget/release -lgran
# (which record libgran.so.<major>) find it at run time through their rpath.
define soname_link
	@soname="$$(readelf -d $(LIB) | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"; \
	if [ -n "$$soname" ] && [ "$$soname" != libgran.so ]; then ln -sfn libgran.so target/release/$$soname; fi
endef

build: $(DEPS)
	$(CARGO_ENV) $(CARGO) build --release --lib --bins --examples
	$(soname_link)

# The library alone (what the C tests, the symbol check and the install need).
lib: $(DEPS)
	$(CARGO_ENV) $(CARGO) build --release --lib
	$(soname_link)

# The command-line tool (src/bin/gran): the Rust core, linked like the library (build.rs).
GRAN_BIN := target/release/gran
cli: $(DEPS)
	$(CARGO_ENV) $(CARGO) build --release --bin gran

# The main job, as a user types it: train GRAN (T = 3) and the single-step baseline (T = 1) on
# the built-in digits, draw samples and the step-by-step picture, compare the two with GAM.
# DEMO_ARGS go to both `gran train` commands (e.g. DEMO_ARGS="--iterations 4000 --seed 2").
DEMO_ARGS ?=
DEMO_TRAIN = $(GRAN_BIN) train --data data/mnist10k --width-scale 0.25 --iterations 2000 --seed 1 \
    --report-every 250
demo: cli
	@mkdir -p $(OUT)
	$(DEMO_TRAIN) -T 3 -o $(OUT)/gran_t3.safetensors $(DEMO_ARGS)
	$(GRAN_BIN) sample $(OUT)/gran_t3.safetensors -o $(OUT)/samples_t3.png --count 64 --seed 1
	$(GRAN_BIN) steps $(OUT)/gran_t3.safetensors -o $(OUT)/steps_t3.png --count 8 --seed 1
	$(DEMO_TRAIN) -T 1 -o $(OUT)/gran_t1.safetensors $(DEMO_ARGS)
	$(GRAN_BIN) sample $(OUT)/gran_t1.safetensors -o $(OUT)/samples_t1.png --count 64 --seed 1
	$(GRAN_BIN) gam $(OUT)/gran_t3.safetensors $(OUT)/gran_t1.safetensors --data data/mnist10k --seed 1

# The demo's T = 3 job data-parallel: 2 processes on this machine (torchrun from the venv's torch;
# c10d's Gloo over 127.0.0.1), each taking half of every batch of 64 with one libtorch thread.
# For N GPUs: torchrun --no-python --nproc-per-node=N bin/gran train --distributed --device cuda ...
DDP_PROCS ?= 2
DDP_PORT  ?= 29517
demo-ddp: cli
	@mkdir -p $(OUT)
	OMP_NUM_THREADS=1 $(VENV)/bin/torchrun --no-python --nproc-per-node=$(DDP_PROCS) --master-port=$(DDP_PORT) \
	    $(DEMO_TRAIN) --distributed -T 3 -o $(OUT)/ddp_t3.safetensors $(DEMO_ARGS)
	$(GRAN_BIN) sample $(OUT)/ddp_t3.safetensors -o $(OUT)/ddp_samples_t3.png --count 64 --seed 1
	$(GRAN_BIN) steps $(OUT)/ddp_t3.safetensors -o $(OUT)/ddp_steps_t3.png --count 8 --seed 1
	$(GRAN_BIN) eval $(OUT)/ddp_t3.safetensors --data data/mnist10k

# The same job as a C program (examples/demo.c), compiled and linked against libgran like any
# user's program.
DEMO_BIN := target/release/gran-demo
DEMO_C_ARGS ?=

demo-c: lib
	$(CC) -std=c99 -O2 -Wall -Wextra -Werror -pedantic -Iinclude examples/demo.c -o $(DEMO_BIN) \
	    -Ltarget/release -lgran -Wl,-rpath,$(CURDIR)/target/release
	$(DEMO_BIN) --data data/mnist10k --out $(OUT) $(DEMO_C_ARGS)

test: test-rust check-symbols test-c test-runtime test-bindings test-install gpu-check-dry
	@echo "make test: 7 passed, 0 failed"  # suites: rust, symbols, C, runtime, bindings, install, GPU check (dry run)

# Side by side with the PyTorch reference of the same model (bench/): medians and ratios.
BENCH_ARGS ?= --quick
bench: build
	$(VENV)/bin/python bench/compare.py $(BENCH_ARGS)

SKIMAGE_VERSION := 0.26.0
COLOUR_PHOTOS   := astronaut.png chelsea.png coffee.png hubble_deep_field.jpg retina.jpg rocket.jpg

colour-data: data/colour32/test_batch.bin data/colour64/test.npy

data/colour64/test.npy: data/colour32/test_batch.bin
	$(CARGO_ENV) $(CARGO) run --release --example colour_patches -- target/colour-src data/colour64 64

data/colour32/test_batch.bin: examples/colour_patches.rs $(DEPS)
	rm -rf target/colour-src && mkdir -p target/colour-src
	$(VENV)/bin/pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
	    -d target/colour-src scikit-image==$(SKIMAGE_VERSION)
	cd target/colour-src && $(VENV)/bin/python -c 'import glob, sys, zipfile; \
	    z = zipfile.ZipFile(glob.glob("scikit_image-*.whl")[0]); \
	    [open(n, "wb").write(z.read("skimage/data/" + n)) for n in sys.argv[1:]]' $(COLOUR_PHOTOS)
	$(CARGO_ENV) $(CARGO) run --release --example colour_patches -- target/colour-src data/colour32

EXPERIMENT_ARGS ?= --iterations 2000 --width-scale 0.25 --seeds 1,2,3
experiment: $(DEPS)
	$(CARGO_ENV) $(CARGO) run --release --example experiment -- $(EXPERIMENT_ARGS)

bench-rust: $(DEPS)
	$(CARGO_ENV) $(CARGO) bench --features bench --bench gran

# One libtorch thread per test: cargo runs the tests in parallel, and libgomp's spinning
# workers make oversubscribed runs many times slower.
# Two cargo runs, not one over the workspace: cargo unifies the features of shared dependencies
# over the packages of one run, and a workspace-wide run would give libgran's dependencies other
# features than `make lib` and gpu/build.sh give them: a second build of the library, whose
# libgran.so (a cdylib's file name has no hash) each build would then overwrite in turn.
test-rust: $(DEPS) runtime
	OMP_NUM_THREADS=1 $(CARGO_ENV) $(CARGO) test --release -p gran
	$(CARGO) test --release -p gran-common -p gran-runtime -p gran-header

header: $(DEPS)
	GRAN_BLESS=1 $(CARGO) test --release -p gran-header

# ---------------------------------------------------------------------------------------------
# libgran_runtime (runtime/): pure Rust, no libtorch. Built with the `ship` profile (stripped,
# LTO) and copied beside libgran in target/release, with its soname link.

RUNTIME_LIB := target/release/libgran_runtime.so
WASM_DIR    := target/wasm
WASM        := $(WASM_DIR)/gran_runtime.wasm

runtime:
	$(CARGO) build --profile ship -p gran-runtime
	@mkdir -p target/release
	cp target/ship/libgran_runtime.so target/ship/libgran_runtime.a target/release/
	ln -sfn libgran_runtime.so target/release/libgran_runtime.so.0

# rustup installs the target when this toolchain lacks it; without rustup (or offline) the
# target fails with the reason, and test-runtime leaves the WebAssembly checks out.
wasm:
	@rustc --print target-libdir --target wasm32-unknown-unknown >/dev/null 2>&1 && \
	    [ -d "$$(rustc --print target-libdir --target wasm32-unknown-unknown)" ] && \
	    ls "$$(rustc --print target-libdir --target wasm32-unknown-unknown)" | grep -q libstd \
	    || rustup target add wasm32-unknown-unknown
	$(CARGO) build --profile ship -p gran-runtime --target wasm32-unknown-unknown
	@mkdir -p $(WASM_DIR)
	cp target/wasm32-unknown-unknown/ship/gran_runtime.wasm $(WASM)

RUNTIME_DEMO := target/release/runtime_demo
runtime-demo: runtime
	$(CC) -std=c99 -O2 -Wall -Wextra -Werror -pedantic -Iinclude examples/runtime_demo.c -o $(RUNTIME_DEMO) \
	    -Ltarget/release -lgran_runtime -Wl,-rpath,$(CURDIR)/target/release
	$(RUNTIME_DEMO) runtime/tests/data/tiny_t3_bf16.safetensors $(OUT)/runtime_demo.png

# The runtime's exports are gran_* only, exactly the functions of include/gran_runtime.h.
check-runtime-symbols: runtime
	@nm -D --defined-only $(RUNTIME_LIB) | awk '{print $$NF}' | sed 's/@.*//' | LC_ALL=C sort -u > target/runtime-symbols.exported
	@sed -n 's/^[A-Za-z][A-Za-z0-9_ ]*[ *]\(gran_[a-z0-9_]*\)(.*/\1/p' include/gran_runtime.h | LC_ALL=C sort -u > target/runtime-symbols.declared
	@grep -vxE '$(LINKER_SYMBOLS)' target/runtime-symbols.exported > target/runtime-symbols.ours || true
	@if ! diff target/runtime-symbols.ours target/runtime-symbols.declared > target/runtime-symbols.diff; then \
	    echo "check-runtime-symbols: $(RUNTIME_LIB) exports differ from include/gran_runtime.h ('<' exported only, '>' declared only):"; \
	    sed 's/^/    /' target/runtime-symbols.diff; exit 1; fi
	@echo "check-runtime-symbols: $$(wc -l < target/runtime-symbols.declared) gran_ functions exported, nothing else"

test-runtime: runtime check-runtime-symbols
	RUNTIME_LIB=$(RUNTIME_LIB) CC="$(CC)" CXX="$(CXX)" SANITIZE="$(SANITIZE)" bash tests/runtime/test.sh
	@if ! command -v node >/dev/null; then echo "test-runtime: node is not installed: WebAssembly checks skipped"; \
	elif $(MAKE) --no-print-directory wasm; then bash bindings/js/check.sh $(WASM); \
	else echo "test-runtime: the wasm32-unknown-unknown target is not available here: WebAssembly checks skipped"; fi

wheel: runtime
	$(PYTHON) bindings/python/build_wheel.py --library $(RUNTIME_LIB) --out target/wheels

web-check: wasm
	bash examples/web/check.sh $(WASM) docs/img/web_runtime.png

# ---------------------------------------------------------------------------------------------
# C tests

CTEST_DIR := target/ctest
SANITIZE  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CTEST_CFLAGS   := -std=c99 -Wall -Wextra -Werror -pedantic $(SANITIZE) -g -Iinclude -Itests/c -pthread
CTEST_CXXFLAGS := -std=c++17 -Wall -Wextra -Werror -pedantic $(SANITIZE) -g -Iinclude -pthread
CTEST_LDFLAGS  := -Ltarget/release -lgran -Wl,-rpath,$(CURDIR)/target/release -pthread -lm
CTESTS := test_api test_threads test_metrics test_cpp

# The sanitizers' run-time settings, all documented in tests/c/README.md:
#  - detect_leaks=1: LeakSanitizer on (the default on x86_64 Linux; explicit here), with the
#    suppressions of tests/c/lsan.supp (libtorch's static initialisation and the CUDA libraries
#    only, nothing that gran's own allocations pass through); print_suppressions=1 lists any
#    that were used.
#  - detect_stack_use_after_return=1, check_initialization_order=1, strict_string_checks=1:
#    stricter than the defaults, for the test programs' own code.
#  - UBSan: a stack trace, and the first error ends the run (also -fno-sanitize-recover).
#  - OMP_NUM_THREADS=1: libgomp's spinning worker threads make each training step about 10 times
#    slower under ASan on a 2-core machine; the tests bring their own threads.
CTEST_ENV := ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1 \
             LSAN_OPTIONS=suppressions=$(CURDIR)/tests/c/lsan.supp:print_suppressions=1 \
             UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
             OMP_NUM_THREADS=1

# Every program runs even when one fails; then the header check; the target fails if any did.
test-c: lib
	@mkdir -p $(CTEST_DIR)
	$(CC) $(CTEST_CFLAGS) tests/c/test_api.c -o $(CTEST_DIR)/test_api $(CTEST_LDFLAGS)
	$(CC) $(CTEST_CFLAGS) tests/c/test_threads.c -o $(CTEST_DIR)/test_threads $(CTEST_LDFLAGS)
	$(CC) $(CTEST_CFLAGS) tests/c/test_metrics.c -o $(CTEST_DIR)/test_metrics $(CTEST_LDFLAGS)
	$(CXX) $(CTEST_CXXFLAGS) tests/c/test_cpp.cpp -o $(CTEST_DIR)/test_cpp $(CTEST_LDFLAGS)
	$(CC) $(CTEST_CFLAGS) examples/demo.c -o $(CTEST_DIR)/demo $(CTEST_LDFLAGS)
	@start=$$(date +%s); failed=""; for t in $(CTESTS); do \
	    echo "== $$t (AddressSanitizer, UBSan)"; \
	    $(CTEST_ENV) $(CTEST_DIR)/$$t || failed="$$failed $$t"; \
	done; \
	echo "== examples/demo.c on a tiny model (AddressSanitizer, UBSan)"; \
	rm -rf $(CTEST_DIR)/demo-out; \
	if $(CTEST_ENV) $(CTEST_DIR)/demo --out $(CTEST_DIR)/demo-out --iterations 2 --width-scale 0.0625 \
	        > $(CTEST_DIR)/demo.log 2>&1 \
	    && for f in gran_t3.safetensors gran_t1.safetensors samples_t3.png samples_t1.png steps_t3.png; do \
	        [ -s $(CTEST_DIR)/demo-out/$$f ] || { echo "demo: no $$f"; exit 1; }; done \
	    && grep -q "verdict:" $(CTEST_DIR)/demo.log; \
	then echo "demo: ok"; else cat $(CTEST_DIR)/demo.log; failed="$$failed demo"; fi; \
	$(MAKE) --no-print-directory check-header || failed="$$failed check-header"; \
	if [ -n "$$failed" ]; then echo "test-c: FAILED:$$failed"; exit 1; fi; \
	echo "test-c: all C tests passed in $$(( $$(date +%s) - start )) s"

# include/gran.h on its own, as C and as C++, with warnings that users' builds commonly enable.
HEADER_CWARN   := -Wall -Wextra -Werror -pedantic -Wstrict-prototypes -Wredundant-decls -Wshadow
HEADER_CXXWARN := -Wall -Wextra -Werror -pedantic -Wredundant-decls -Wshadow -Wold-style-cast
check-header:
	@mkdir -p target; status=0; \
	for std in c99 c11 c17 c++11 c++14 c++17 c++20; do \
	    case $$std in c++*) cc="$(CXX) -x c++ $(HEADER_CXXWARN)";; *) cc="$(CC) -x c $(HEADER_CWARN)";; esac; \
	    if ! echo '#include "gran.h"' | $$cc -std=$$std -Iinclude -fsyntax-only - > target/check-header.log 2>&1; then \
	        echo "check-header: include/gran.h fails as $$std ($$(grep -c 'error:' target/check-header.log) errors; the first ones:)"; \
	        grep 'error:' target/check-header.log | head -n 5 | sed 's/^/    /'; status=1; \
	    fi; \
	done; \
	if [ $$status -eq 0 ]; then echo "check-header: include/gran.h compiles as C99/C11/C17 and C++11/14/17/20"; fi; \
	exit $$status

# ---------------------------------------------------------------------------------------------
# Exported symbols: only gran_*, and exactly the functions include/gran.h declares.

LINKER_SYMBOLS := _init|_fini|_edata|_end|__bss_start
check-symbols: lib
	@nm -D --defined-only $(LIB) | awk '{print $$NF}' | sed 's/@.*//' | LC_ALL=C sort -u > target/symbols.exported
	@sed -n 's/^[A-Za-z][A-Za-z0-9_ ]*[ *]\(gran_[a-z0-9_]*\)(.*/\1/p' include/gran.h | LC_ALL=C sort -u > target/symbols.declared
	@bad="$$(grep -v '^gran_' target/symbols.exported | grep -vxE '$(LINKER_SYMBOLS)' || true)"; \
	undeclared="$$(grep '^gran_' target/symbols.exported | LC_ALL=C comm -23 - target/symbols.declared)"; \
	missing="$$(grep '^gran_' target/symbols.exported | LC_ALL=C comm -13 - target/symbols.declared)"; \
	status=0; \
	if [ -n "$$bad" ]; then echo "check-symbols: $(LIB) exports symbols without the gran_ prefix:"; echo "$$bad" | sed 's/^/    /'; status=1; fi; \
	if [ -n "$$undeclared" ]; then echo "check-symbols: exported but not declared in include/gran.h (make header?):"; echo "$$undeclared" | sed 's/^/    /'; status=1; fi; \
	if [ -n "$$missing" ]; then echo "check-symbols: declared in include/gran.h but not exported:"; echo "$$missing" | sed 's/^/    /'; status=1; fi; \
	if [ $$status -eq 0 ]; then echo "check-symbols: $$(wc -l < target/symbols.declared) gran_ functions exported, nothing else"; fi; \
	exit $$status

# ---------------------------------------------------------------------------------------------
# Bindings (bindings/test.sh is written alongside bindings/cpp and bindings/python)

test-bindings: lib
	@if [ -f bindings/test.sh ]; then \
	    $(CARGO_ENV) PYTHON=$(VENV)/bin/python CXX=$(CXX) bash bindings/test.sh; \
	else \
	    echo "test-bindings: bindings/test.sh not present: nothing to test"; \
	fi

# ---------------------------------------------------------------------------------------------
# The GPU machine (DEVELOPERS.md, "On a GPU"): it has PyTorch but no cargo or compiler. gpu-check
# builds everything gpu/check.sh runs there into $(GPU_DIR) (stripped; it fails over 64 MiB, the
# most a call may carry); gpu-check-dry runs gpu/check.sh here on the CPU with a small budget, so
# that the pipeline is known to work before a GPU is lent.

GPU_DIR        := target/gpu
GPU_DRY_BUDGET ?= 420

gpu-check: $(DEPS)
	@start=$$(date +%s); \
	$(CARGO_ENV) CARGO="$(CARGO)" GPU_CC="$(CC)" GPU_CXX="$(CXX)" PYTHON=$(VENV)/bin/python bash gpu/build.sh $(GPU_DIR) \
	    && echo "gpu-check: took $$(( $$(date +%s) - start )) s; on the GPU machine (carry $(GPU_DIR)): bash gpu/check.sh"

# Every stage but the bfloat16 twins of bench-fp32 and compile-fp32 (the same code with another
# --precision; on a GPU they run).
GPU_DRY_STAGES ?= device|rust-tests|c-tests|bench-fp32|compile-fp32|cuda-graphs|recompute|stream|conditional|upsampling|augment|mnist|small-sets
gpu-check-dry: gpu-check
	PYTHON=$(VENV)/bin/python bash gpu/check.sh --device cpu --budget $(GPU_DRY_BUDGET) --stages '$(GPU_DRY_STAGES)' \
	    --out target/gpu-dry

# ---------------------------------------------------------------------------------------------
# Installation. Nothing of libtorch is copied: the library keeps its absolute RUNPATH to the
# libtorch it was built against (the .venv of this checkout), which must stay where it is.

install: lib cli runtime
	@[ -n "$(VERSION)" ] || { echo "install: no version in Cargo.toml"; exit 1; }
	@[ -n "$(SOMAJOR)" ] && [ "$(SONAME)" = "libgran.so.$(SOMAJOR)" ] \
	    || { echo "install: $(LIB) has soname '$(SONAME)', expected libgran.so.<major>"; exit 1; }
	@case "$(LIB_RUNPATH)" in /*) ;; *) echo "install: $(LIB) has no absolute RUNPATH to libtorch ('$(LIB_RUNPATH)')"; exit 1;; esac
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/lib/cmake/gran
	install -m 0755 $(GRAN_BIN) $(DESTDIR)$(PREFIX)/bin/gran
	install -m 0755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libgran.so.$(VERSION)
	ln -sfn libgran.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sfn $(SONAME) $(DESTDIR)$(PREFIX)/lib/libgran.so
	install -m 0644 include/gran.h $(DESTDIR)$(PREFIX)/include/gran.h
	@if [ -f bindings/cpp/gran.hpp ]; then \
	    echo "install -m 0644 bindings/cpp/gran.hpp $(DESTDIR)$(PREFIX)/include/gran.hpp"; \
	    install -m 0644 bindings/cpp/gran.hpp $(DESTDIR)$(PREFIX)/include/gran.hpp; \
	fi
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@LIBTORCH_LIBDIR@|$(LIB_RUNPATH)|g' \
	    pkgconfig/gran.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/gran.pc
	for f in granConfig granConfigVersion; do \
	    sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@SOMAJOR@|$(SOMAJOR)|g' \
	        -e 's|@ABI_VERSION@|$(ABI_VERSION)|g' -e 's|@LIBTORCH_LIBDIR@|$(LIB_RUNPATH)|g' \
	        cmake/$$f.cmake.in > $(DESTDIR)$(PREFIX)/lib/cmake/gran/$$f.cmake || exit 1; \
	done
	install -m 0755 $(RUNTIME_LIB) $(DESTDIR)$(PREFIX)/lib/libgran_runtime.so.$(VERSION)
	ln -sfn libgran_runtime.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libgran_runtime.so.0
	ln -sfn libgran_runtime.so.0 $(DESTDIR)$(PREFIX)/lib/libgran_runtime.so
	install -m 0644 target/release/libgran_runtime.a $(DESTDIR)$(PREFIX)/lib/libgran_runtime.a
	install -m 0644 include/gran_runtime.h $(DESTDIR)$(PREFIX)/include/gran_runtime.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    pkgconfig/gran-runtime.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/gran-runtime.pc
	@echo "install: libgran $(VERSION) and bin/gran in $(DESTDIR)$(PREFIX); they load libtorch from $(LIB_RUNPATH)"

test-install: lib $(CMAKE_STAMP)
	@command -v pkg-config >/dev/null || { echo "test-install: pkg-config is not installed"; exit 1; }
	@start=$$(date +%s); \
	MAKE="$(MAKE)" CMAKE="$(CMAKE)" CONSUMER_CC="$(CC)" VERSION="$(VERSION)" SOMAJOR="$(SOMAJOR)" \
	    bash tests/consumer/test-install.sh && echo "test-install: took $$(( $$(date +%s) - start )) s"

clean:
	$(CARGO) clean
	rm -rf $(OUT)
