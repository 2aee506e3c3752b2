#!/usr/bin/env bash
# gran on a GPU machine, in one call: runs what `make gpu-check` built (target/gpu) against the
# machine's own PyTorch and writes a summary, the logs and a sample grid under OUT.
#
#   bash gpu/check.sh [--device cuda|cpu] [--budget SECONDS] [--out DIR] [--bin DIR] [--stages RE]
#
# Defaults: --device cuda, --budget $GRAN_CHECK_BUDGET or 540, --out $OUT or out/gpu-check,
# --bin target/gpu, every stage but small-sets (--stages 'c-tests|mnist': only those, e.g. to
# rerun what failed; the budget is then theirs). Python: $PYTHON, else
# /opt/torch/.venv/bin/python3, .venv/bin/python, python3; libtorch is that Python's torch/lib
# (LD_LIBRARY_PATH), not the one the binaries were built against. `--device cpu` is the dry run
# (`make gpu-check-dry`, part of `make test`): the same stages on the CPU, each cut down to a few
# tests, rows and seconds.
#
# Stages, in order; a failure or a timeout stops nothing:
#   device      CUDA found and the device named (torch's view, nvidia-smi, libgran's libraries)
#   rust-tests  the Rust tests that create models and evaluators, on the device (GRAN_TEST_DEVICE)
#   c-tests     the C tests on the device, under AddressSanitizer + UBSan (protect_shadow_gap=0)
#   bench-fp32, bench-bf16        bench/compare.py rows: gran against PyTorch eager
#   compile-fp32, compile-bf16    the same against torch.compile (reduce-overhead, max-autotune),
#                                 compilation time apart
#   cuda-graphs sampling through a captured CUDA graph (gran::cuda_graph) against eager sampling,
#               batch 1 and 64 (on the CPU: the capture must be refused cleanly)
#   recompute   training T = 1 and T = 16 at the paper's widths, batch 256, with and without
#               per-step recomputation: peak device memory (nvidia-smi) and time per step
#   stream      the digits packed as a .npy (gran pack), then training T = 3 at the paper's widths
#               with the minibatches read from the file against the set loaded whole: ms per step
#   upsampling  training T = 3 at the paper's widths with the transposed and the resizing
#               generator (--upsampling resize): ms per step; a sample of the resizing one
#   augment     training T = 3 on 32x32 colour shapes: ms per step without augmentation, with
#               every augmentation at p = 1, with the defaults (adaptive p, R1, the canvas
#               penalty), and with the defaults but no canvas penalty
#   mnist       T = 3 at the paper's widths on data/mnist10k for about 2 minutes, scored by the
#               evaluator; its sample grid is OUT/mnist_t3_samples.png
#   small-sets  only when --stages names it (after `make colour-data gpu-check`): the small
#               sets' table of docs/RESULTS.md, each set of at most 3,000 images without
#               augmentation, R1 or the canvas penalty and with the defaults, seeds 1-5, many
#               runs at once (gpu/small_sets.py); e.g. `bash gpu/check.sh --stages 'device|small-sets' --budget 560`
# and the peak device memory of each stage (nvidia-smi, whole device) and of each PyTorch row.
#
# The budget is split into shares, one per stage; time a stage leaves unused goes to the next
# ones; each stage runs under `timeout` with what is left minus the shares of the stages after
# it, so the whole run ends within the budget. Every stage writes its line to OUT/summary.txt
# whatever happens (ok, FAILED, TIMEOUT, SKIPPED), and OUT/logs.tar.gz is rewritten after each
# stage (a run killed from outside still leaves what was done). OUT holds three files:
# summary.txt, logs.tar.gz, mnist_t3_samples.png. Exit status 0 when every stage passed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/gpu/check.sh"

# ------------------------------------------------------------------------------------------
# Stages (run as `check.sh --stage NAME` under timeout, with the environment set up below).

# Rows of bench/compare.py (regular expressions) and the settings of each device.
rows_for() { # $1: bench-fp32 | bench-bf16 | compile-fp32 | compile-bf16
    case "$DEVICE:$1" in
        # Each row is two fresh processes (about 15 s on the H200 machine, mostly start-up).
        cuda:bench-fp32) echo 'train 28x28x1 T=(1|3) batch 64$|sample 28x28x1 T=3 count (1|64)$' ;;
        cuda:bench-bf16) echo 'train 28x28x1 T=3 batch 64$|sample 28x28x1 T=3 count 64$' ;;
        cuda:compile-*) echo 'train 28x28x1 T=3 batch 64$' ;;
        cpu:*) echo 'sample 28x28x1 T=3 count 64$' ;;
    esac
}

note() { echo "$*" > "$WORK/$STAGE.note"; }

