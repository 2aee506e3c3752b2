#!/usr/bin/env python3
"""libgran_runtime against libgran on the same model file, alternated (BENCHMARKS.md, "Runtime").

The same C programs (bench/runtime_speed.c, bench/first_image.c) are compiled once against each
library, so both sides make exactly the same calls. Each round runs both sides, in alternating
order; medians over rounds with the spread (lowest and highest round).

  python3 bench/runtime.py MODEL [--rounds 7] [--calls 40]

Needs target/release/libgran.so (make lib) and target/release/libgran_runtime.so (make runtime).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBDIR = os.path.join(ROOT, "target", "release")
OUT = os.path.join(ROOT, "target", "bench-runtime")
SIDES = {"libgran": "gran", "runtime": "gran_runtime"}


def build(cc):
    os.makedirs(OUT, exist_ok=True)
    progs = {}
    for prog in ("runtime_speed", "first_image"):
        for side, lib in SIDES.items():
            exe = os.path.join(OUT, f"{prog}_{side}")
            subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-I", os.path.join(ROOT, "include"),
                            os.path.join(ROOT, "bench", f"{prog}.c"), "-o", exe, f"-L{LIBDIR}", f"-l{lib}",
                            f"-Wl,-rpath,{LIBDIR}"], check=True)
            progs[(prog, side)] = exe
    return progs


def time_v(cmd):
    """Wall seconds of one process (timed here: /usr/bin/time -v reports hundredths) and its
    peak RSS in MiB (from /usr/bin/time -v, which runs it)."""
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {r.stderr}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) / 1024
    return seconds, rss


def describe(values, unit, fmt="{:.1f}"):
    lo, hi = min(values), max(values)
    return f"{fmt.format(statistics.median(values))} {unit} ({fmt.format(lo)}-{fmt.format(hi)})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=40, help="timed calls per process")
    ap.add_argument("--cc", default=os.environ.get("CC", "gcc"))
    a = ap.parse_args()
    progs = build(a.cc)
    env_note = f"{os.cpu_count()} cores"
    print(f"model {a.model} ({os.path.getsize(a.model)} bytes), {env_note}, {a.rounds} rounds alternated")

    # Process start to the first image written.
    first = {side: ([], []) for side in SIDES}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            order = list(SIDES) if r % 2 == 0 else list(reversed(SIDES))
            for side in order:
                wall, rss = time_v([progs[("first_image", side)], a.model, os.path.join(tmp, f"{side}.png")])
                first[side][0].append(wall * 1000)
                first[side][1].append(rss)
    print("\nprocess start to the first image written (/usr/bin/time -v):")
    for side in SIDES:
        print(f"  {side:8s} {describe(first[side][0], 'ms')}, peak memory {describe(first[side][1], 'MiB')}")

    # Warm drawing: per-call medians per process, then the median over rounds.
    settings = [("default threads", None), ("1 thread each", 1), (f"{os.cpu_count()} threads each", os.cpu_count())]
    for count in (1, 64):
        print(f"\n{count} image{'s' if count > 1 else ''} per call in a warm process (gran_sample, U8_HWC):")
        for label, threads in settings:
            per = {side: [] for side in SIDES}
            for r in range(a.rounds):
                order = list(SIDES) if r % 2 == 0 else list(reversed(SIDES))
                for side in order:
                    cmd = [progs[("runtime_speed", side)], a.model, str(count), str(a.calls if count == 1 else max(5, a.calls // 8))]
                    if threads:
                        cmd.append(str(threads))
                    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
                    per[side].append(statistics.median(float(v) for v in out) / 1000)
            ratios = [g / rt for g, rt in zip(per["libgran"], per["runtime"])]
            print(f"  {label:16s} libgran {describe(per['libgran'], 'ms', '{:.2f}')}   runtime "
                  f"{describe(per['runtime'], 'ms', '{:.2f}')}   runtime speed-up {describe(ratios, 'x', '{:.2f}')}")


if __name__ == "__main__":
    main()
