"""Side-by-side benchmark: gran (Rust, libtorch) against the PyTorch reference of the same model.

Runs both on this machine in one go and prints, per row, the median seconds of each and the
ratio PyTorch / gran (above 1: gran is faster). Rows: one training iteration (batch 64 and 256;
T = 1, 3, 5; 28x28x1 and 32x32x3 at the paper's widths unless --scale), sampling throughput
(batch 1, 64, 1024) and single-image latency.

    .venv/bin/python bench/compare.py [--device cpu|cuda] [--quick] [--scale S] [--json out.json]
        [--only REGEX] [--warmup N] [--reps N] [--rounds N] [--precision fp32|bf16]
        [--compile MODE[,MODE...]] [--compile-backend inductor|aot_eager|...]

--only runs the rows whose name matches REGEX anywhere (e.g. "32x32x3", "batch 256",
"T=3 batch 64|count 1024$"). Each side of a
row runs in a process of its own; the last two columns are those processes' peak resident
memory (MiB). Before a row is printed, both sides must agree on the parameter counts of G and D
and on the shapes of two samples and of their D outputs. With --rounds N, each row runs N times on each side, alternating gran, PyTorch,
gran, ... (each run with its own warm-up), and the medians are over all N x reps timings: slow
drift in the machine's speed (other tenants of a VM) then falls on both sides alike. With
--precision bf16 both sides compute in bfloat16 mixed precision (gran's GRAN_PRECISION_BF16,
torch.autocast on the reference's side).

--compile adds, per row, the reference with G and D under torch.compile in each MODE ("default",
"reduce-overhead", "max-autotune", ...), each in a process of its own: the median of the timed
repetitions, and apart from it the seconds of the warm-up (compilation, autotuning and CUDA graph
recording happen there; give --warmup 3 or more for reduce-overhead). A mode that fails is
reported with its error and does not stop the others. On CUDA each PyTorch row also reports its
peak allocated GPU memory (torch.cuda.max_memory_allocated).

Each sampling row also prints its FLOP bound on this machine: the generator's forward FLOPs
(torch.utils.flop_counter on the reference: convolutions and matrix multiplies) over the
matrix-multiply rate this process measures on the device (2048x2048 products, in the row's
precision; measured in every round, the fastest kept), and how far each side is from it.
Beside it, the memory side: the generator's weights read once from memory at the rate this
process measures (sums over a 512 MiB array, also the fastest of the rounds), which is what one
image pays when the weights do not stay in cache between calls, and each side against the two
bounds added (a model, not a floor: one image's kernels run one after another, each mostly
reading weights or mostly computing).
"""
import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import Gran  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("GRAN_BENCH_BIN", os.path.join(ROOT, "target", "release", "examples", "bench_rows"))


def gran_row(kind, size, channels, steps, n, scale, device, warmup, reps, precision):
    out = subprocess.run(
        [BIN, kind, str(size), str(channels), str(steps), str(n), str(scale), device, str(warmup), str(reps),
         precision],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def torch_row(kind, size, channels, steps, n, scale, device, warmup, reps, precision, compile_mode="", backend=""):
    """The PyTorch side of a row, in a process of its own (as gran's), so that its peak memory is
    this row's alone. With `compile_mode`, G and D run under torch.compile."""
    args = [kind, str(size), str(channels), str(steps), str(n), str(scale), device, str(warmup), str(reps), precision]
    if compile_mode:
        args += [compile_mode, backend or "inductor"]
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--torch-row"] + args,
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def torch_row_here(kind, size, channels, steps, n, scale, device, warmup, reps, precision, compile_mode="",
                   backend="inductor"):
    torch.manual_seed(0)
    m = Gran(size, channels, steps, scale, device, precision=precision)
    if compile_mode:
        m.compile(compile_mode, backend)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    warm = 0.0
    if kind == "train":
        data = torch.randint(0, 256, (4 * n, channels, size, size), dtype=torch.uint8).to(device).float() / 255
        for i in range(warmup + reps):
            sync(device)
            t = time.perf_counter()
            idx = torch.randint(0, 4 * n, (n,), device=device)
            m.train_step(data[idx])
            sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - t)
            else:
                warm += time.perf_counter() - t
    else:
        for i in range(warmup + reps):
            sync(device)
            t = time.perf_counter()
            m.sample(n)
            sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - t)
            else:
                warm += time.perf_counter() - t
    peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    g, d = m.parameter_counts()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    # Output shapes, checked against gran's: two samples and their D(x).
    two = m.sample(2)
    with torch.no_grad(), m.autocast():
        d_out = m.d(two.to(device), "eval")
    return {"params_g": g, "params_d": d, "sample_shape": list(two.shape), "d_shape": list(d_out.shape),
            "times": times, "max_rss_mib": rss, "warmup_s": warm, "peak_gpu_mib": peak_gpu}