stage_device() {
    local ok=0
    echo "== libgran's libraries (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)"
    ldd "$BIN/lib/libgran.so.0"
    if ldd "$BIN/lib/libgran.so.0" | grep -q 'not found'; then
        echo "libgran.so.0: libraries not found"
        ok=1
    fi
    echo "== PyTorch"
    "$PY" - "$DEVICE" > "$WORK/device.py.out" <<'EOF'
import sys, torch
device = sys.argv[1]
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
if device == "cuda":
    if not torch.cuda.is_available():
        print("NOTE CUDA not available to PyTorch")
        sys.exit(1)
    p = torch.cuda.get_device_properties(0)
    print(f"{torch.cuda.device_count()} device(s); 0: {p.name}, capability {p.major}.{p.minor}, "
          f"{p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs, bf16 {torch.cuda.is_bf16_supported()}")
    x = torch.randn(1024, 1024, device="cuda")
    print(f"a matmul on the device: {float((x @ x).abs().sum()):.1f}")
    print(f"NOTE {p.name}, torch {torch.__version__}")
else:
    import platform
    print(f"NOTE CPU ({platform.machine()}, {torch.get_num_threads()} threads), torch {torch.__version__}")
EOF
    local rc=$?
    cat "$WORK/device.py.out"
    [ $rc -eq 0 ] || ok=1
    local what
    what=$(sed -n 's/^NOTE //p' "$WORK/device.py.out")
    if [ "$DEVICE" = cuda ]; then
        echo "== nvidia-smi"
        if nvidia-smi; then
            what="$what, driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n 1)"
        else
            echo "nvidia-smi failed"
        fi
    else
        lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1
    fi
    note "$what"
    return $ok
}

