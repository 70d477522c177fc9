#!/usr/bin/python3
"""bench/heartbeat.py: what a latency-sensitive thread of the target sees
while graft applies and reverts a patch with each model, from interleaved
trials on one target (the machine's drift hits every variant alike).

For N rounds, each variant in turn on the same idle target (bench/target.c,
--threads in all, its heartbeat thread sleeping 100 us between clock reads):

    reset the heartbeat window; graft apply --model M; read the longest gap;
    settle; reset; graft revert (with the model of the apply); read the
    longest gap; settle

plus a control: a process that is not graft (a Python loop) spinning for as
long as an apply takes. With --cumulative, each round first applies
bench/patch.c with the stop model (not measured), and the apply measured is
that of a cumulative patch (bench/patch_cumulative.c) replacing it. With --against OTHER_GRAFT, every model also runs
with that build (labelled "against"), e.g. the last release, for an A/B
comparison within one run. Prints median, p75, p90 and max of the gap per
variant, and graft's single-thread stops and wall time.

    /usr/bin/python3 bench/heartbeat.py --rounds 20
    /usr/bin/python3 bench/heartbeat.py --rounds 20 --against /tmp/old/build/graft
    /usr/bin/python3 bench/heartbeat.py --rounds 20 --cumulative
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import run as R  # noqa: E402

SPIN = "import sys, time\nend = float(sys.argv[1])\nwhile time.monotonic() < end: pass\n"


def quantile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--graft", default="build/graft")
    ap.add_argument("--against", help="a second graft build to compare with")
    ap.add_argument("--threads", type=int, default=66)
    ap.add_argument("--models", default="hybrid,lazy,stop")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--settle", type=float, default=0.2)
    ap.add_argument("--cumulative", action="store_true",
                    help="measure a cumulative patch replacing an applied one")
    args = ap.parse_args(argv)
    builds = {"graft": os.path.abspath(args.graft)}
    if args.against:
        builds["against"] = os.path.abspath(args.against)
    workdir = tempfile.mkdtemp(prefix="graft-bench-heartbeat.")
    patches, bases, exe = {}, {}, None
    for name, path in builds.items():
        os.makedirs(os.path.join(workdir, name))
        exe_here, patches[name] = R.build(SimpleNamespace(graft=path), os.path.join(workdir, name))
        exe = exe or exe_here
        if args.cumulative:
            bases[name], patches[name] = patches[name], os.path.join(workdir, name, "cumulative.graft")
            subprocess.run([path, "build", "--from-source", os.path.join(BENCH, "patch_cumulative.c"),
                            "--target", exe_here, "-o", patches[name]], check=True, capture_output=True)
    variants = [(b, m) for m in args.models.split(",") for b in builds] + [("control", None)]
    gaps = {v: [] for v in variants}
    revert_gaps = {v: [] for v in variants}
    stops = {v: [] for v in variants}
    walls = {v: [] for v in variants}
    target = R.Target(exe, args.threads - 2, "idle", 100)
    try:
        time.sleep(args.settle)
        for _ in range(args.rounds):
            for v in variants:
                build, model = v
                target.reset()
                if build == "control":  # as long as the applies so far took
                    all_walls = [w for x in variants for w in walls[x]]
                    wall = statistics.median(all_walls) if all_walls else 40
                    subprocess.run([sys.executable, "-c", SPIN, str(time.monotonic() + wall / 1000)], check=True)
                    gaps[v].append(target.stat()["gap_us"] / 1000)
                else:
                    a = SimpleNamespace(graft=builds[build], model=model, graft_timeout=10.0,
                                        command_timeout=60.0)
                    if args.cumulative:
                        R.graft_apply(SimpleNamespace(**{**vars(a), "model": "stop"}), bases[build], target.pid)
                        time.sleep(args.settle)
                        target.reset()
                    res, wall, doc = R.graft_apply(a, patches[build], target.pid)
                    gaps[v].append(target.stat()["gap_us"] / 1000)
                    stops[v].append(res.get("stalls", 0))
                    walls[v].append(wall)
                    time.sleep(args.settle)
                    target.reset()
                    R.graft_revert(a, doc["patch_id"], target.pid)
                    revert_gaps[v].append(target.stat()["gap_us"] / 1000)
                time.sleep(args.settle)
    finally:
        target.close()
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    what = "a cumulative patch replacing one (apply, then revert)" if args.cumulative else "apply, then revert"
    print(f"heartbeat gap, {what}, at {args.threads} idle threads, {args.rounds} interleaved rounds, "
          f"load {load}, {os.cpu_count()} CPUs (ms)")
    def line(label, g, extra=""):
        print(f"  {label:24s} median {statistics.median(g):5.2f}  p75 {quantile(g, .75):5.2f}  "
              f"p90 {quantile(g, .9):5.2f}  max {max(g):5.2f}{extra}")
    for v in variants:
        if v[0] == "control":
            line("control (not graft)", gaps[v])
            continue
        line(f"apply {v[1]} ({v[0]})", gaps[v], f"   {statistics.median(stops[v]):.0f} single-thread "
             f"stops, graft {statistics.median(walls[v]):.0f} ms wall")
        line(f"revert {v[1]} ({v[0]})", revert_gaps[v])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
