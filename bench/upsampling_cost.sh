#!/bin/bash
# Time per training step of `gran train` with the transposed generator and the resizing one
# (--upsampling resize), alternated over 3 rounds, on the digits (28x28x1, width 0.25) and on
# 32x32x3 shapes (width 0.125) and at the paper's widths for 32x32x3. Needs target/release/gran
# (make cli) and a shapes folder:
#   cargo run --release --example shapes -- /tmp/shapes
# Prints "round data upsampling ms-per-step" lines.
set -euo pipefail
cd "$(dirname "$0")/.."
G=target/release/gran
SHAPES=${SHAPES:-/tmp/shapes}
out=$(mktemp -d)
for round in 1 2 3; do
  for set in "digits|--data data/mnist10k -T 3 --width-scale 0.25 -n 100" \
             "shapes|--data $SHAPES --image-size 32 --channels 3 -T 3 --width-scale 0.125 -n 40" \
             "shapes-paper-width|--data $SHAPES --image-size 32 --channels 3 -T 3 --width-scale 1 -n 4"; do
    name=${set%%|*}; args=${set#*|}
    for up in transposed resize; do
      # shellcheck disable=SC2086
      OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} $G train $args --upsampling $up --seed 1 --json -o "$out/m.safetensors" \
        2>/dev/null | grep '"type":"result"' \
        | python3 -c "import json,sys; v=json.loads(sys.stdin.read()); print('$round $name $up', round(1000*v['elapsed_s']/(v['step']-v['first_step']),1))"
    done
  done
done
rm -rf "$out"