def forward_cost(size, channels, steps, scale):
    """What the generator's forward pass costs for one image, from one pass of the reference
    model: (GFLOP, MB of weights distinct, MB of weights read).
    - GFLOP: multiply-adds count 2, counted by torch.utils.flop_counter (convolutions, transposed
      convolutions and matrix multiplies; the elementwise work is not counted). Batch n costs n
      times as much.
    - Weights read: every use of a linear or convolution weight as the reference's forward pass
      makes it (its decoder reads its whole linear weight at every step); gran's lean path reads
      less (README, "Lean inference"), so it is the reference's traffic, not a floor."""
    from torch.utils.flop_counter import FlopCounterMode
    m = Gran(size, channels, steps, scale, "cpu")
    read = [0]

    def count(mod, inputs, output):
        read[0] += mod.weight.numel() * mod.weight.element_size()

    kinds = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)
    hooks = [mod.register_forward_hook(count) for mod in m.g.modules() if isinstance(mod, kinds)]
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m.g(torch.randn(1, 100), "eval")
    for h in hooks:
        h.remove()
    distinct = sum(p.numel() * p.element_size() for p in m.g.parameters())
    return fc.get_total_flops() / 1e9, distinct / 1e6, read[0] / 1e6


def _best_time(device, f, runs=7, skip=2):
    best = float("inf")
    for i in range(runs):
        sync(device)
        t = time.perf_counter()
        f()
        sync(device)
        if i >= skip:
            best = min(best, time.perf_counter() - t)
    return best