stage_rust_tests() {
    local status=0 t name filters summary=""
    for t in "$BIN"/tests/*; do
        name=$(basename "$t")
        filters=""
        if [ "$DEVICE" = cpu ]; then
            case $name in
                model) filters="models_live_on_the_test_device samples_have_the_right_shape_and_range" ;;
                evaluator) filters="frechet_distance" ;;
                ema) filters="schedules_are_functions_of_the_step" ;;
                export) filters="a_model_without_averaging_exports_its_raw_generator" ;;
            esac
        fi
        echo "== $name (GRAN_TEST_DEVICE=$DEVICE) $filters"
        # shellcheck disable=SC2086
        (cd "$ROOT" && GRAN_TEST_DEVICE=$DEVICE CARGO_MANIFEST_DIR="$ROOT" "$t" $filters) > "$WORK/rust-$name.log" 2>&1
        local rc=$?
        cat "$WORK/rust-$name.log"
        [ $rc -eq 0 ] || status=1
        summary="$summary $name: $(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 passed, \2 failed/p' "$WORK/rust-$name.log" | head -n 1)"
        [ $rc -eq 0 ] || summary="$summary (exit $rc)"
        summary="$summary;"
    done
    note "${summary# }"
    return $status
}

stage_c_tests() {
    local status=0 t names summary=""
    # As `make test-c`, and protect_shadow_gap=0: the CUDA driver maps memory in ASan's shadow gap.
    local asan="detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1"
    [ "$DEVICE" = cuda ] && asan="$asan:protect_shadow_gap=0"
    local all="test_api test_threads test_metrics test_cpp"
    # On CUDA the four programs run at once (each test is a child process that starts CUDA: about
    # 4 s apiece under the sanitizers; one after the other they took over 90 s); on the CPU, one
    # after the other, a few tests each.
    declare -A names=()
    if [ "$DEVICE" = cpu ]; then
        names[test_api]="version device sample_determinism"
        names[test_threads]="cancel_from_thread"
        names[test_metrics]="gam_defaults evaluator_defaults"
    fi
    local pids=()
    for t in $all; do
        # shellcheck disable=SC2086
        (cd "$ROOT" && GRAN_TEST_DEVICE=$DEVICE ASAN_OPTIONS=$asan \
            LSAN_OPTIONS="suppressions=$ROOT/tests/c/lsan.supp:print_suppressions=1" \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 OMP_NUM_THREADS=1 \
            "$BIN/ctest/$t" ${names[$t]:-}; echo $? > "$WORK/c-$t.rc") > "$WORK/c-$t.log" 2>&1 &
        pids+=($!)
        [ "$DEVICE" = cpu ] && wait $!
    done
    wait "${pids[@]}"
    for t in $all; do
        echo "== $t (GRAN_TEST_DEVICE=$DEVICE, AddressSanitizer + UBSan) ${names[$t]:-}"
        local rc
        rc=$(cat "$WORK/c-$t.rc" 2> /dev/null || echo 1)
        cat "$WORK/c-$t.log"
        if [ $rc -eq 0 ]; then
            if [ $t = test_cpp ]; then
                summary="$summary $t: passed"
            else
                summary="$summary $t: $(grep -o '[0-9]* tests passed' "$WORK/c-$t.log" | tail -n 1)"
            fi
        else
            status=1
            summary="$summary $t: $(grep -o '[0-9]* of [0-9]* tests FAILED' "$WORK/c-$t.log" | tail -n 1) (exit $rc)"
        fi
        summary="$summary;"
    done
    note "${summary# }"
    return $status
}

bench() { # $1: fp32 | bf16, $2: bench | compile
    local extra=()
    if [ "$2" = compile ]; then
        if [ "$DEVICE" = cuda ]; then
            # reduce-overhead (CUDA graphs) is the mode for launch-bound models; max-autotune's
            # tuning takes minutes more than a check has (GRAN_CHECK_COMPILE_MODES to change).
            extra=(--compile "${GRAN_CHECK_COMPILE_MODES:-reduce-overhead}")
        else
            # The dry run: the compile path (dynamo tracing, guards), no code generation.
            extra=(--compile default --compile-backend eager)
        fi
    fi
    if [ "$DEVICE" = cuda ]; then
        extra+=(--warmup 3 --reps 10)
    else
        extra+=(--warmup 1 --reps 2 --scale 0.125)
    fi
    (cd "$ROOT" && GRAN_BENCH_BIN="$BIN/bin/bench_rows" "$PY" bench/compare.py --device "$DEVICE" --precision "$1" \
        --only "$(rows_for "$2-$1")" --json "$WORK/$2-$1.json" "${extra[@]}") 2>&1 | tee "$WORK/$2-$1.table"
    local rc=${PIPESTATUS[0]}
    local n
    n=$(grep -c '^[a-z]* [0-9]*x' "$WORK/$2-$1.table")
    if [ "$2" = compile ]; then
        note "$n rows; $(grep -c 'torch.compile [a-z-]* ([a-z_]*): [0-9]' "$WORK/$2-$1.table") compiled timings, $(grep -c 'torch.compile .*FAILED' "$WORK/$2-$1.table") compile failures"
        grep -q 'torch.compile .*FAILED' "$WORK/$2-$1.table" && rc=1
    else
        note "$n rows (gran s, torch s, torch/gran: see below)"
    fi
    [ "$n" -gt 0 ] || rc=1
    return $rc
}

stage_cuda_graphs() {
    local status=0 count mode summary="" scale=1 reps=20
    [ "$DEVICE" = cpu ] && scale=0.125 reps=2
    for count in 1 64; do
        for mode in eager graph; do
            echo "== sample 28x28x1 T=3 count $count, $mode"
            (cd "$ROOT" && GRAN_BENCH_CUDA_GRAPH=$([ $mode = graph ] && echo 1 || echo 0) "$BIN/bin/bench_rows" \
                sample 28 1 3 $count $scale "$DEVICE" 3 $reps fp32) > "$WORK/graphs-$count-$mode.json" 2> "$WORK/graphs-$count-$mode.err"
            local rc=$?
            cat "$WORK/graphs-$count-$mode.json" "$WORK/graphs-$count-$mode.err"
            if [ "$DEVICE" = cpu ] && [ $mode = graph ]; then
                # On the CPU the capture is refused: exit status 3 and a message naming CUDA.
                if [ $rc -eq 3 ] && grep -q CUDA "$WORK/graphs-$count-$mode.err"; then
                    summary="$summary count $count: capture refused on the CPU (as it should be);"
                else
                    summary="$summary count $count: capture NOT refused cleanly (exit $rc);"
                    status=1
                fi
                continue
            fi
            [ $rc -eq 0 ] || { status=1; summary="$summary count $count $mode: exit $rc;"; continue; }
        done
        if [ "$DEVICE" = cuda ] && [ -s "$WORK/graphs-$count-graph.json" ]; then
            summary="$summary $("$PY" -c '
import json, statistics, sys
e, g = (statistics.median(json.loads(open(f).read().strip().splitlines()[-1])["times"]) for f in sys.argv[1:3])
print(f"count {sys.argv[3]}: eager {e * 1e3:.3f} ms, graph {g * 1e3:.3f} ms, eager/graph {e / g:.2f};")
' "$WORK/graphs-$count-eager.json" "$WORK/graphs-$count-graph.json" "$count")"
        fi
    done
    # The captured training step (TrainConfig::cuda_graph) against the eager one: T = 3, batch 64,
    # the first 5 steps (3 eager, the capture, one replay) left out of the times. On the CPU the
    # setting must run the eager step and say so.
    local steps=40 warm=5 batch=64
    [ "$DEVICE" = cpu ] && steps=1 warm=1 batch=8
    for mode in eager graph; do
        echo "== train 28x28x1 T=3 batch $batch, $mode"
        (cd "$ROOT" && GRAN_BENCH_CUDA_GRAPH=$([ $mode = graph ] && echo 1 || echo 0) "$BIN/bin/bench_rows" \
            train 28 1 3 $batch $scale "$DEVICE" $warm $steps fp32) > "$WORK/graphs-train-$mode.json" 2> "$WORK/graphs-train-$mode.err"
        local rc=$?
        cat "$WORK/graphs-train-$mode.json" "$WORK/graphs-train-$mode.err"
        [ $rc -eq 0 ] || { status=1; summary="$summary train $mode: exit $rc;"; }
    done
    if [ "$DEVICE" = cpu ]; then
        if grep -q "run eagerly" "$WORK/graphs-train-graph.err"; then
            summary="$summary training: the CPU ran the eager step (as it should);"
        else
            summary="$summary training: no 'run eagerly' line on the CPU;"
            status=1
        fi
    elif [ -s "$WORK/graphs-train-graph.json" ]; then
        grep -q "capture failed" "$WORK/graphs-train-graph.err" && status=1
        summary="$summary $("$PY" -c '
import json, statistics, sys
e, g = (statistics.median(json.loads(open(f).read().strip().splitlines()[-1])["times"]) for f in sys.argv[1:3])
print(f"training T=3 b64: eager {e * 1e3:.2f} ms, graph {g * 1e3:.2f} ms, eager/graph {e / g:.2f};")
' "$WORK/graphs-train-eager.json" "$WORK/graphs-train-graph.json")"
    fi
    note "${summary# }"
    return $status
}

stage_recompute() {
    local status=0 t mode summary="" scale=1 batch=256 warm=3 reps=10
    [ "$DEVICE" = cpu ] && scale=0.125 batch=8 warm=1 reps=1
    for t in 1 16; do
        for mode in stored recompute; do
            echo "== train 28x28x1 T=$t batch $batch width scale $scale, $mode"
            local mem="$WORK/recompute-$t-$mode.mem" smi=""
            if [ "$DEVICE" = cuda ]; then
                nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$mem" 2> /dev/null &
                smi=$!
            fi
            (cd "$ROOT" && GRAN_BENCH_RECOMPUTE=$([ $mode = recompute ] && echo 1 || echo 0) "$BIN/bin/bench_rows" \
                train 28 1 $t $batch $scale "$DEVICE" $warm $reps fp32) > "$WORK/recompute-$t-$mode.json" 2> "$WORK/recompute-$t-$mode.err"
            local rc=$?
            [ -n "$smi" ] && { kill "$smi" 2> /dev/null; wait "$smi" 2> /dev/null; }
            cat "$WORK/recompute-$t-$mode.json" "$WORK/recompute-$t-$mode.err"
            [ $rc -eq 0 ] || { status=1; summary="$summary T=$t $mode: exit $rc;"; continue; }
            summary="$summary T=$t $mode $("$PY" -c '
import json, statistics, sys
times = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["times"]
try:
    peak = max(int(l) for l in open(sys.argv[2]) if l.strip().isdigit())
    peak = f"{peak} MiB"
except (OSError, ValueError):
    peak = "n/a"
print(f"{statistics.median(times) * 1e3:.1f} ms/step, peak {peak};")
' "$WORK/recompute-$t-$mode.json" "$mem")"
        done
    done
    note "${summary# }"
    return $status
}

# Milliseconds per training step in a `gran train --json --report-every 1` log: from the 5th
# step's report (or the middle one's, in a short run) to the last.
ms_per_step() {
    "$PY" -c '
import json, sys
p = {v["step"]: v["elapsed_s"] for v in map(json.loads, open(sys.argv[1])) if v.get("type") == "progress"}
n = max(p)
first = min(5, n // 2)
print(f"{1e3 * (p[n] - p[first]) / max(n - first, 1):.2f} ms/step", end="")
' "$1"
}

stage_stream() {
    local status=0 mode summary="" scale=1 steps=60
    [ "$DEVICE" = cpu ] && scale=0.0625 steps=4
    echo "== gran pack data/mnist10k"
    (cd "$ROOT" && "$BIN/bin/gran" pack data/mnist10k -o "$WORK/mnist.npy" --quiet) || return 1
    for mode in streamed in-memory; do
        local flag=""
        [ $mode = in-memory ] && flag="--stream off"
        echo "== train T=3 width scale $scale, $steps steps, $mode"
        # shellcheck disable=SC2086
        (cd "$ROOT" && "$BIN/bin/gran" train --data "$WORK/mnist.npy" $flag -T 3 --width-scale $scale -b 64 \
            -n $steps --report-every 1 --json --device "$DEVICE" -o "$WORK/stream.safetensors") \
            > "$WORK/stream-$mode.json" 2> "$WORK/stream-$mode.err"
        local rc=$?
        tail -n 2 "$WORK/stream-$mode.json"; cat "$WORK/stream-$mode.err"
        [ $rc -eq 0 ] || { status=1; summary="$summary $mode: exit $rc;"; continue; }
        summary="$summary $mode $(ms_per_step "$WORK/stream-$mode.json");"
    done
    note "${summary# }"
    return $status
}

# A class-conditional model (labels in, the projection discriminator) trained with the step
# eager and captured as a CUDA graph (the labels are static inputs of the graph like the
# latents): ms per step of each, and the capture must not fail. On the CPU the captured form
# runs the eager step (warnings only on stderr: a failed capture is one).
stage_conditional() {
    local status=0 mode summary="" scale=1 steps=60
    [ "$DEVICE" = cpu ] && scale=0.0625 steps=3
    for mode in eager graph; do
        local flag=""
        [ $mode = graph ] && flag="--cuda-graph"
        echo "== train --conditional T=3 width scale $scale, $steps steps, $mode"
        # shellcheck disable=SC2086
        (cd "$ROOT" && "$BIN/bin/gran" train --data data/mnist10k --conditional $flag -T 3 \
            --width-scale $scale -b 64 -n $steps --report-every 1 --json --device "$DEVICE" \
            -o "$WORK/conditional.gran") > "$WORK/conditional-$mode.json" 2> "$WORK/conditional-$mode.err"
        local rc=$?
        tail -n 2 "$WORK/conditional-$mode.json"; cat "$WORK/conditional-$mode.err"
        [ $rc -eq 0 ] || { status=1; summary="$summary $mode: exit $rc;"; continue; }
        grep -q "capture failed" "$WORK/conditional-$mode.err" && { status=1; summary="$summary $mode: capture failed;"; }
        summary="$summary $mode $(ms_per_step "$WORK/conditional-$mode.json");"
    done
    echo "== sample --per-class"
    (cd "$ROOT" && "$BIN/bin/gran" sample "$WORK/conditional.gran" --per-class 8 --device "$DEVICE" \
        -o "$WORK/per_class.png") || { status=1; summary="$summary sample --per-class failed;"; }
    note "${summary# }"
    return $status
}

stage_upsampling() {
    # The resizing generator (--upsampling resize, computed as a 6x6 transposed convolution)
    # against the transposed one: ms per training step at the paper's widths, and a sample.
    local status=0 kind summary="" scale=1 steps=60
    [ "$DEVICE" = cpu ] && scale=0.0625 steps=3
    for kind in transposed resize; do
        echo "== train --upsampling $kind T=3 width scale $scale, $steps steps"
        (cd "$ROOT" && "$BIN/bin/gran" train --data data/mnist10k --upsampling $kind -T 3 --width-scale $scale \
            -b 64 -n $steps --report-every 1 --json --device "$DEVICE" -o "$WORK/$kind.gran") \
            > "$WORK/upsampling-$kind.json" 2> "$WORK/upsampling-$kind.err"
        local rc=$?
        tail -n 2 "$WORK/upsampling-$kind.json"; cat "$WORK/upsampling-$kind.err"
        [ $rc -eq 0 ] || { status=1; summary="$summary $kind: exit $rc;"; continue; }
        summary="$summary $kind $(ms_per_step "$WORK/upsampling-$kind.json");"
    done
    echo "== sample the resizing generator"
    (cd "$ROOT" && "$BIN/bin/gran" sample "$WORK/resize.gran" --count 64 --device "$DEVICE" \
        -o "$WORK/resize.png") || { status=1; summary="$summary sample failed;"; }
    note "${summary# }"
    return $status
}

# The cost of what keeps the discriminator from memorising a small set (the aim: at most 10%
# more time per step), on the shapes (3,000 PNGs of 32x32x3, written by bin/shapes) with the
# widths and rates gran train picks for 32x32: ms per step with no augmentation and no R1, with
# every augmentation at p = 1 and no R1, with the defaults (adaptive p, R1 and the canvas
# penalty by image size), and with the defaults but no canvas penalty.
stage_augment() {
    local status=0 mode flags summary="" steps=60 count=3000 scale=""
    [ "$DEVICE" = cpu ] && steps=4 count=64 scale="--width-scale 0.0625"
    echo "== bin/shapes: $count images of 32x32x3"
    "$BIN/bin/shapes" "$WORK/shapes" $count 32 || return 1
    for mode in off p1 defaults no-canvas; do
        case $mode in
            off) flags="--augment off --r1-gamma 0" ;;
            p1) flags="--augment fixed --augment-p 1 --r1-gamma 0" ;;
            defaults) flags="" ;;
            no-canvas) flags="--canvas-penalty 0" ;;
        esac
        echo "== train T=3 on the shapes, $steps steps, $mode: $flags"
        # shellcheck disable=SC2086
        (cd "$ROOT" && "$BIN/bin/gran" train --data "$WORK/shapes" $flags $scale -T 3 -b 64 -n $steps \
            --report-every 1 --json --device "$DEVICE" -o "$WORK/augment-$mode.gran") \
            > "$WORK/augment-$mode.json" 2> "$WORK/augment-$mode.err"
        local rc=$?
        tail -n 2 "$WORK/augment-$mode.json"; cat "$WORK/augment-$mode.err"
        [ $rc -eq 0 ] || { status=1; summary="$summary $mode: exit $rc;"; continue; }
        summary="$summary $mode $(ms_per_step "$WORK/augment-$mode.json");"
        rm -f "$WORK/augment-$mode.gran"
    done
    note "${summary# }"
    return $status
}

# docs/RESULTS.md's small-sets table (opt-in: `--stages small-sets`, after `make colour-data
# gpu-check`): each set of at most 3,000 images trained without augmentation, R1 or the canvas
# penalty and with the defaults, seeds 1-5, many runs at once (gpu/small_sets.py: its
# settings, GRAN_SETS_*).
stage_small_sets() {
    "$PY" "$ROOT/gpu/small_sets.py" --bin "$BIN" --work "$WORK" --device "$DEVICE" --seconds "$LIMIT" \
        --table "$WORK/small-sets.table" | tee "$WORK/small-sets.out"
    local rc=${PIPESTATUS[0]}
    note "$(sed -n 's/^NOTE //p' "$WORK/small-sets.out")"
    return $rc
}

stage_mnist() {
    local seconds scale epochs
    if [ "$DEVICE" = cuda ]; then
        # About 2 minutes of training; the rest of the stage's time is the evaluator's.
        seconds=$((LIMIT - 55))
        [ $seconds -gt 120 ] && seconds=120
        [ $seconds -lt 10 ] && seconds=10
        scale=1
        epochs=5
    else
        seconds=3
        scale=0.125
        epochs=1
    fi
    echo "== experiment: T = 3, width scale $scale, $seconds s of training"
    rm -rf "$WORK/mnist"
    (cd "$ROOT" && "$BIN/bin/experiment" --t 3 --width-scale "$scale" --seeds 1 --no-gam --seconds "$seconds" \
        --evaluator-epochs "$epochs" --out "$WORK/mnist") 2>&1 | tee "$WORK/mnist.out"
    local rc=${PIPESTATUS[0]}
    local png="$WORK/mnist/experiment_mnist10k_t3_seed1.png"
    if [ -f "$png" ]; then cp "$png" "$OUT/mnist_t3_samples.png"; else rc=1; fi
    # | GRAN T=3 | seed | FD | classifier score | classes >= 2% | min class share | NN ratio | ...
    local row steps
    row=$(grep '^| GRAN T=3 |' "$WORK/mnist.out" | head -n 1)
    steps=$(sed -n 's/.*: \([0-9]* steps in [0-9.]* s ([0-9.]* steps\/s\).*/\1)/p' "$WORK/mnist.out" | head -n 1)
    note "width scale $scale: $steps; $(echo "$row" | awk -F'|' '{gsub(/ /, "", $4); gsub(/ /, "", $5); gsub(/ /, "", $6); print "FD " $4 ", classifier score " $5 ", classes>=2% " $6}'); $(grep -o 'evaluator held-out accuracy: [0-9.]*' "$WORK/mnist.out")"
    [ -n "$row" ] || rc=1
    return $rc
}

