#!/usr/bin/env python3
"""How long `graft build --from-diff --debian-source` takes, cold (no cached
original build) and warm (the original build reused), on Debian's expat with
its CVE-2024-45490 fix (scripts/corpus/debian_build.sh prepares the tree and
the library built before the fix).

Rounds interleave cold and warm builds; each cold build gets a fresh cache
folder. Prints per-phase times (from graft's progress lines) and medians;
--out writes bench/results/debian-source.{txt,json}.

    /usr/bin/python3 bench/debian_source.py [--rounds N] [--graft build/graft] [--out]
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SOURCE, VERSION, FIX = "expat", "2.5.0-1+deb12u2", "CVE-2024-45490.patch"


def prepare():
    subprocess.run(["bash", f"{REPO}/scripts/corpus/debian_build.sh", SOURCE, VERSION, FIX], check=True)
    corpus = os.environ.get("GRAFT_CORPUS_DIR", "/var/cache/graft-corpus")
    env = {}
    with open(f"{corpus}/debian/{SOURCE}_{VERSION}_before-{FIX[:-len('.patch')]}/env") as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                k, v = line.strip().split("=", 1)
                env[k] = v
    return env


def build(graft, env, cache, out):
    lib = os.path.realpath(f"{env['ROOT']}/lib/x86_64-linux-gnu/libexpat.so.1")
    start = time.monotonic()
    p = subprocess.run([graft, "build", "--from-diff", f"{env['FIXES_DIR']}/{FIX}", "--debian-source",
                        env["TREE"], "--target", lib, "-o", out, "--json"],
                       env={**os.environ, "GRAFT_DEBIAN_CACHE": cache}, capture_output=True, text=True)
    wall = time.monotonic() - start
    if p.returncode != 0:
        sys.exit(f"graft build failed:\n{p.stderr}")
    phases = {}
    marks = [(float(m.group(1)), m.group(2)) for m in
             re.finditer(r"^graft: \[ *([0-9.]+) s\] (.*)$", p.stderr, re.M)]
    for (t, what), (t_next, _) in zip(marks, marks[1:] + [(wall, "")]):
        key = ("original build" if what.startswith("building the original") else
               "patched build" if what.startswith("building the patched") else None)
        if key:
            phases[key] = t_next - t
    return wall, phases


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--graft", default=f"{REPO}/build/graft")
    ap.add_argument("--out", action="store_true", help="write bench/results/debian-source.{txt,json}")
    a = ap.parse_args()
    env = prepare()
    work = tempfile.mkdtemp(prefix="graft-bench-deb-")
    runs = {"cold": [], "warm": []}
    try:
        for r in range(a.rounds):
            cache = f"{work}/cache-{r}"
            for kind in ("cold", "warm"):
                wall, phases = build(a.graft, env, cache, f"{work}/fix.graft")
                runs[kind].append({"wall_s": round(wall, 1), **{k: round(v, 1) for k, v in phases.items()}})
                print(f"round {r + 1} {kind}: {wall:.1f} s {runs[kind][-1]}", flush=True)
            shutil.rmtree(cache, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cold = statistics.median(x["wall_s"] for x in runs["cold"])
    warm = statistics.median(x["wall_s"] for x in runs["warm"])
    cpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    text = (f"graft build --from-diff {FIX} --debian-source ({SOURCE} {VERSION}), {a.rounds} rounds, "
            f"{cpu} cores\n"
            f"  cold (no cached original build): median {cold:.1f} s\n"
            f"  warm (original build reused):    median {warm:.1f} s\n"
            f"  warm / cold: {warm / cold:.2f}\n")
    print(text, end="")
    if a.out:
        os.makedirs(f"{HERE}/results", exist_ok=True)
        with open(f"{HERE}/results/debian-source.txt", "w") as f:
            f.write(text)
        with open(f"{HERE}/results/debian-source.json", "w") as f:
            json.dump({"source": SOURCE, "version": VERSION, "fix": FIX, "runs": runs,
                       "median_cold_s": cold, "median_warm_s": warm}, f, indent=1)


if __name__ == "__main__":
    main()
