#!/usr/bin/env bash
# The C side of libgran_runtime (`make test-runtime` runs this from the repository root):
#   1. tests/runtime/test_runtime.c: the C contract through include/gran_runtime.h, under the
#      sanitizers ($SANITIZE);
#   2. tests/runtime/test_cpp.cpp: bindings/cpp/gran.hpp sampling with -lgran_runtime alone;
#   3. examples/runtime_demo.c on the tiny bf16 model, PNGs into target/runtime-test/;
#   4. ldd of runtime_demo and of the library: nothing but the C runtime (no libtorch, no libc10,
#      no libstdc++);
#   5. the library's stripped size: at most 3 MiB.
# Every step runs even when an earlier one failed; the last line sums them up, and the exit
# status is non-zero when any failed.
#
# Environment: RUNTIME_LIB (default target/release/libgran_runtime.so, built by `make runtime`),
# CC, CXX (default cc, c++), SANITIZE (compiler flags of the sanitizers; empty: none).
set -u

RUNTIME_LIB=${RUNTIME_LIB:-target/release/libgran_runtime.so}
CC=${CC:-cc}
CXX=${CXX:-c++}
SANITIZE=${SANITIZE:-}
OUT=target/runtime-test
MAX_BYTES=$((3 * 1024 * 1024))
MODEL=runtime/tests/data/tiny_t3_bf16.safetensors

if [ ! -f "$RUNTIME_LIB" ]; then
    echo "test-runtime: $RUNTIME_LIB is missing: build it with \`make runtime\`" >&2
    exit 1
fi
LIB_DIR=$(cd "$(dirname "$RUNTIME_LIB")" && pwd)
LINK=(-L"$LIB_DIR" -lgran_runtime -Wl,-rpath,"$LIB_DIR")
mkdir -p "$OUT"

passed=0
failed=0
failures=()
pass() { passed=$((passed + 1)); echo "test-runtime: ok: $1"; }
fail() { failed=$((failed + 1)); failures+=("$1"); echo "test-runtime: FAILED: $1"; }

# LeakSanitizer checks each C test's process when it exits (the test forks one per test).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# 1. The C test, with the sanitizers.
echo "== tests/runtime/test_runtime.c ($CC ${SANITIZE:-without sanitizers})"
# shellcheck disable=SC2086 # SANITIZE is a list of flags
if "$CC" -std=c99 -g -O1 -Wall -Wextra -Werror -pedantic $SANITIZE -Iinclude -Itests/c \
        tests/runtime/test_runtime.c -o "$OUT/test_runtime" "${LINK[@]}" -lpthread -lm; then
    if "$OUT/test_runtime"; then pass "C test"; else fail "C test"; fi
else
    fail "C test (build)"
fi

# 2. The C++ header over the runtime.
echo "== tests/runtime/test_cpp.cpp ($CXX, bindings/cpp/gran.hpp)"
# shellcheck disable=SC2086
if "$CXX" -std=c++17 -g -O1 -Wall -Wextra -Werror -pedantic $SANITIZE -Iinclude -Ibindings/cpp \
        tests/runtime/test_cpp.cpp -o "$OUT/test_cpp" "${LINK[@]}"; then
    if "$OUT/test_cpp"; then pass "C++ header"; else fail "C++ header"; fi
else
    fail "C++ header (build)"
fi

# 3. The demo, built as `make runtime-demo` builds it (no sanitizers: its ldd is checked next).
echo "== examples/runtime_demo.c"
if "$CC" -std=c99 -O2 -Wall -Wextra -Werror -pedantic -Iinclude examples/runtime_demo.c \
        -o "$OUT/runtime_demo" "${LINK[@]}"; then
    rm -f "$OUT/runtime_demo.png" "$OUT/runtime_demo_steps.png"
    if "$OUT/runtime_demo" "$MODEL" "$OUT/runtime_demo.png" &&
        [ -s "$OUT/runtime_demo.png" ] && [ -s "$OUT/runtime_demo_steps.png" ] &&
        [ "$(head -c 8 "$OUT/runtime_demo.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then
        pass "runtime_demo ($OUT/runtime_demo.png, $OUT/runtime_demo_steps.png)"
    else
        fail "runtime_demo"
    fi
    # A missing model: a message and exit status 1, no crash.
    "$OUT/runtime_demo" "$OUT/no-such-model.safetensors" "$OUT/never.png" >/dev/null 2>"$OUT/demo_error.txt"
    rc=$?
    if [ $rc -eq 1 ] && grep -q "GRAN_STATUS_IO" "$OUT/demo_error.txt" && [ ! -e "$OUT/never.png" ]; then
        pass "runtime_demo on a missing model (exit 1, GRAN_STATUS_IO)"
    else
        fail "runtime_demo on a missing model (exit $rc: $(cat "$OUT/demo_error.txt"))"
    fi
else
    fail "runtime_demo (build)"
fi

# 4. What the demo and the library load: the C runtime only.
echo "== ldd"
allowed='^(linux-vdso\.so|linux-gate\.so|libc\.so|libm\.so|libgcc_s\.so|libpthread\.so|libdl\.so|librt\.so|ld-linux[-a-z0-9_.]*\.so|libgran_runtime\.so)'
check_ldd() {
    local file=$1 deps bad
    if ! deps=$(ldd "$file" 2>&1); then
        fail "ldd $file: $deps"
        return
    fi
    echo "ldd $file:"
    echo "$deps" | sed 's/^/    /'
    # The first word of each line is the library's name (or its path for the loader).
    bad=$(echo "$deps" | awk '{print $1}' | sed 's|.*/||' | grep -vE "$allowed" || true)
    if echo "$deps" | grep -qiE 'libtorch|libc10|libstdc\+\+|not found'; then
        bad="$bad $(echo "$deps" | grep -iE 'libtorch|libc10|libstdc\+\+|not found' | awk '{print $1}' | tr '\n' ' ')"
    fi
    if [ -z "${bad// /}" ]; then
        pass "ldd $(basename "$file"): C runtime only"
    else
        fail "ldd $(basename "$file") loads $(echo $bad)"
    fi
}
[ -x "$OUT/runtime_demo" ] && check_ldd "$OUT/runtime_demo"
check_ldd "$RUNTIME_LIB"

# 5. The stripped size of the library.
stripped="$OUT/libgran_runtime.stripped.so"
if strip -o "$stripped" "$RUNTIME_LIB" 2>/dev/null; then
    size=$(stat -c %s "$stripped")
    human=$(awk -v b="$size" 'BEGIN { printf "%.2f MiB", b / 1048576 }')
    echo "$(basename "$RUNTIME_LIB") stripped: $size bytes ($human; as built: $(stat -c %s "$RUNTIME_LIB") bytes)"
    if [ "$size" -le "$MAX_BYTES" ]; then
        pass "stripped size $human <= 3 MiB"
    else
        fail "stripped size $human > 3 MiB"
    fi
else
    fail "strip $RUNTIME_LIB"
fi

if [ "$failed" -eq 0 ]; then
    echo "test-runtime: $passed passed, 0 failed"
    exit 0
fi
echo "test-runtime: $passed passed, $failed failed: $(printf '%s; ' "${failures[@]}")"
exit 1
