#!/bin/bash
# Time per training step of `gran train` on the digits, unconditional against class-conditional
# (--conditional: the label embedding and the projection discriminator), alternated over
# ROUNDS rounds (default 3; docs/RESULTS.md, section 13). Needs target/release/gran (make cli).
# Prints "round setting ms-per-step" lines; run it with the machine otherwise idle.
set -euo pipefail
cd "$(dirname "$0")/.."
G=target/release/gran
out=$(mktemp -d)
for round in $(seq 1 "${ROUNDS:-3}"); do
  for s in "unconditional|" "conditional|--conditional"; do
    sn=${s%%|*}; sa=${s#*|}
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} $G train --data data/mnist10k -T 3 --width-scale 0.25 -n "${STEPS:-300}" \
        $sa --seed 1 --json -o "$out/m.gran" 2>/dev/null \
      | grep '"type":"result"' \
      | python3 -c "import json,sys; v=json.loads(sys.stdin.read()); print('$round $sn', round(1000*v['elapsed_s']/(v['step']-v['first_step']),1))"
  done
done
rm -rf "$out"
