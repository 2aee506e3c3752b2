#!/bin/bash
# Training speed with the minibatches read from the file against the set in memory
# (docs/RESULTS.md and BENCHMARKS.md, "Streaming"): the demo job (digits, T = 3, width scale
# 0.25, 200 steps) from the IDX files (in memory), from a packed .npy read from the file, and
# from the .npy loaded whole; and a 32x32x3 T = 3 job at width scale 0.125 (80 steps) from a zip
# of PNG files decoded a minibatch at a time against its packed .npy. The settings alternate
# within each of 3 rounds. Needs target/release/gran and target/release/examples/shapes.
# Prints "round job source ms-per-step" (over the steps after the 10th).
set -euo pipefail
cd "$(dirname "$0")/.."
G=target/release/gran
DIR=${1:-/tmp/gran-stream-speed}
mkdir -p "$DIR"
[ -f "$DIR/digits.npy" ] || $G pack data/mnist10k -o "$DIR/digits.npy" --quiet > /dev/null
if [ ! -f "$DIR/shapes.zip" ]; then
    target/release/examples/shapes "$DIR/shapes" 3000 32 > /dev/null
    (cd "$DIR/shapes" && python3 -c "import zipfile, os; z = zipfile.ZipFile('../shapes.zip', 'w'); [z.write(f) for f in sorted(os.listdir('.'))]; z.close()")
    $G pack "$DIR/shapes.zip" -o "$DIR/shapes.npy" --quiet > /dev/null
fi
ms() { # the --json lines on stdin -> ms per step after step 10
    python3 -c '
import json, sys
p = {v["step"]: v["elapsed_s"] for v in map(json.loads, sys.stdin) if v.get("type") == "progress"}
n = max(p)
print(round(1000 * (p[n] - p[10]) / (n - 10), 1))'
}
for round in 1 2 3; do
    for src in "idx|--data data/mnist10k" "npy-file|--data $DIR/digits.npy" "npy-memory|--data $DIR/digits.npy --stream off"; do
        # shellcheck disable=SC2086
        echo "$round digits ${src%%|*} $(OMP_NUM_THREADS=2 $G train ${src#*|} -T 3 --width-scale 0.25 -n 200 --seed 1 \
            --report-every 1 --json -o "$DIR/m.safetensors" 2> /dev/null | ms)"
    done
    for src in "zip-decoded|--data $DIR/shapes.zip --stream on" "npy-file|--data $DIR/shapes.npy"; do
        # shellcheck disable=SC2086
        echo "$round shapes ${src%%|*} $(OMP_NUM_THREADS=2 $G train ${src#*|} --image-size 32 --channels 3 -T 3 \
            --width-scale 0.125 -n 80 --seed 1 --report-every 1 --json -o "$DIR/m.safetensors" 2> /dev/null | ms)"
    done
done