if [ "${1:-}" = --stage ]; then
    STAGE=$2
    case $STAGE in
        device) stage_device ;;
        rust-tests) stage_rust_tests ;;
        c-tests) stage_c_tests ;;
        bench-fp32) bench fp32 bench ;;
        bench-bf16) bench bf16 bench ;;
        compile-fp32) bench fp32 compile ;;
        compile-bf16) bench bf16 compile ;;
        cuda-graphs) stage_cuda_graphs ;;
        recompute) stage_recompute ;;
        stream) stage_stream ;;
        conditional) stage_conditional ;;
        upsampling) stage_upsampling ;;
        augment) stage_augment ;;
        mnist) stage_mnist ;;
        small-sets) stage_small_sets ;;
        *) echo "no stage $STAGE"; exit 2 ;;
    esac
    exit $?
fi

# ------------------------------------------------------------------------------------------
# The driver.

DEVICE=cuda
BUDGET=${GRAN_CHECK_BUDGET:-540}
OUT=${OUT:-out/gpu-check}
BIN=target/gpu
ONLY=""
while [ $# -gt 0 ]; do
    case $1 in
        --device) DEVICE=$2; shift 2 ;;
        --budget) BUDGET=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        --stages) ONLY=$2; shift 2 ;;
        -h | --help) sed -n '2,30p' "$SELF"; exit 0 ;;
        *) echo "gpu/check.sh: unknown argument $1"; exit 2 ;;
    esac
