#!/usr/bin/env bash
# Builds everything a GPU machine needs to check gran into one folder (`make gpu-check` runs
# this; DEVELOPERS.md, "On a GPU"). The GPU machine has PyTorch but no cargo, no compiler and no
# network: what runs there is built here, stripped, and carried (at most 64 MiB).
#
#   bash gpu/build.sh [DIR]        (default target/gpu; LIBTORCH etc. set as by env.sh)
#
# The C compilers are GPU_CC and GPU_CXX (gcc, g++), not CC and CXX: those would reach cargo,
# whose build scripts (torch-sys, zstd-sys, ...) rebuild everything when CC changes.
#
# DIR afterwards:
#   lib/libgran.so.0            the library, stripped
#   lib/libasan.so.*, libubsan.so.*   the sanitizer run-times the C tests need (the GPU
#                               machine has no compiler, so perhaps no libasan)
#   bin/bench_rows, bin/experiment, bin/shapes, bin/colour_patches   the examples gpu/check.sh
#                               runs (and any binary target of the crate, e.g. a CLI)
#   colour-src/                 the six photographs `make colour-data` takes from scikit-image's
#                               wheel (target/colour-src), when it has run: the small-sets stage
#                               crops them there (2.4 MB against 73 MB of crops)
#   tests/model, evaluator, cuda_graph, ema, export   the Rust integration tests that create models and
#                               evaluators (GRAN_TEST_DEVICE picks their device)
#   ctest/test_api ...          the C tests, built as `make test-c` builds them, with an rpath to
#                               ../lib (AddressSanitizer + UBSan)
#   MANIFEST.txt                commit, build time, the files and their sizes, the newest glibc
#                               symbol version the binaries need
# It fails when DIR is over 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-target/gpu}
CARGO=${CARGO:-cargo}
CC=${GPU_CC:-gcc}
CXX=${GPU_CXX:-g++}
PYTHON=${PYTHON:-.venv/bin/python}
LIMIT=$((64 * 1024 * 1024))

# The Rust tests whose models and evaluators GRAN_TEST_DEVICE places (tests/common).
RUST_TESTS="model evaluator cuda_graph ema export ddp"

echo "gpu/build.sh: building (release) the library, the examples, the binaries and the device tests"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$CARGO build --release --lib --bins --example bench_rows --example experiment --example shapes --example colour_patches \
    --message-format=json \
    > "$tmp/build.json"
test_args=""
for t in $RUST_TESTS; do test_args="$test_args --test $t"; done
# shellcheck disable=SC2086
$CARGO test --release --no-run $test_args --message-format=json > "$tmp/tests.json"
# The executables cargo built: "kind name path" lines.
"$PYTHON" - "$tmp/build.json" "$tmp/tests.json" > "$tmp/exes" <<'EOF'
import json, sys
for f in sys.argv[1:]:
    for line in open(f):
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") == "compiler-artifact" and m.get("executable"):
            kinds = m["target"]["kind"]
            kind = "test" if m["profile"].get("test") else ("example" if "example" in kinds else "bin")
            print(kind, m["target"]["name"], m["executable"])
EOF

rm -rf "$DIR"
mkdir -p "$DIR/lib" "$DIR/bin" "$DIR/tests" "$DIR/ctest"
strip -o "$DIR/lib/libgran.so.0" target/release/libgran.so
while read -r kind name path; do
    case $kind in
        test) strip -o "$DIR/tests/$name" "$path" ;;
        example | bin) strip -o "$DIR/bin/$name" "$path" ;;
    esac
done < "$tmp/exes"
# The photographs without the wheel they came from.
if [ -f target/colour-src/astronaut.png ]; then
    mkdir -p "$DIR/colour-src"
    find target/colour-src -maxdepth 1 -type f ! -name '*.whl' -exec cp {} "$DIR/colour-src/" \;
else
    echo "gpu/build.sh: no photographs in target/colour-src (make colour-data): small-sets will train the shapes only"
fi
for t in $RUST_TESTS; do
    [ -x "$DIR/tests/$t" ] || { echo "gpu/build.sh: no test binary for $t"; exit 1; }
done

# The C tests, as `make test-c` builds them, but linked to lib/ beside them. -g is kept out of
# the carried copy by stripping debug sections only (the symbols stay for sanitizer traces).
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-std=c99 -Wall -Wextra -Werror -pedantic $SAN -g -Iinclude -Itests/c -pthread"
CXXFLAGS="-std=c++17 -Wall -Wextra -Werror -pedantic $SAN -g -Iinclude -pthread"
LDFLAGS="-Ltarget/release -lgran -Wl,-rpath,\$ORIGIN/../lib -pthread -lm"
for t in test_api test_threads test_metrics; do
    # shellcheck disable=SC2086
    $CC $CFLAGS "tests/c/$t.c" -o "$DIR/ctest/$t" $LDFLAGS
done
# shellcheck disable=SC2086
$CXX $CXXFLAGS tests/c/test_cpp.cpp -o "$DIR/ctest/test_cpp" $LDFLAGS
for t in "$DIR"/ctest/*; do strip --strip-debug "$t"; done
# The sanitizer run-times the C tests were linked with.
for so in $(ldd "$DIR/ctest/test_api" | awk '/lib(asan|ubsan)\.so/ {print $3}'); do
    cp -L "$so" "$DIR/lib/"
done
ls "$DIR"/lib/libasan.so.* > /dev/null || { echo "gpu/build.sh: libasan not found"; exit 1; }

# The manifest: what was built from what, and what it needs of the machine it runs on.
glibc=$(for f in "$DIR"/lib/libgran.so.0 "$DIR"/bin/* "$DIR"/tests/* "$DIR"/ctest/*; do
    objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' || true
done | sort -u -t_ -k2,2V | tail -n 1)
{
    echo "gran gpu-check build"
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "built: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -m), $(ldd --version | head -n 1)"
    echo "libtorch: $LIBTORCH"
    echo "newest glibc symbol version needed: $glibc"
    echo "files:"
    (cd "$DIR" && find . -type f ! -name MANIFEST.txt -printf '  %p %s\n' | sort)
} > "$DIR/MANIFEST.txt"

size=$(du -sb "$DIR" | cut -f1)
echo "gpu/build.sh: $DIR holds $(find "$DIR" -type f | wc -l) files, $((size / 1024 / 1024)) MiB ($size bytes; limit 64 MiB)"
if [ "$size" -gt "$LIMIT" ]; then
    echo "gpu/build.sh: $DIR is over 64 MiB: it cannot be carried to the GPU machine"
    exit 1
fi
