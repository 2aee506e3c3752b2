#!/bin/bash
# Peak memory and start-up of `gran train` on a packed .npy of N images, read from the file
# (the default) or loaded whole (--stream off): docs/RESULTS.md, "Data at scale". Makes the sets
# with numpy first (uniform noise, 64x64x3: 3,000 and 300,000 images, 37 MB and 3.7 GB):
#   bash bench/stream_memory.sh [DIR]
# Prints "images mode peak-MiB seconds-to-first-step-report seconds-before-training" lines (T = 5
# at width scale 0.0625, batch 64, 30 steps; the first step's report comes after the first
# step's own work, which the last column takes out: the report's elapsed_s counts from the
# start of training). MODES="streamed" skips loading the sets whole.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/tmp/gran-stream}
mkdir -p "$DIR"
if [ ! -f "$DIR/big.npy" ]; then
    .venv/bin/python - "$DIR" <<'PY'
import sys, numpy as np
d, n, chunk = sys.argv[1], 300000, 10000
a = np.lib.format.open_memmap(f"{d}/big.npy", mode="w+", dtype=np.uint8, shape=(n, 64, 64, 3))
rng = np.random.default_rng(0)
for s in range(0, n, chunk):
    a[s:s + chunk] = rng.integers(0, 256, size=(chunk, 64, 64, 3), dtype=np.uint8)
a.flush()
np.save(f"{d}/small.npy", np.ascontiguousarray(a[:3000]))
PY
fi
for set in small big; do
    for mode in ${MODES:-streamed in-memory}; do
        flag=""; [ "$mode" = in-memory ] && flag="--stream off"
        start=$(date +%s.%N)
        # shellcheck disable=SC2086
        OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} /usr/bin/time -v -o "$DIR/time" target/release/gran train \
            --data "$DIR/$set.npy" $flag -T 5 --width-scale 0.0625 -b 64 -n 30 --report-every 1 --json \
            -o "$DIR/m.safetensors" 2> /dev/null | while read -r line; do
                case $line in *'"step":1,'*)
                    echo "$(date +%s.%N)" > "$DIR/first"
                    echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["elapsed_s"])' > "$DIR/step1" ;;
                esac
            done
        kib=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$DIR/time")
        images=$([ $set = small ] && echo 3000 || echo 300000)
        first=$(echo "$(cat "$DIR/first") - $start" | bc)
        echo "$images $mode $((kib / 1024)) $first $(echo "$first - $(cat "$DIR/step1")" | bc)"
    done
done
