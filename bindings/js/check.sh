#!/usr/bin/env bash
# The WebAssembly runtime in Node against the native runtime (bindings/js/test.mjs).
#
#     bash bindings/js/check.sh target/wasm/gran_runtime.wasm     (after `make wasm`; from anywhere)
#
# Builds the native dump example (runtime/examples/dump.rs), writes what it draws for each test
# model and seed into target/js-check/, then runs the Node test on the module. The models: the
# tiny test export runtime/tests/data/tiny_t3_bf16.safetensors, and the web demo's model
# examples/web/gran_t3.safetensors when it is there, and any in JS_CHECK_MODELS (paths separated
# by spaces). NODE picks the node binary (default: node).
# Exits non-zero when anything fails.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: bash bindings/js/check.sh WASM" >&2
    exit 2
fi
wasm="$(realpath "$1")"
[ -f "$wasm" ] || { echo "js-check: $1: no such file (make wasm)" >&2; exit 1; }
cd "$(dirname "$0")/../.."
NODE="${NODE:-node}"
command -v "$NODE" >/dev/null || { echo "js-check: FAIL: node is not installed (NODE=$NODE)" >&2; exit 1; }

CARGO="${CARGO:-cargo}"
"$CARGO" build --release --quiet -p gran-runtime --example dump
dump=target/release/examples/dump

out=target/js-check
rm -rf "$out"
mkdir -p "$out"
models=(runtime/tests/data/tiny_t3_bf16.safetensors)
if [ -f examples/web/gran_t3.safetensors ]; then
    models+=(examples/web/gran_t3.safetensors)
else
    echo "js-check: examples/web/gran_t3.safetensors is not there: not compared"
fi
for model in ${JS_CHECK_MODELS:-}; do
    models+=("$model")
done
# Seed 1, and a seed near 2^64 (the seed crosses into JavaScript as a BigInt).
for model in "${models[@]}"; do
    name="$(basename "$model" .safetensors)-$(printf '%s' "$model" | cksum | cut -d' ' -f1)"
    "$dump" "$model" 1 16 "$out/$name-seed1"
    "$dump" "$model" 18446744073709551557 5 "$out/$name-seed18446744073709551557"
done

"$NODE" bindings/js/test.mjs "$wasm" "$out"
