"""The small sets' table of docs/RESULTS.md (sections 24-30) on a GPU machine: each set trained
without augmentation, R1 or the canvas penalty ("off") and with the defaults, over several
seeds, many runs at once.

gpu/check.sh runs this as its opt-in stage `small-sets` (`--stages small-sets`); it needs what
`make colour-data gpu-check` carried (bin/experiment, bin/colour_patches and the photographs
in colour-src/; without them only the shapes run). On the CPU (`make gpu-check-dry`) a rehearsal:
three steps a run, the shapes unless GRAN_SETS names more.

    python3 gpu/small_sets.py --bin DIR --work DIR --device cuda|cpu --seconds S [--table FILE]

Each run is one process of bin/experiment (one seed, one set, one column, OMP_NUM_THREADS=1),
started seed by seed so that a run cut short by the time limit still leaves whole seeds of
every set. The sets and their budgets are docs/RESULTS.md's (sections 24-28) unless the
environment says otherwise:

    GRAN_SETS          sets, in order (default small,c64,shapes; on the CPU shapes)
    GRAN_SETS_SEEDS    seeds (default 1,2,3,4,5; on the CPU 1)
    GRAN_SETS_JOBS     runs at once (default: the cores less 2; on the CPU 2)
    GRAN_SETS_STEPS_X  a factor on every set's steps (default 1)
    GRAN_SETS_WIDTH    one width scale for every set (default each set's own: 1/8 at 32x32,
                       1/16 at 64x64; 1 gives the widths `gran train` picks)

The table: each cell the FD of the averaged generator and the classes holding at least 2% of
the samples, a run marked "collapsed" when it draws one class or its D(x) ends above 0.95; per
set the medians, defaults / off (the target: at most 0.5) and the seconds per run;
under the table each set's ratio with its 90% bootstrap interval (over the seeds of each
column) and the median of the seeds' own ratios.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

# name: (experiment arguments, steps); the budgets of docs/RESULTS.md's table.
SETS = {
    "shapes": (["--data", "shapes", "--t", "3", "--width-scale", "0.125"], 1000),
    "small": (["--data", "colour32", "--train-count", "2000", "--t", "3", "--width-scale", "0.125"], 2000),
    "c64": (["--data", "colour64", "--t", "5", "--width-scale", "0.0625"], 400),
}
COLUMNS = {"off": ["--augment", "off", "--r1", "0", "--canvas-penalty", "0"], "defaults": []}
# Seconds kept back at the end to write the table after the last runs are stopped.
MARGIN = 10
# Resamplings of the bootstrap interval of defaults / off, and its fixed seed (the same
# results always give the same interval).
BOOTSTRAP_ROUNDS = 20000
BOOTSTRAP_SEED = 0


def env_list(name, default):
    return [v for v in os.environ.get(name, default).split(",") if v]


def is_colour(name):
    return SETS[name][0][1].startswith("colour")


def make_colour_data(bin_dir, sets_dir):
    """data/colour32 and data/colour64 under sets_dir from the carried photographs, as `make
    colour-data` makes them here; None when they were made, else why not."""
    src = bin_dir / "colour-src"
    if not src.is_dir():
        return f"no {src} (build with `make colour-data gpu-check`)"
    for folder, size in (("colour32", []), ("colour64", ["64"])):
        out = sets_dir / "data" / folder
        cmd = [str(bin_dir / "bin" / "colour_patches"), str(src), str(out)] + size
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            return f"colour_patches {folder}: exit {r.returncode}: {r.stdout[-300:]}"
    return None


def parse(log):
    """(FD, raw FD, classes, D(x), p at the end, train seconds) of a finished run, or None."""
    row, p = None, None
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("| GRAN T="):
            row = [c.strip() for c in line.strip().strip("|").split("|")]
        elif "augment p at the end" in line:
            p = float(line.split("augment p at the end")[1].split(",")[0])
    if row is None:
        return None
    # model | seed | FD | score | classes | min share | NN | D(x) | D(G(z)) | train s | FD raw
    return {"fd": float(row[2]), "raw": float(row[10]), "classes": int(row[4]), "dx": float(row[7]),
            "p": p, "secs": float(row[9])}


def cell(r):
    if r is None:
        return "-"
    s = f"{r['fd']:,.1f}; {r['classes']}"
    return s + (" collapsed" if collapsed(r) else "")


def collapsed(r):
    return r["classes"] <= 1 or r["dx"] > 0.95


def plan(bin_dir, sets_dir, names, seeds, cpu):
    """The runs, seed by seed: ((set, column, seed), command, log) each."""
    steps_x = float(os.environ.get("GRAN_SETS_STEPS_X", "1"))
    width = os.environ.get("GRAN_SETS_WIDTH")
    queue = []
    for seed in seeds:
        for n in names:
            args, steps = SETS[n]
            args = list(args)
            if width:
                args[args.index("--width-scale") + 1] = f"{float(width):g}"
            # The rehearsal: a few steps, one evaluator epoch.
            steps = 3 if cpu else max(1, round(steps * steps_x))
            extra = ["--evaluator-epochs", "1"] if cpu else []
            for col, flags in COLUMNS.items():
                cmd = [str(bin_dir / "bin" / "experiment"), "--seeds", str(seed), "--no-gam", "--iterations",
                       str(steps), "--trace", "100", "--out", str(sets_dir / f"{n}_{col}.s{seed}")]
                queue.append(((n, col, seed), cmd + args + flags + extra, sets_dir / f"{n}_{col}.s{seed}.log"))
    print(f"small_sets.py: {len(queue)} runs, sets {names}, seeds {seeds}, steps x{steps_x:g}, "
          f"width scale {width or 'by set'}", flush=True)
    return queue


def run_all(queue, jobs, deadline, cwd):
    """Runs the queue `jobs` at a time until the deadline; the parsed results by key (None: the
    run failed) and the keys of the runs stopped or never started."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    running, results, cut = {}, {}, []
    while queue or running:
        while queue and len(running) < jobs and time.monotonic() < deadline:
            key, cmd, log = queue.pop(0)
            f = open(log, "w")
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
            running[key] = (proc, f, log, time.monotonic())
        for key, (proc, f, log, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            f.close()
            del running[key]
            r = parse(log) if proc.returncode == 0 else None
            if r is not None:
                r["wall"] = time.monotonic() - t0
            results[key] = r
            print(f"  {key[0]} {key[1]} seed {key[2]}: exit {proc.returncode}, {time.monotonic() - t0:.0f} s, "
                  f"{cell(r)}", flush=True)
        if time.monotonic() >= deadline:
            for key, (proc, f, _, _) in running.items():
                proc.kill()
                proc.wait()
                f.close()
                cut.append(key)
            running.clear()
            cut += [key for key, _, _ in queue]
            queue.clear()
        time.sleep(0.5)
    return results, cut


def ratio_interval(off, defaults, level=0.9):
    """The ratio of the medians, defaults / off, and its bootstrap interval at `level`: each
    column resampled with replacement over its own seeds. A column's runs either train or
    collapse, so three to seven seeds leave the median to chance; the interval says whether the
    table's ratio decides the target of 0.5 or only points at it."""
    rng = random.Random(BOOTSTRAP_SEED)
    ratio = statistics.median(defaults) / statistics.median(off)
    draws = sorted(statistics.median(rng.choices(defaults, k=len(defaults)))
                   / statistics.median(rng.choices(off, k=len(off))) for _ in range(BOOTSTRAP_ROUNDS))
    tail = (1 - level) / 2
    return ratio, draws[int(tail * len(draws))], draws[min(len(draws) - 1, int((1 - tail) * len(draws)))]


def paired_ratio(pairs):
    """The median over seeds of each seed's defaults / off (both columns finished)."""
    return statistics.median(d / o for o, d in pairs) if pairs else None


def render(names, seeds, results):
    """The table's rows and each set's defaults / off."""
    lines = [f"| set | column | {' | '.join(f'seed {s}' for s in seeds)} | median FD | defaults / off | s per run |",
             "|---|---|" + "---|" * len(seeds) + "---|---|---|"]
    ratios, intervals = [], []
    for n in names:
        med, fds_of = {}, {}
        for col in COLUMNS:
            rs = [results.get((n, col, s)) for s in seeds]
            fds = [r["fd"] for r in rs if r]
            walls = [r["wall"] for r in rs if r]
            med[col] = statistics.median(fds) if fds else None
            fds_of[col] = fds
            ratio_cell = ""
            if col == "defaults" and med["off"] and med["defaults"]:
                ratio_cell = f"**{med['defaults'] / med['off']:.2f}**"
            lines.append(f"| {n} | {col} | " + " | ".join(cell(r) for r in rs)
                         + f" | {f'{med[col]:,.1f}' if med[col] else '-'} ({len(fds)} seeds) | {ratio_cell} | "
                         + (f"{statistics.median(walls):.0f}" if walls else "-") + " |")
        if med["off"] and med["defaults"]:
            ratio, lo, hi = ratio_interval(fds_of["off"], fds_of["defaults"])
            pairs = [(results[(n, "off", s)]["fd"], results[(n, "defaults", s)]["fd"]) for s in seeds
                     if results.get((n, "off", s)) and results.get((n, "defaults", s))]
            seedwise = paired_ratio(pairs)
            ratios.append(f"{n} {ratio:.2f} [{lo:.2f}-{hi:.2f}]")
            intervals.append(f"- {n}: defaults / off {ratio:.2f}, 90% bootstrap interval {lo:.2f}-{hi:.2f}"
                             + (f"; seed by seed {seedwise:.2f} (median of {len(pairs)})" if pairs else ""))
    lines += ["", "Cells: FD of the averaged generator; classes holding at least 2% of the samples.", ""]
    lines += intervals
    return lines, ratios


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, type=Path)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--table", type=Path)
    a = ap.parse_args()
    deadline = time.monotonic() + a.seconds - MARGIN
    cpu = a.device == "cpu"
    names = env_list("GRAN_SETS", "shapes" if cpu else "small,c64,shapes")
    unknown = [n for n in names if n not in SETS]
    if unknown:
        sys.exit(f"small_sets.py: unknown sets {unknown}: {sorted(SETS)}")
    seeds = [int(s) for s in env_list("GRAN_SETS_SEEDS", "1" if cpu else "1,2,3,4,5")]
    jobs = int(os.environ.get("GRAN_SETS_JOBS", "2" if cpu else str(max(1, (os.cpu_count() or 3) - 2))))

    sets_dir = a.work / "small-sets"
    sets_dir.mkdir(parents=True, exist_ok=True)
    notes = []
    if any(is_colour(n) for n in names):
        why = make_colour_data(a.bin, sets_dir)
        if why:
            notes.append(f"colour sets left out: {why}")
            names = [n for n in names if not is_colour(n)]
    queue = plan(a.bin, sets_dir, names, seeds, cpu)
    print(f"small_sets.py: {jobs} at once, {a.seconds:.0f} s", flush=True)
    results, cut = run_all(queue, jobs, deadline, sets_dir)

    lines, ratios = render(names, seeds, results)
    if cut:
        lines.append(f"Stopped by the time limit or not started: {len(cut)} runs "
                     f"({', '.join(f'{k[0]} {k[1]} s{k[2]}' for k in cut[:12])}{' ...' if len(cut) > 12 else ''}).")
    lines += notes
    table = "\n".join(lines)
    print(table)
    if a.table:
        a.table.write_text(table + "\n")
    note = "defaults / off: " + (", ".join(ratios) or "none finished")
    if cut:
        note += f"; {len(cut)} runs cut"
    if notes:
        note += "; " + "; ".join(notes)
    print(f"NOTE {note}")
    failed = any(r is None for r in results.values())
    return 1 if failed or not ratios else 0


if __name__ == "__main__":
    sys.exit(main())
