#!/usr/bin/python3
"""bench/apply_speed.py: two graft binaries, A and B, on the side-by-side
workload (bench/side_by_side.py), in interleaved rounds.

Each round runs, for A and B in turn (the order alternates from round to
round), `graft apply` + `graft revert` with the stop and the hybrid model on
one process of --threads threads (tick workers calling bench_work() every
1 ms, a heartbeat thread), and `graft apply --all` + `revert --all` (stop)
on --fleet processes of 4 threads. Prints medians and B/A ratios.

    /usr/bin/python3 bench/apply_speed.py --a OLD/graft --b build/graft --rounds 9 [--out FILE]
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import side_by_side as S  # noqa: E402
import run as R  # noqa: E402

KEYS = ("apply_ms", "gap_ms", "baseline_ms", "revert_ms", "revert_gap_ms", "total_ms", "pause_ms",
        "transition_ms", "stall_max_us")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="graft binary A (before)")
    ap.add_argument("--b", required=True, help="graft binary B (after)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=66)
    ap.add_argument("--fleet", type=int, default=10)
    ap.add_argument("--heartbeat-sleep-us", type=int, default=100)
    ap.add_argument("--fleet-heartbeat-sleep-us", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=0.3)
    ap.add_argument("--models", default="stop,hybrid")
    ap.add_argument("--workdir")
    ap.add_argument("--out", help="write the table here")
    args = ap.parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="graft-apply-speed.")
    os.makedirs(workdir, exist_ok=True)
    # One target and patch for both binaries (the patch format is the same).
    b = S.build_graft(os.path.abspath(args.a), workdir)
    bins = {"A": os.path.abspath(args.a), "B": os.path.abspath(args.b)}
    variants = [(m, "process") for m in args.models.split(",")]
    if args.fleet:
        variants.append(("stop", "fleet"))
    samples = {(k, v): [] for k in bins for v in variants}
    failures, loads = [], []
    start_load = " ".join(open("/proc/loadavg").read().split()[:3])
    for r in range(args.warmup + args.rounds):
        order = ["A", "B"] if r % 2 == 0 else ["B", "A"]
        for v in variants:
            for k in order:
                tool = S.Graft(f"graft {v[0]}", dict(b), bins[k], v[0])
                try:
                    s = S.process_trial(tool, args) if v[1] == "process" else S.fleet_trial(tool, args)
                except (S.Failed, R.BenchError, subprocess.TimeoutExpired) as e:
                    failures.append(f"round {r}, {k}, {v}: {str(e)[:300]}")
                    print(failures[-1], file=sys.stderr)
                    continue
                if r >= args.warmup:
                    samples[(k, v)].append(s)
        if r >= args.warmup:
            loads.append(S.load())
        print(f"round {r} done, load {S.load():.2f}", file=sys.stderr, flush=True)
    L = [f"# bench/apply_speed.py --rounds {args.rounds}: "
         f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
         f"{os.cpu_count()} cpus, Linux {os.uname().release}",
         f"# A = {bins['A']}", f"# B = {bins['B']}",
         f"# load average (1 min): {start_load} at start, median {statistics.median(loads):.2f} over rounds "
         f"(min {min(loads):.2f}, max {max(loads):.2f}); other work shares the 2 CPUs",
         f"# medians of {args.rounds} interleaved rounds (A and B alternate first), after {args.warmup} warm-up; ms",
         ""]
    for v in variants:
        title = (f"{v[0]}, one process of {args.threads} threads" if v[1] == "process"
                 else f"{v[0]}, apply --all on {args.fleet} processes of 4 threads")
        L.append(title + ":")
        L.append(f"  {'figure':<16} {'A':>9} {'B':>9} {'B/A':>6}   n(A) n(B)")
        for key in KEYS:
            a = [s[key] for s in samples[("A", v)] if s.get(key) is not None]
            bb = [s[key] for s in samples[("B", v)] if s.get(key) is not None]
            if not a or not bb or (key != "gap_ms" and max(a + bb) == 0):
                continue
            ma, mb = statistics.median(a), statistics.median(bb)
            ratio = f"{mb / ma:6.2f}" if ma else "     -"
            L.append(f"  {key:<16} {ma:9.2f} {mb:9.2f} {ratio}   {len(a):>4} {len(bb):>4}")
        L.append("")
    if failures:
        L.append("failures:")
        L += ["  " + f for f in failures]
    text = "\n".join(L)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
        with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
            json.dump({"bins": bins, "loads": loads, "failures": failures,
                       "samples": [{"bin": k, "model": v[0], "kind": v[1], "trials": samples[(k, v)]}
                                   for (k, v) in samples]}, f, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
