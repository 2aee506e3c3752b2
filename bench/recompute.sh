#!/bin/bash
# Peak memory and time per training step of `gran train` with and without --recompute, for
# T = 1, 5 and 16 at width scale 0.5, batch 256, on the built-in digits (docs/RESULTS.md,
# "Many drawing steps"). The two sides alternate within each round. Needs target/release/gran
# (make cli) and /usr/bin/time (GNU time). Prints "round T mode peak-MiB ms-per-step" lines;
# ms per step is over the run's last STEPS - 2 steps (the first two warm the allocator up).
#   ROUNDS=3 STEPS=12 bash bench/recompute.sh
set -euo pipefail
cd "$(dirname "$0")/.."
G=target/release/gran
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-12}
TS=${TS:-"1 5 16"}
out=$(mktemp -d)
for round in $(seq "$ROUNDS"); do
  for t in $TS; do
    for mode in stored recompute; do
      flag=""; [ "$mode" = recompute ] && flag=--recompute
      # shellcheck disable=SC2086
      OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} /usr/bin/time -v -o "$out/time" $G train --data data/mnist10k \
        -T "$t" --width-scale 0.5 -b 256 -n "$STEPS" --report-every 1 --seed 1 $flag --json \
        -o "$out/m.safetensors" > "$out/log" 2>/dev/null
      kib=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$out/time")
      ms=$(python3 - "$out/log" "$STEPS" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
prog = {v["step"]: v["elapsed_s"] for v in lines if v.get("type") == "progress"}
n = int(sys.argv[2])
print(round(1000 * (prog[n] - prog[2]) / (n - 2), 1))
PY
)
      echo "$round $t $mode $((kib / 1024)) $ms"
    done
  done
done
rm -rf "$out"