done
case $DEVICE in cuda | cpu) ;; *) echo "gpu/check.sh: --device cuda or cpu"; exit 2 ;; esac
case $BUDGET in '' | *[!0-9]*) echo "gpu/check.sh: --budget takes whole seconds"; exit 2 ;; esac
START=$(date +%s)
DEADLINE=$((START + BUDGET))
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BIN=$(cd "$ROOT" && cd "$BIN" && pwd) || { echo "gpu/check.sh: no $BIN: run make gpu-check first"; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gran-check.XXXXXX")
rm -f "$OUT/summary.txt" "$OUT/logs.tar.gz" "$OUT/mnist_t3_samples.png"

if [ -z "${PYTHON:-}" ]; then
    for c in /opt/torch/.venv/bin/python3 "$ROOT/.venv/bin/python" python3; do
        if command -v "$c" > /dev/null; then PYTHON=$c; break; fi
    done
fi
PY=$PYTHON
TORCH_LIB=$("$PY" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("torch").origin), "lib"))')
# libtorch of this machine's PyTorch first (the binaries' RUNPATH names the build machine's),
# then the carried lib/ (libgran, the sanitizer run-times).
export LD_LIBRARY_PATH="$TORCH_LIB:$BIN/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ "$DEVICE" = cpu ] && export CUDA_VISIBLE_DEVICES=""
export DEVICE BIN WORK OUT PY ROOT

