#!/usr/bin/env bash
# Builds and runs the tests of the C++ wrapper (bindings/cpp) and the Python package
# (bindings/python) against libgran in target/release (run `make build` first); then, when
# libgran_runtime is built (`make runtime`), the Python package's tests against it and the test
# of the wheel with it inside (built, installed into a bare venv, used there).
# Usage: bash bindings/test.sh    (from anywhere; exits non-zero on any failure)
# Environment: CXX (default g++), GRAN_LIBRARY (default <repo>/target/release/libgran.so),
#              GRAN_RUNTIME_LIBRARY (default <repo>/target/release/libgran_runtime.so),
#              PYTHON (default <repo>/.venv/bin/python, else python3), OMP_NUM_THREADS (default 1).
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

LIB="${GRAN_LIBRARY:-$ROOT/target/release/libgran.so}"
RUNTIME_LIB="${GRAN_RUNTIME_LIBRARY:-$ROOT/target/release/libgran_runtime.so}"
LIBDIR="$(dirname "$LIB")"
CXX="${CXX:-g++}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
BUILD="$ROOT/target/bindings"
mkdir -p "$BUILD"
export GRAN_LIBRARY="$LIB"
# The test models are tiny: one libtorch thread is fastest, and OpenMP worker threads that
# spin-wait make them 10x slower when other processes compete for the cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

passed=0
failed=0
skipped=0
start=$(date +%s)

if [ ! -f "$LIB" ]; then
    echo "bindings: $LIB not found: run 'make build' first"
    echo "bindings: 0 passed, 1 failed"
    exit 1
fi

# ---- C++ ------------------------------------------------------------------------------------
echo "== C++ wrapper (bindings/cpp) =="
cpp_log="$BUILD/cpp-test.log"
# The program needs the library by its soname (libgran.so.0), which `make build` links in
# target/release; for a library built otherwise, a link of our own is the fallback.
soname="$(readelf -d "$LIB" 2>/dev/null | sed -nE 's/.*Library soname: \[(.*)\].*/\1/p')"
soname="${soname:-libgran.so.0}"
mkdir -p "$BUILD/lib"
ln -sfn "$(cd "$LIBDIR" && pwd)/$(basename "$LIB")" "$BUILD/lib/$soname"
if "$CXX" -std=c++17 -Wall -Wextra -Werror -pedantic -I"$ROOT/include" -I"$ROOT/bindings/cpp" \
        "$ROOT/bindings/cpp/test.cpp" -L"$LIBDIR" -lgran -Wl,-rpath,"$LIBDIR" -Wl,-rpath,"$BUILD/lib" \
        -o "$BUILD/cpp-test"; then
    "$BUILD/cpp-test" 2>&1 | tee "$cpp_log"
    rc=${PIPESTATUS[0]}
    line="$(grep -E '^cpp: [0-9]+ passed, [0-9]+ failed' "$cpp_log" | tail -1)"
    if [ -n "$line" ]; then
        p=$(echo "$line" | sed -E 's/^cpp: ([0-9]+) passed, ([0-9]+) failed.*/\1/')
        f=$(echo "$line" | sed -E 's/^cpp: ([0-9]+) passed, ([0-9]+) failed.*/\2/')
        passed=$((passed + p))
        failed=$((failed + f))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
    else
        echo "C++ test program ended without a summary (exit status $rc)"
        failed=$((failed + 1))
    fi
else
    echo "C++ test program did not compile"
    failed=$((failed + 1))
fi

# ---- Python ---------------------------------------------------------------------------------
# python_suite LABEL PATTERN [NAME=VALUE ...]: runs the unittest files of bindings/python/tests
# that match PATTERN, with the package from bindings/python and the environment given, and adds
# its summary line "LABEL: N passed, M failed, K skipped" to the totals. Tests skipped because
# they need libgran (with libgran_runtime loaded) ran in the libgran suite: they are reported on
# the summary line, not counted as skipped.
python_suite() {
    local label="$1" pattern="$2"
    shift 2
    local log="$BUILD/$label-test.log" rc line p f s
    env "$@" PYTHONPATH="$ROOT/bindings/python${PYTHONPATH:+:$PYTHONPATH}" \
        "$PYTHON" - "$ROOT/bindings/python/tests" "$pattern" "$label" <<'PYEOF' 2>&1 | tee "$log"
import sys
import unittest

tests, pattern, label = sys.argv[1:4]
suite = unittest.defaultTestLoader.discover(tests, pattern=pattern, top_level_dir=tests)
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
elsewhere = sum(1 for _, reason in result.skipped if reason.startswith("needs libgran"))
skipped = len(result.skipped) - elsewhere
note = f" ({elsewhere} need libgran)" if elsewhere else ""
print(f"{label}: {result.testsRun - bad - len(result.skipped)} passed, {bad} failed, {skipped} skipped{note}")
sys.exit(1 if bad or result.testsRun == 0 else 0)
PYEOF
    rc=${PIPESTATUS[0]}
    line="$(grep -E "^$label: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped" "$log" | tail -1)"
    if [ -n "$line" ]; then
        read -r p f s < <(echo "$line" | sed -E "s/^$label: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped.*/\1 \2 \3/")
        passed=$((passed + p))
        failed=$((failed + f))
        skipped=$((skipped + s))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
    else
        echo "$label tests ended without a summary (exit status $rc)"
        failed=$((failed + 1))
    fi
}

echo "== Python package (bindings/python) on libgran =="
if ! "$PYTHON" -c 'import numpy' >/dev/null 2>&1; then
    echo "numpy is missing: installing it with pip (the numpy-free paths are tested either way)"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check numpy \
        || echo "warning: could not install numpy; numpy tests will be skipped"
fi
python_suite python 'test*.py' GRAN_LIBRARY="$LIB" GRAN_TEST_EXPECT_KIND=libgran

# ---- Python on libgran_runtime, and the wheel ---------------------------------------------------
if [ -f "$RUNTIME_LIB" ]; then
    echo "== Python package (bindings/python) on libgran_runtime =="
    python_suite python-runtime 'test*.py' GRAN_LIBRARY="$RUNTIME_LIB" GRAN_TEST_EXPECT_KIND=libgran_runtime
    echo "== Wheel with libgran_runtime inside (bindings/python/build_wheel.py), in a bare venv =="
    python_suite wheel 'wheel_test.py' GRAN_RUNTIME_LIBRARY="$RUNTIME_LIB"
else
    echo "== libgran_runtime: $RUNTIME_LIB not found (make runtime): its Python and wheel tests skipped =="
    skipped=$((skipped + 2))
fi

elapsed=$(( $(date +%s) - start ))
[ "$skipped" -gt 0 ] && echo "bindings: $skipped skipped"
echo "bindings: took ${elapsed}s"
echo "bindings: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