def rates_here(device, precision):
    """This machine's rates now, measured in this process:
    - matmul_gflops: the matrix-multiply rate (best of 5 products of two n x n matrices after a
      warm-up, float32 or bfloat16), the denominator of the FLOP bound. n grows from 256 until
      one product takes 50 ms or n is 2048, so that a slow path (bfloat16 on a CPU without
      bfloat16 units) is measured in seconds, not minutes;
    - stream_gbs: the rate memory is read at (best of 5 sums over a 512 MiB float32 array, far
      beyond any cache), with the process's threads: what a weight costs at one image when the
      weights do not stay in cache from one call to the next."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    n = 256
    while True:
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        if n >= 2048 or time.perf_counter() - t > 0.05:
            break
        n *= 2
    matmul = 2 * n ** 3 / _best_time(device, lambda: a @ b) / 1e9
    del a, b
    big = torch.ones(128 * 1024 * 1024, device=device)
    stream = big.numel() * 4 / _best_time(device, big.sum) / 1e9
    return {"matmul_gflops": matmul, "stream_gbs": stream}


# The fastest rates measured so far: the VM's speed drifts, so each round of a sampling row
# measures them again and the bounds use the fastest seen (the tightest bounds).
_RATES = {}


def rates(device, precision):
    """rates_here in a process of its own (its 512 MiB array would otherwise raise the peak
    memory that Linux reports for every later child of this process), the fastest of every call
    so far for this device and precision."""
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--rates", device, precision],
        check=True, capture_output=True, text=True,
    ).stdout
    now = json.loads(out.strip().splitlines()[-1])
    best = _RATES.setdefault((device, precision), now)
    for k, v in now.items():
        best[k] = max(best[k], v)
    return best


def merge(acc, run):
    """Pools the timings of one more run of a row into `acc`; peak memory is the largest seen."""
    if acc is None:
        return run
    acc["times"] += run["times"]
    acc["max_rss_mib"] = max(acc["max_rss_mib"], run["max_rss_mib"])
    return acc


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--rates":
        print(json.dumps(rates_here(sys.argv[2], sys.argv[3])))
        return
    if len(sys.argv) in (12, 14) and sys.argv[1] == "--torch-row":
        a = sys.argv[2:]
        print(json.dumps(torch_row_here(a[0], int(a[1]), int(a[2]), int(a[3]), int(a[4]), float(a[5]), a[6],
                                        int(a[7]), int(a[8]), a[9], *a[10:])))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="28x28 rows, batch 64 only, few repetitions")
    ap.add_argument("--json")
    ap.add_argument("--only", default="", help="only the rows whose name matches this regular expression")
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--reps", type=int)
    ap.add_argument("--rounds", type=int, default=1, help="alternating runs of each side per row")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--compile", default="", help="comma-separated torch.compile modes to time as well")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend (aot_eager: no code generation)")
    args = ap.parse_args()
    modes = [m for m in args.compile.split(",") if m]
    warmup, reps = (2, 5) if args.quick else (3, 10)
    warmup = warmup if args.warmup is None else args.warmup
    reps = reps if args.reps is None else args.reps
    rows = []
    shapes = [(28, 1)] if args.quick else [(28, 1), (32, 3)]
    batches = [64] if args.quick else [64, 256]
    for size, ch in shapes:
        for batch in batches:
            for steps in (1, 3, 5):
                rows.append(("train", size, ch, steps, batch))
    for count in (1, 64, 1024):
        rows.append(("sample", 28, 1, 3, count))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, width scale {args.scale}, "
          f"precision {args.precision}")
    print(f"{'row':<34}{'gran s':>12}{'torch s':>12}{'torch/gran':>12}{'gran MiB':>10}{'torch MiB':>10}")
    results = []
    for kind, size, ch, steps, n in rows:
        name = f"{kind} {size}x{size}x{ch} T={steps} {'batch' if kind == 'train' else 'count'} {n}"
        if not re.search(args.only, name):
            continue
        g, t, measured = None, None, None
        for _ in range(max(1, args.rounds)):
            g = merge(g, gran_row(kind, size, ch, steps, n, args.scale, args.device, warmup, reps, args.precision))
            t = merge(t, torch_row(kind, size, ch, steps, n, args.scale, args.device, warmup, reps, args.precision))
            if kind == "sample":  # the machine's rates in each round, between the two sides' runs
                measured = rates(args.device, args.precision)
        same = ("params_g", "params_d", "sample_shape", "d_shape")
        assert [g[k] for k in same] == [t[k] for k in same], ([g[k] for k in same], [t[k] for k in same])
        gm, tm = statistics.median(g["times"]), statistics.median(t["times"])
        peak = f"  torch peak GPU {t['peak_gpu_mib']:.0f} MiB" if t.get("peak_gpu_mib") is not None else ""
        print(f"{name:<34}{gm:>12.5f}{tm:>12.5f}{tm / gm:>12.2f}{g['max_rss_mib']:>10.0f}{t['max_rss_mib']:>10.0f}{peak}",
              flush=True)
        row = {"row": name, "gran_median_s": gm, "torch_median_s": tm, "ratio": tm / gm,
               "params": [g["params_g"], g["params_d"]], "gran_max_rss_mib": g["max_rss_mib"],
               "torch_max_rss_mib": t["max_rss_mib"], "torch_peak_gpu_mib": t.get("peak_gpu_mib"), "compiled": {}}
        for mode in modes:
            try:
                c = torch_row(kind, size, ch, steps, n, args.scale, args.device, warmup, reps, args.precision, mode,
                              args.compile_backend)
            except subprocess.CalledProcessError as e:
                err = [l for l in (e.stderr or "").strip().splitlines() if l.strip()]
                # The exception's own line (the last one often only points at the docs), then
                # the tail of the traceback for the log.
                named = [l for l in err if re.match(r"^[A-Za-z_.]+(Error|Exception|Unsupported)\b", l)]
                msg = named[-1] if named else (err[-1] if err else f"exit status {e.returncode}")
                print(f"  torch.compile {mode} ({args.compile_backend}): FAILED: {msg}", flush=True)
                for line in err[-25:]:
                    print(f"    | {line}", flush=True)
                row["compiled"][mode] = {"error": msg}
                continue
            assert [g[k] for k in same] == [c[k] for k in same], ([g[k] for k in same], [c[k] for k in same])
            cm = statistics.median(c["times"])
            cpeak = f", peak GPU {c['peak_gpu_mib']:.0f} MiB" if c.get("peak_gpu_mib") is not None else ""
            print(f"  torch.compile {mode} ({args.compile_backend}): {cm:.5f} s, torch/gran {cm / gm:.2f}, "
                  f"eager/compiled {tm / cm:.2f}; warm-up (compilation) {c['warmup_s']:.1f} s{cpeak}", flush=True)
            row["compiled"][mode] = {"median_s": cm, "ratio": cm / gm, "warmup_s": c["warmup_s"],
                                     "peak_gpu_mib": c.get("peak_gpu_mib")}
        ok = {m: v["median_s"] for m, v in row["compiled"].items() if "median_s" in v}
        if len(ok) > 1:
            best = min(ok, key=ok.get)
            print(f"  torch.compile: {best} is the faster mode ({ok[best]:.5f} s)", flush=True)
        if kind == "sample":
            gflop, distinct, read = forward_cost(size, ch, steps, args.scale)
            gflop *= n
            rate = measured["matmul_gflops"]
            bound = gflop / rate
            print(f"  FLOP bound: {gflop:.3f} GFLOP at {rate:.0f} GFLOP/s (matmul, fastest measured) = {bound * 1e3:.3f} ms; "
                  f"gran at {gm / bound:.2f}x the bound, PyTorch eager at {tm / bound:.2f}x", flush=True)
            gbs = measured["stream_gbs"]
            mem = distinct / 1e3 / gbs
            print(f"  memory: G's weights {distinct:.1f} MB ({read:.1f} MB read by the reference's forward pass); "
                  f"reading them once from memory at {gbs:.1f} GB/s (fastest measured) = {mem * 1e3:.3f} ms; "
                  f"gran at {gm / (bound + mem):.2f}x the FLOP and memory bounds added, PyTorch eager at "
                  f"{tm / (bound + mem):.2f}x", flush=True)
            row.update({"gflop": gflop, "matmul_gflops": rate, "flop_bound_s": bound, "weights_mb": distinct,
                        "weights_read_mb": read, "stream_gbs": gbs, "memory_bound_s": mem})
        results.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