# Shares of the budget (seconds of a 810 s budget on CUDA, small-sets apart; of a 470 s one on
# the CPU), scaled to the budget given. The CUDA shares follow the runs on an H200 (2026-11-29,
# 2026-12-04): start-up of CUDA in each process dominates the test and benchmark stages; the C
# tests under ASan ran past 77 s, and torch.compile's reduce-overhead mode fails there within
# seconds.
# small-sets runs only when --stages names it: it is a measurement of minutes, not a check.
STAGES=(device rust-tests c-tests bench-fp32 bench-bf16 compile-fp32 compile-bf16 cuda-graphs recompute stream conditional upsampling augment mnist small-sets)
OPT_IN=" small-sets "
if [ "$DEVICE" = cuda ]; then
    SHARES=(10 50 170 70 40 60 30 45 50 40 35 35 45 130 500)
else
    SHARES=(10 45 50 35 35 45 45 20 20 20 20 20 20 45 40)
fi
# --stages REGEX: only the stages it matches (a rerun of what failed); the others get no share.
declare -A ASKED=()
for i in "${!STAGES[@]}"; do
    if { [ -z "$ONLY" ] && [[ $OPT_IN != *" ${STAGES[$i]} "* ]]; } || { [ -n "$ONLY" ] && [[ ${STAGES[$i]} =~ ^($ONLY)$ ]]; }; then
        ASKED[${STAGES[$i]}]=1
    else
        SHARES[$i]=0
    fi
