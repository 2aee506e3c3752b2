#!/usr/bin/env bash
# `make test-install`: installs libgran into a temporary PREFIX, checks the installed layout,
# runs bin/gran, then builds tests/consumer/consumer.c against it twice (pkg-config, and CMake's
# find_package(gran)) and runs both programs without LD_LIBRARY_PATH.
#
# Environment: MAKE (the make to call), CMAKE (a cmake >= 3.16), VERSION (the library version,
# e.g. 0.1.0), SOMAJOR (the soname's major version), CONSUMER_CC (the C compiler for the
# consumer; default gcc). Not CC: that would reach cargo in the inner `make install`, and the
# build scripts of C dependencies rebuild whenever CC changes.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${MAKE:=make}" "${CMAKE:=cmake}" "${CONSUMER_CC:=gcc}" "${VERSION:?}" "${SOMAJOR:?}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/gran-test-install-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
fail() { echo "test-install: FAILED: $*" >&2; exit 1; }

echo "test-install: make install PREFIX=$prefix"
"$MAKE" -C "$root" --no-print-directory install PREFIX="$prefix" >"$tmp/install.log" 2>&1 \
    || { cat "$tmp/install.log" >&2; fail "make install"; }

# The layout.
lib="$prefix/lib"
[ -f "$lib/libgran.so.$VERSION" ] && [ ! -L "$lib/libgran.so.$VERSION" ] || fail "no $lib/libgran.so.$VERSION"
[ "$(readlink "$lib/libgran.so.$SOMAJOR")" = "libgran.so.$VERSION" ] || fail "libgran.so.$SOMAJOR link"
[ "$(readlink "$lib/libgran.so")" = "libgran.so.$SOMAJOR" ] || fail "libgran.so link"
[ -f "$prefix/include/gran.h" ] || fail "no include/gran.h"
cmp -s "$prefix/include/gran.h" "$root/include/gran.h" || fail "include/gran.h differs from the source"
if [ -f "$root/bindings/cpp/gran.hpp" ]; then
    cmp -s "$prefix/include/gran.hpp" "$root/bindings/cpp/gran.hpp" || fail "include/gran.hpp not installed"
fi
for f in lib/pkgconfig/gran.pc lib/cmake/gran/granConfig.cmake lib/cmake/gran/granConfigVersion.cmake; do
    [ -f "$prefix/$f" ] || fail "no $f"
done
if grep -n '@[A-Z_]*@' "$lib/pkgconfig/gran.pc" "$lib/cmake/gran/"*.cmake; then
    fail "unsubstituted @VARIABLES@ in the installed files"
fi

