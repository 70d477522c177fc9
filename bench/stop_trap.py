#!/usr/bin/python3
"""bench/stop_trap.py: the stop model with and without its return trap.

A stop that finds a thread inside a replaced function runs that thread
alone, the others stopped. With the trap (the default) it runs until the
function returns (arch/x86_64/stop_stub.h); with GRAFT_RETURN_STUBS=0 in
small time slices until a stop finds its pc outside. Targets: bench/target.c
with every worker spinning on bench_work() (busy), at each thread count.
Each round runs both variants, in alternating order, on the same target:

    graft apply --model stop --timeout T --json; if it applied,
    graft revert --model stop --timeout T --json

and the table gives, per variant: applies that succeeded, and medians of
total_ms, pause_ms, max_pause_ms, retries, run_out (threads run out of the
function) and the heartbeat gap during the apply; revert likewise.

    /usr/bin/python3 bench/stop_trap.py --graft build/graft [--rounds 7] [--threads 66,128,258] [--out]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as stopbench  # noqa: E402  (bench/run.py: target, build, metadata)

VARIANTS = [("trap", {}), ("slices", {"GRAFT_RETURN_STUBS": "0"})]


def graft(args, argv, pid, env):
    p = subprocess.run([args.graft] + argv + ["--pid", str(pid), "--model", "stop", "--timeout",
                                              str(args.timeout), "--json"],
                       capture_output=True, text=True, timeout=args.timeout * 3 + 60,
                       env=dict(os.environ, **env))
    try:
        res = json.loads(p.stdout)["results"][0]
    except (ValueError, KeyError, IndexError) as e:
        raise stopbench.BenchError(f"graft {argv[0]} printed no result ({e}): {p.stderr[:400]}")
    return res


def one(args, target, patch, env):
    out = {}
    target.reset()
    res = graft(args, ["apply", patch], target.pid, env)
    out["gap_ms"] = target.stat()["gap_us"] / 1000
    for k in ("ok", "total_ms", "pause_ms", "max_pause_ms", "retries", "run_out", "error"):
        out[k] = res.get(k)
    if res.get("ok"):
        rev = graft(args, ["revert", res["patch_id"]], target.pid, env)
        if not rev.get("ok"):  # leave the target clean for the next variant
            rev2 = graft(args, ["revert", res["patch_id"]], target.pid, {})
            if not rev2.get("ok"):
                raise stopbench.BenchError(f"revert failed twice: {rev2.get('error')}")
        out["revert"] = {k: rev.get(k) for k in ("ok", "total_ms", "pause_ms", "max_pause_ms",
                                                 "retries", "run_out")}
    return out


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def f(v):
    return "-" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graft", default="build/graft")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", default="66,128,258")
    ap.add_argument("--timeout", type=float, default=10.0, help="graft --timeout (10)")
    ap.add_argument("--out", nargs="?", const=os.path.join(stopbench.BENCH, "results"))
    args = ap.parse_args(argv)
    args.graft = os.path.abspath(args.graft)
    args.trials, args.warmup, args.model, args.heartbeat_sleep_us = args.rounds, 0, "stop", 100
    meta = stopbench.metadata(args)
    results = {}
    with tempfile.TemporaryDirectory(prefix="graft-stop-trap-") as work:
        exe, patch = stopbench.build(args, work)
        for threads in [int(t) for t in args.threads.split(",")]:
            target = stopbench.Target(exe, threads - 2, "busy", 100)
            try:
                time.sleep(0.5)
                rows = {name: [] for name, _ in VARIANTS}
                for r in range(args.rounds):
                    order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
                    for name, env in order:
                        t = one(args, target, patch, env)
                        rows[name].append(t)
                        print(f"{threads} {name} round {r + 1}: ok {t['ok']} total {f(t['total_ms'])} "
                              f"pause {f(t['pause_ms'])} max {f(t['max_pause_ms'])} retries {t['retries']} "
                              f"run_out {t['run_out']} gap {f(t['gap_ms'])}", file=sys.stderr)
                results[threads] = rows
            finally:
                target.close()
    meta["load average at end"] = " ".join(open("/proc/loadavg").read().split()[:3])
    lines = ["graft stop model: the return trap against time slices (GRAFT_RETURN_STUBS=0)"]
    lines += [f"  {k}: {v}" for k, v in meta.items()]
    lines += [f"  rounds: {args.rounds}, variants interleaved; busy workers; graft --timeout {args.timeout:g}",
              "", "Medians over the rounds (ms); ok = applies that succeeded; revert over those.", ""]
    hdr = (f"{'threads':>7}  {'variant':8} {'ok':>6} {'apply':>9} {'pause':>8} {'max pause':>9} "
           f"{'retries':>7} {'run out':>7} {'gap':>8}   {'revert':>8} {'r.pause':>8} {'r.retries':>9}")
    lines += [hdr, "-" * len(hdr)]
    for threads, rows in results.items():
        for name, ts in rows.items():
            ok = [t for t in ts if t["ok"]]
            revs = [t["revert"] for t in ok if t.get("revert")]
            lines.append(
                f"{threads:>7}  {name:8} {len(ok):>3}/{len(ts):<2} {f(med([t['total_ms'] for t in ok])):>9} "
                f"{f(med([t['pause_ms'] for t in ok])):>8} {f(med([t['max_pause_ms'] for t in ts])):>9} "
                f"{f(med([t['retries'] for t in ts])):>7} {f(med([t['run_out'] for t in ok])):>7} "
                f"{f(med([t['gap_ms'] for t in ts])):>8}   {f(med([r['total_ms'] for r in revs if r['ok']])):>8} "
                f"{f(med([r['pause_ms'] for r in revs if r['ok']])):>8} {f(med([r['retries'] for r in revs])):>9}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(os.path.join(args.out, "stop-trap.txt"), "w") as fh:
            fh.write(text)
        with open(os.path.join(args.out, "stop-trap.json"), "w") as fh:
            json.dump({"meta": meta, "results": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
