#!/bin/bash
# Time per training step of `gran train` with the discriminator's augmentation off, at p = 1,
# with R1 every 4 steps, at the defaults, and at the defaults without the canvas penalty (the
# same as the defaults on the digits, which have none), alternated over 3 rounds
# (docs/RESULTS.md, section 11). Needs target/release/gran (make cli) and a shapes folder:
#   cargo run --release --example shapes -- /tmp/shapes
# SETS=shapes (or digits) times one set only. Prints "round data setting ms-per-step" lines.
set -euo pipefail
cd "$(dirname "$0")/.."
G=target/release/gran
SHAPES=${SHAPES:-/tmp/shapes}
out=$(mktemp -d)
for round in 1 2 3; do
  for set in "digits|--data data/mnist10k -T 3 --width-scale 0.25 -n 200" \
             "shapes|--data $SHAPES --image-size 32 --channels 3 -T 3 --width-scale 0.125 -n 80"; do
    name=${set%%|*}; args=${set#*|}
    [[ ${SETS:-digits shapes} == *$name* ]] || continue
    for s in "off|--augment off --r1-gamma 0" "p1|--augment fixed --augment-p 1 --r1-gamma 0" \
             "r1|--augment off --r1-gamma 10" "default|" "no-canvas|--canvas-penalty 0"; do
      sn=${s%%|*}; sa=${s#*|}
      # shellcheck disable=SC2086
      OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} $G train $args $sa --seed 1 --json -o "$out/m.safetensors" 2>/dev/null \
        | grep '"type":"result"' \
        | python3 -c "import json,sys; v=json.loads(sys.stdin.read()); print('$round $name $sn', round(1000*v['elapsed_s']/(v['step']-v['first_step']),1))"
    done
  done
done
rm -rf "$out"