# The library: its soname, and an absolute RUNPATH to a libtorch that exists, of which nothing
# was copied into the prefix.
dyn="$(readelf -d "$lib/libgran.so.$VERSION")"
grep -q "Library soname: \[libgran.so.$SOMAJOR\]" <<<"$dyn" || fail "soname is not libgran.so.$SOMAJOR"
runpath="$(sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p; s/.*(RPATH).*\[\(.*\)\]/\1/p' <<<"$dyn" | head -n1)"
[ -n "$runpath" ] || fail "the installed library has no RUNPATH"
IFS=: read -r -a dirs <<<"$runpath"
torch_dir=""
for d in "${dirs[@]}"; do
    case "$d" in /*) ;; *) fail "RUNPATH entry '$d' is not absolute" ;; esac
    [ -f "$d/libtorch_cpu.so" ] && torch_dir="$d"
done
[ -n "$torch_dir" ] || fail "no RUNPATH entry holds libtorch_cpu.so ($runpath)"
grep -q "libtorch_libdir=$torch_dir\$" "$lib/pkgconfig/gran.pc" || fail "gran.pc does not name $torch_dir"
grep -q "GRAN_LIBTORCH_LIBRARY_DIR \"$torch_dir\"" "$lib/cmake/gran/granConfig.cmake" \
    || fail "granConfig.cmake does not name $torch_dir"
copied="$(find "$prefix" \( -name 'libtorch*' -o -name 'libc10*' -o -name 'libgomp*' \) -print)"
[ -z "$copied" ] || fail "libtorch files were copied into the prefix: $copied"
echo "test-install: layout ok; RUNPATH $runpath"

# The command-line tool: runs from the prefix, from another folder, without LD_LIBRARY_PATH.
gran="$prefix/bin/gran"
[ -f "$gran" ] && [ -x "$gran" ] || fail "no executable bin/gran"
if env -u LD_LIBRARY_PATH ldd "$gran" | grep -q 'not found'; then
    env -u LD_LIBRARY_PATH ldd "$gran" >&2
    fail "bin/gran: unresolved libraries"
fi
version="$(cd "$tmp" && env -u LD_LIBRARY_PATH "$gran" --version)" || fail "bin/gran --version"
[ "$version" = "gran $VERSION" ] || fail "bin/gran --version printed '$version'"
info="$(cd "$tmp" && env -u LD_LIBRARY_PATH OMP_NUM_THREADS=1 "$gran" info "$root/data/mnist10k/t10k-images-idx3-ubyte.gz")" \
    || fail "bin/gran info"
grep -q "1000 images of 28x28x1" <<<"$info" || fail "bin/gran info printed '$info'"
echo "test-install: bin/gran runs ($version)"

# Runs a consumer binary with no LD_LIBRARY_PATH, checks it printed OK and that it loaded the
# installed libgran (not the one in target/).
run_consumer() {
    local exe="$1" how="$2" out resolved
    resolved="$(env -u LD_LIBRARY_PATH ldd "$exe" | awk '$1 == "libgran.so.'"$SOMAJOR"'" {print $3}')"
    [ "$resolved" = "$lib/libgran.so.$SOMAJOR" ] || fail "$how: libgran resolves to '$resolved', not $lib"
    if env -u LD_LIBRARY_PATH ldd "$exe" | grep -q 'not found'; then
        env -u LD_LIBRARY_PATH ldd "$exe" >&2
        fail "$how: unresolved libraries"
    fi
    out="$(cd "$tmp" && env -u LD_LIBRARY_PATH "$exe")" || fail "$how: the consumer failed"
    [ "$out" = "OK" ] || fail "$how: the consumer printed '$out'"
    echo "test-install: $how consumer: $out"
}

# 1. pkg-config. Compiled from another folder, so that nothing of the source tree is used.
export PKG_CONFIG_PATH="$lib/pkgconfig"
[ "$(pkg-config --modversion gran)" = "$VERSION" ] || fail "pkg-config --modversion gran"
flags="$(pkg-config --cflags --libs gran)"
echo "test-install: pkg-config --cflags --libs gran: $flags"
cp "$root/tests/consumer/consumer.c" "$tmp/consumer.c"
# shellcheck disable=SC2086 # the flags are words
(cd "$tmp" && "$CONSUMER_CC" -std=c99 -Wall -Wextra -Werror -pedantic consumer.c $flags -o consumer-pkgconfig) \
    || fail "building with pkg-config"
run_consumer "$tmp/consumer-pkgconfig" "pkg-config"
unset PKG_CONFIG_PATH

# 2. CMake: find_package(gran REQUIRED) and the imported target gran::gran.
"$CMAKE" -S "$root/tests/consumer" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_COMPILER="$CONSUMER_CC" >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log" >&2; fail "cmake configure"; }
grep 'gran ' "$tmp/cmake.log" | sed 's/^/test-install: cmake: /'
"$CMAKE" --build "$tmp/build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; fail "cmake build"; }
run_consumer "$tmp/build/consumer" "CMake"

# 3. The runtime: its files, and bench/first_image.c (only gran_runtime.h calls) built with
#    pkg-config gran-runtime, run without LD_LIBRARY_PATH: it loads the installed runtime and
#    no libtorch.
[ -f "$lib/libgran_runtime.so.$VERSION" ] || fail "no $lib/libgran_runtime.so.$VERSION"
[ "$(readlink "$lib/libgran_runtime.so")" = "libgran_runtime.so.0" ] || fail "libgran_runtime.so link"
[ -f "$lib/libgran_runtime.a" ] || fail "no libgran_runtime.a"
cmp -s "$prefix/include/gran_runtime.h" "$root/include/gran_runtime.h" || fail "include/gran_runtime.h not installed"
export PKG_CONFIG_PATH="$lib/pkgconfig"
[ "$(pkg-config --modversion gran-runtime)" = "$VERSION" ] || fail "pkg-config --modversion gran-runtime"
flags="$(pkg-config --cflags --libs gran-runtime)"
cp "$root/bench/first_image.c" "$tmp/first_image.c"
# shellcheck disable=SC2086 # the flags are words
(cd "$tmp" && "$CONSUMER_CC" -std=c99 -Wall -Wextra -Werror -pedantic first_image.c $flags -o first-image) \
    || fail "building against gran-runtime with pkg-config"
unset PKG_CONFIG_PATH
deps="$(env -u LD_LIBRARY_PATH ldd "$tmp/first-image")"
grep -q "libgran_runtime.so.0 => $lib/libgran_runtime.so.0" <<<"$deps" || fail "the runtime resolves elsewhere: $deps"
! grep -qE 'libtorch|libc10|libstdc\+\+|not found' <<<"$deps" || fail "the runtime program loads: $deps"
(cd "$tmp" && env -u LD_LIBRARY_PATH ./first-image "$root/runtime/tests/data/tiny_t3_bf16.safetensors" one.png) \
    || fail "the runtime program failed"
[ "$(head -c 8 "$tmp/one.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "no PNG from the runtime"
echo "test-install: gran-runtime consumer (pkg-config): a PNG, no libtorch loaded"

echo "test-install: ok"