done
[ ${#ASKED[@]} -gt 0 ] || { echo "gpu/check.sh: --stages $ONLY matches no stage (${STAGES[*]})"; exit 2; }
total=0
for s in "${SHARES[@]}"; do total=$((total + s)); done
for i in "${!SHARES[@]}"; do SHARES[$i]=$((SHARES[i] * BUDGET / total)); done

SUMMARY="$OUT/summary.txt"
{
    echo "gran gpu-check: device $DEVICE, budget $BUDGET s, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(hostname)"
    echo "python $PY; libtorch $TORCH_LIB"
    sed -n 's/^commit: /build: commit /p; s/^built: /build: /p' "$BIN/MANIFEST.txt" 2>/dev/null
    echo
    printf '%-13s %-8s %6s  %s\n' stage status seconds result
} > "$SUMMARY"

# The stages' text (logs, JSON progress, notes) and small pictures: files under 1 MiB, the
# generated data (shapes/) left out. Models, packed sets and image folders would make the archive
# too large to come back from the GPU machine, and compressing them after every stage costs
# minutes of the budget.
pack_logs() {
    (cd "$WORK" && find . -path ./shapes -prune -o -type f -size -1024k -print0 \
        | tar --null -czf "$OUT/logs.tar.gz.tmp" -T -) 2>/dev/null && mv "$OUT/logs.tar.gz.tmp" "$OUT/logs.tar.gz"
}

failed=0
for i in "${!STAGES[@]}"; do
    STAGE=${STAGES[$i]}
    if [ -z "${ASKED[$STAGE]:-}" ]; then
        printf '%-13s %-8s %6s  %s\n' "$STAGE" SKIPPED 0 "not asked for (--stages$([[ $OPT_IN == *" $STAGE "* ]] && echo " $STAGE"))" >> "$SUMMARY"
        continue
    fi
    later=0
    for ((j = i + 1; j < ${#STAGES[@]}; j++)); do later=$((later + SHARES[j])); done
    now=$(date +%s)
    LIMIT=$((DEADLINE - now - later))
    if [ $LIMIT -lt 5 ]; then
        printf '%-13s %-8s %6s  %s\n' "$STAGE" SKIPPED 0 "no time left in the budget" >> "$SUMMARY"
        failed=$((failed + 1))
        continue
    fi
    export LIMIT
    mem_pid=""
    if [ "$DEVICE" = cuda ] && command -v nvidia-smi > /dev/null; then
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$WORK/$STAGE.mem" 2> /dev/null &
        mem_pid=$!
    fi
    echo "== [$STAGE] up to $LIMIT s"
    t0=$(date +%s)
    timeout -k 10 "$LIMIT" bash "$SELF" --stage "$STAGE" > "$WORK/$STAGE.log" 2>&1
    rc=$?
    secs=$(($(date +%s) - t0))
    [ -n "$mem_pid" ] && kill "$mem_pid" 2> /dev/null && wait "$mem_pid" 2> /dev/null
    result=$(cat "$WORK/$STAGE.note" 2> /dev/null)
    case $rc in
        0) status=ok ;;
        124 | 137) status=TIMEOUT; result="ran past $LIMIT s; ${result:-see logs/$STAGE.log}" ;;
        *) status=FAILED; result="exit $rc; ${result:-see logs/$STAGE.log}" ;;
    esac
    [ $rc -eq 0 ] || failed=$((failed + 1))
    if [ -s "$WORK/$STAGE.mem" ]; then
        echo "$(sort -n "$WORK/$STAGE.mem" | tail -n 1) MiB" > "$WORK/$STAGE.peak"
    fi
    printf '%-13s %-8s %6s  %s\n' "$STAGE" "$status" "$secs" "$result" >> "$SUMMARY"
    echo "   $status in $secs s: $result"
    pack_logs
done

{
    echo
    echo "total: ${#ASKED[@]} stages run, $((${#ASKED[@]} - failed)) ok, $failed not; $(($(date +%s) - START)) s of $BUDGET"
    echo
    echo "== peak device memory used per stage (nvidia-smi, the whole device; n/a on the CPU)"
    for s in "${STAGES[@]}"; do printf '  %-13s %s\n' "$s" "$(cat "$WORK/$s.peak" 2> /dev/null || echo n/a)"; done
    for s in bench-fp32 bench-bf16 compile-fp32 compile-bf16; do
        if [ -f "$WORK/$s.table" ]; then
            echo
            echo "== $s (bench/compare.py; seconds are medians; torch/gran above 1: gran is faster)"
            cat "$WORK/$s.table"
        fi
    done
    if [ -f "$WORK/mnist.out" ]; then
        echo
        echo "== mnist (examples/experiment; FD and classifier score by the evaluator; the grid: mnist_t3_samples.png)"
        grep -v '^  T=3 seed 1 step' "$WORK/mnist.out"
    fi
    if [ -f "$WORK/small-sets.table" ]; then
        echo
        echo "== small-sets (gpu/small_sets.py; the runs' logs and grids: logs.tar.gz, small-sets/)"
        cat "$WORK/small-sets.table"
    fi
    echo
    echo "== the build (MANIFEST.txt)"
    cat "$BIN/MANIFEST.txt" 2> /dev/null || echo "no $BIN/MANIFEST.txt"
} >> "$SUMMARY"
pack_logs
rm -rf "$WORK"
echo
sed -n '1,/^total:/p' "$SUMMARY"
echo "gpu/check.sh: $SUMMARY, $OUT/logs.tar.gz$([ -f "$OUT/mnist_t3_samples.png" ] && echo ", $OUT/mnist_t3_samples.png")"
[ $failed -eq 0 ]
