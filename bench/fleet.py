#!/usr/bin/python3
"""bench/fleet.py: `graft apply --all` over many processes, and graft's own
start-up, interleaved.

Three copies of bench/target.c, each with its own build-id, run as 1, 10 and
100 processes of 4 threads (main, a heartbeat waking every 100 ms, 2 idle
workers); bench/patch.c
is built for each copy. Each round runs every variant once, in turn:

    apply --all (N processes, --jobs J) --json; check one ok result per
    process; revert --all (not timed)

for N in --counts and J in --jobs ("default": no --jobs), plus graft's
start-up alone: `graft --version', and `graft apply --all` of a patch whose
target no process maps (start-up, reading the patch, the /proc scan). The
wall time is the command's, spawn to exit, as seen from here. Prints median,
p90 and min per variant.

    /usr/bin/python3 bench/fleet.py --rounds 15
    /usr/bin/python3 bench/fleet.py --rounds 15 --out   # also results/fleet.{txt,json}
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import run as R  # noqa: E402


# The heartbeat thread of each target wakes this seldom: 100 targets waking
# every 100 us (run.py's setting) would load the machine themselves.
HEARTBEAT_SLEEP_US = 100000


def quantile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def build_copy(graft, workdir, n):
    """A copy of the target with a build-id of its own, and its patch."""
    exe = os.path.join(workdir, f"target-{n}")
    build_id = "0x" + os.urandom(20).hex()
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-g", "-pthread", f"-Wl,--build-id={build_id}",
                    os.path.join(BENCH, "target.c"), "-o", exe], check=True)
    patch = os.path.join(workdir, f"fix-{n}.graft")
    subprocess.run([graft, "build", "--from-source", os.path.join(BENCH, "patch.c"), "--target", exe,
                    "-o", patch], check=True, capture_output=True)
    return exe, patch


def timed(cmd, timeout=120):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return (time.perf_counter() - t0) * 1000, p


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--graft", default="build/graft")
    ap.add_argument("--counts", default="1,10,100", help="process counts")
    ap.add_argument("--jobs", default="1,default", help="--jobs values (`default': none given)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--model", default="stop")
    ap.add_argument("--out", nargs="?", const=os.path.join(BENCH, "results"),
                    help="write fleet.txt and fleet.json here (default bench/results/)")
    args = ap.parse_args(argv)
    graft = os.path.abspath(args.graft)
    counts = [int(c) for c in args.counts.split(",")]
    jobs = args.jobs.split(",")
    workdir = tempfile.mkdtemp(prefix="graft-bench-fleet.")
    copies = {n: build_copy(graft, workdir, n) for n in counts + [0]}
    variants = [("start-up", "--version"), ("start-up", "apply --all, no process")]
    variants += [(n, j) for n in counts for j in jobs]
    walls = {v: [] for v in variants}
    graft_ms = {v: [] for v in variants}
    failures = []
    targets = {n: [] for n in counts}
    try:
        for n in counts:
            for _ in range(n):
                targets[n].append(R.Target(copies[n][0], 2, "idle", HEARTBEAT_SLEEP_US))
        time.sleep(0.5)
        for _ in range(args.rounds):
            for v in variants:
                if v == ("start-up", "--version"):
                    wall, p = timed([graft, "--version"])
                    walls[v].append(wall)
                    continue
                if v[0] == "start-up":
                    wall, p = timed([graft, "apply", copies[0][1], "--all", "--json"])
                    walls[v].append(wall)  # exits 1: no process
                    continue
                n, j = v
                cmd = [graft, "apply", copies[n][1], "--all", "--json", "--model", args.model]
                if j != "default":
                    cmd += ["--jobs", j]
                wall, p = timed(cmd)
                try:
                    doc = json.loads(p.stdout)
                    ok = [r for r in doc["results"] if r["ok"]]
                    pid_set = {t.pid for t in targets[n]}
                    if p.returncode != 0 or len(ok) != n or {r["pid"] for r in ok} != pid_set:
                        raise ValueError(f"{len(ok)} of {n} ok, exit {p.returncode}: "
                                         + "; ".join(str(r["error"]) for r in doc["results"] if not r["ok"])[:500])
                    walls[v].append(wall)
                    graft_ms[v].append(max(r["total_ms"] for r in ok))
                except (ValueError, KeyError, TypeError) as e:
                    failures.append(f"{v}: {e} {p.stderr.strip()[:300]}")
                doc_id = json.loads(subprocess.run([graft, "info", copies[n][1], "--json"], capture_output=True,
                                                   text=True).stdout)["id"]
                r = subprocess.run([graft, "revert", doc_id, "--all", "--json"], capture_output=True, text=True)
                if r.returncode != 0:
                    failures.append(f"{v}: revert --all exited {r.returncode}: {r.stdout[:300]} {r.stderr[:300]}")
    finally:
        for ts in targets.values():
            for t in ts:
                t.close()
    lines = []
    meta = R.metadata(SimpleArgs(graft, args.model))
    meta["trials"] = f"{args.rounds} interleaved rounds; model {args.model}"
    del meta["heartbeat"]
    lines.append(f"# bench/fleet.py --rounds {args.rounds}: {meta['date']}; {meta['machine']}")
    lines.append(f"# {meta['graft']}; load average at start {meta['load average at start']}")
    lines.append(f"{'variant':<44} {'n':>3} {'wall median':>12} {'p90':>8} {'min':>8}  {'slowest process (graft)':>24}")
    for v in variants:
        w = walls[v]
        if not w:
            lines.append(f"{str(v):<44} no successful run")
            continue
        label = f"start-up: {v[1]}" if v[0] == "start-up" else f"apply --all, {v[0]} processes, --jobs {v[1]}"
        g = f"{statistics.median(graft_ms[v]):.1f} ms" if graft_ms[v] else ""
        lines.append(f"{label:<44} {len(w):>3} {statistics.median(w):>9.1f} ms {quantile(w, 0.9):>5.1f} ms "
                     f"{min(w):>5.1f} ms  {g:>24}")
    for f in failures:
        lines.append(f"FAILED: {f}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "fleet.txt"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(args.out, "fleet.json"), "w") as f:
            json.dump({"meta": meta, "rounds": args.rounds,
                       "samples": [{"variant": list(map(str, v)), "wall_ms": walls[v], "graft_max_total_ms": graft_ms[v]}
                                   for v in variants], "failures": failures}, f, indent=1)
    return 1 if failures else 0


class SimpleArgs:
    def __init__(self, graft, model):
        self.graft = graft
        self.trials = self.warmup = 0
        self.model = model
        self.heartbeat_sleep_us = 100


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
