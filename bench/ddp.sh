#!/bin/bash
# Data-parallel speed on this machine: the demo's T = 3 job (width 1/4, global batch 64) as
# 1 process x 2 libtorch threads against 2 processes x 1 thread (torchrun, Gloo over 127.0.0.1),
# alternated for ROUNDS rounds of STEPS steps. Prints each run's images/s (gran train's final
# line) and the distributed runs' all-reduce time per step.
#   bash bench/ddp.sh [ROUNDS] [STEPS]      (from the repository root, after make cli)
set -u
ROUNDS=${1:-3}
STEPS=${2:-200}
GRAN=target/release/gran
TORCHRUN=.venv/bin/torchrun
TMP=$(mktemp -d)
ARGS="--data data/mnist10k --width-scale 0.25 -T 3 --seed 1 --iterations $STEPS --report-every $STEPS"
for r in $(seq 1 "$ROUNDS"); do
    OMP_NUM_THREADS=2 $GRAN train $ARGS -o "$TMP/one.safetensors" > "$TMP/one.out" 2> "$TMP/one.err"
    one=$(sed -n 's/.*(\([0-9.]*\) img\/s).*/\1/p' "$TMP/one.out")
    OMP_NUM_THREADS=1 $TORCHRUN --no-python --nproc-per-node=2 --master-port=$((29600 + r)) --local-ranks-filter 0 \
        $GRAN train --distributed $ARGS -o "$TMP/two.safetensors" > "$TMP/two.out" 2> "$TMP/two.err"
    two=$(sed -n 's/.*(\([0-9.]*\) img\/s).*/\1/p' "$TMP/two.out" | head -n1)
    red=$(grep -h -o 'all-reduce [0-9.]* ms per step ([0-9.]*%' "$TMP/two.err" "$TMP/two.out" | head -n1)
    echo "round $r: 1 process x 2 threads ${one:-?} img/s; 2 processes x 1 thread ${two:-?} img/s; $red"
done
rm -rf "$TMP"
