#!/usr/bin/python3
"""bench/models.py: the stop model against the per-thread models, from one run.

For each thread count (default 16, 66, 128) and worker mode (idle, busy) of
bench/target.c, and each model (stop, hybrid, lazy), K trials of

    reset heartbeat window; graft apply --model M --json; read the gap
    reset; wait as long again; read the gap      (baseline)
    graft revert (stop model)

reporting graft's global pause (stop) or its longest and p99 single-thread
stall (per-thread models, from `stall_max_us' / `stall_p99_us'), the time the
transition took, graft's total apply time, and the heartbeat thread's longest
gap next to its baseline and a control (idle rows: the same window while a
process that is not graft spins for as long as graft's apply took: the gap
any process running beside the target causes on this machine). Then the per-call cost of a call through a gate
during a transition against a direct call (the target's `calltime' command,
run by its main thread). Writes models.txt / models.json / models.png with
--out. See bench/README.md.

Run with Debian's python (matplotlib): /usr/bin/python3 bench/models.py
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import run as R  # noqa: E402  (bench/run.py: Target, graft calls, stats, build)

GOAL_THREADS, GOAL_GAP_MS = 66, 1.0


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--graft", default="build/graft")
    ap.add_argument("--threads", default="16,66,128")
    ap.add_argument("--modes", default="idle,busy")
    ap.add_argument("--models", default="stop,hybrid,lazy")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--graft-timeout", type=float, default=10.0)
    ap.add_argument("--command-timeout", type=float, default=60.0)
    ap.add_argument("--heartbeat-sleep-us", type=int, default=100)
    ap.add_argument("--calls", type=int, default=2000000, help="calls per calltime sample")
    ap.add_argument("--quick", action="store_true", help="16 and 66 threads, 2 trials")
    ap.add_argument("--out", nargs="?", const=os.path.join(BENCH, "results"))
    ap.add_argument("--workdir")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.threads, a.trials, a.calls = "16,66", 2, 500000
    a.threads = [int(x) for x in a.threads.split(",")]
    a.modes = a.modes.split(",")
    a.models = a.models.split(",")
    a.min_window_ms, a.settle, a.model = 5.0, 0.3, None
    return a


def trial(args, target, patch, model):
    target.reset()
    w0 = time.perf_counter()
    args.model = model
    res, wall, doc = R.graft_apply(args, patch, target.pid)
    st = target.stat()
    win = time.perf_counter() - w0
    t = {"pause_ms": res.get("pause_ms"), "stall_max_ms": res.get("stall_max_us", 0) / 1000,
         "stall_p99_ms": res.get("stall_p99_us", 0) / 1000, "stalls": res.get("stalls"),
         "transition_ms": res.get("transition_ms"), "total_ms": res.get("total_ms"),
         "wall_ms": wall, "gap_ms": st["gap_us"] / 1000, "breakpoint_hits": res.get("breakpoint_hits")}
    st = R.window(target, max(win, args.min_window_ms / 1000))
    t["base_gap_ms"] = st["gap_us"] / 1000
    t["live"] = R.live_check(st, "patched")
    args.model = None
    R.graft_revert(args, doc["patch_id"], target.pid)
    return t


def run_config(args, exe, patch, threads, mode, model):
    cfg = {"threads": threads, "mode": mode, "model": model, "trials": [], "failures": []}
    if model == "lazy" and mode == "busy":
        cfg["skipped"] = "busy workers never block in a system call: lazy cannot move them"
        return cfg
    target = R.Target(exe, threads - 2, mode, args.heartbeat_sleep_us)
    try:
        time.sleep(args.settle)
        for i in range(args.warmup + args.trials):
            try:
                t = trial(args, target, patch, model)
                if i >= args.warmup:
                    cfg["trials"].append(t)
                    if args.verbose:
                        print(f"    {threads} {mode} {model}: {t}", file=sys.stderr)
            except R.BenchError as e:
                cfg["failures"].append(str(e).splitlines()[0])
                print(f"    {threads} {mode} {model}: FAILED: {e}", file=sys.stderr)
                if target.proc.poll() is not None:
                    break
        # Control: the same window while a process that is not graft only
        # spins for as long as graft's apply took (wall): how much of the
        # gap any process running beside the target causes on this machine.
        walls = [t["wall_ms"] for t in cfg["trials"]]
        if walls and mode == "idle":
            cfg["control_gap_ms"] = [control_trial(target, med(walls)) for _ in range(args.trials)]
    finally:
        target.close()
    return cfg


SPIN = "import sys, time\nend = float(sys.argv[1])\nwhile time.monotonic() < end: pass\n"


def control_trial(target, wall_ms):
    target.reset()
    subprocess.run([sys.executable, "-c", SPIN, str(time.monotonic() + wall_ms / 1000)], check=True)
    gap = target.stat()["gap_us"] / 1000
    time.sleep(0.05)
    return gap


def calltime(target, n):
    line = target.call(f"calltime {n}")
    kv = dict(x.split("=") for x in line.split())
    return float(kv["ns"]), int(kv["patched"])


def gate_cost(args, exe, patch):
    """ns per call: original entry, through a gate during a transition (the
    main thread moved, a busy worker keeps a lazy transition open), and the
    direct jump to the replacement after a completed transition."""
    out = {"calls": args.calls}
    target = R.Target(exe, 1, "busy", args.heartbeat_sleep_us)
    try:
        time.sleep(args.settle)
        out["direct_original_ns"] = med([calltime(target, args.calls)[0] for _ in range(3)])
        cmd = [args.graft, "apply", patch, "--pid", str(target.pid), "--model", "lazy",
               "--timeout", "6", "--json"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 5
        while calltime(target, 1000)[1] != 1000:
            if time.monotonic() > deadline:
                raise R.BenchError("the main thread never moved to the new universe")
            time.sleep(0.05)
        samples = []
        for _ in range(3):
            ns, patched = calltime(target, args.calls)
            if patched == args.calls and p.poll() is None:
                samples.append(ns)
        out["gate_ns"] = med(samples)
        p.communicate(timeout=60)  # times out (the busy worker), rolls back
        args.model = "hybrid"
        _, _, doc = R.graft_apply(args, patch, target.pid)
        out["direct_replacement_ns"] = med([calltime(target, args.calls)[0] for _ in range(3)])
        args.model = None
        R.graft_revert(args, doc["patch_id"], target.pid)
    finally:
        target.close()
    if out.get("gate_ns") and out.get("direct_replacement_ns"):
        out["gate_extra_ns"] = out["gate_ns"] - out["direct_replacement_ns"]
    return out


def summarize(cfg):
    ts = cfg["trials"]
    s = {k: med([t[k] for t in ts]) for k in
         ("pause_ms", "stall_max_ms", "stall_p99_ms", "transition_ms", "total_ms", "gap_ms", "base_gap_ms")}
    s["control_gap_ms"] = med(cfg.get("control_gap_ms", []))
    s["worst_stall_ms"] = max((t["stall_max_ms"] for t in ts), default=None)
    s["worst_gap_ms"] = max((t["gap_ms"] for t in ts), default=None)
    # None: no call in the window (idle workers call once per 100 ms): not a failure
    s["live"] = all(t["live"] is not False for t in ts) if ts else None
    return s


def f(v):
    return R.fmt(v)


def report(args, meta, configs, gate):
    lines = [f"graft models benchmark, {meta['date']}, graft {meta['commit']}, "
             f"load {meta['load']}, {meta['cpus']} CPUs",
             f"{args.trials} trials per row (after {args.warmup} warm-up); times are medians, ms",
             "", "threads  mode  model   ok   global pause  stall max  stall p99  worst stall"
             "  transition  apply   heartbeat gap  baseline  control  live"]
    for c in configs:
        if c.get("skipped"):
            lines.append(f"{c['threads']:>7}  {c['mode']:<4}  {c['model']:<6}  skipped: {c['skipped']}")
            continue
        s = summarize(c)
        per_thread = c["model"] != "stop"
        lines.append(
            f"{c['threads']:>7}  {c['mode']:<4}  {c['model']:<6} {len(c['trials'])}/{args.trials}"
            f"  {f(s['pause_ms']) if not per_thread else 'none':>12}"
            f"  {f(s['stall_max_ms']) if per_thread else '-':>9}  {f(s['stall_p99_ms']) if per_thread else '-':>9}"
            f"  {f(s['worst_stall_ms']) if per_thread else '-':>11}"
            f"  {f(s['transition_ms']) if per_thread else '-':>10}  {f(s['total_ms']):>6}"
            f"  {f(s['gap_ms']):>14}  {f(s['base_gap_ms']):>8}  {f(s['control_gap_ms']):>7}"
            f"  {'ok' if s['live'] else 'FAIL'}")
        for e in c["failures"]:
            lines.append(f"         failure: {e[:150]}")
    lines.append("")
    if gate:
        lines.append(f"per-call cost (main thread, {gate['calls']} calls, median of 3): original "
                     f"{f(gate.get('direct_original_ns'))} ns, through the gate during a transition "
                     f"{f(gate.get('gate_ns'))} ns, direct jump to the replacement after it "
                     f"{f(gate.get('direct_replacement_ns'))} ns: the gate adds "
                     f"{f(gate.get('gate_extra_ns'))} ns per call")
    lines.append("baseline: the heartbeat's longest gap with nothing else running; control: with a "
                 "process that is not graft spinning for as long as graft's apply took (idle rows)")
    goal = [c for c in configs if c["threads"] == GOAL_THREADS and c["model"] != "stop" and c["trials"]]
    for c in goal:
        s = summarize(c)
        ok = s["gap_ms"] is not None and s["gap_ms"] <= max(GOAL_GAP_MS, s["base_gap_ms"] or 0)
        lines.append(f"goal at {GOAL_THREADS} threads, {c['mode']}, {c['model']}: heartbeat gap "
                     f"{f(s['gap_ms'])} ms (median) vs baseline {f(s['base_gap_ms'])} ms and the "
                     f"{GOAL_GAP_MS:g} ms target: {'met' if ok else 'NOT met'}"
                     f" (control {f(s['control_gap_ms'])} ms)")
    return "\n".join(lines)


def plot(configs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [c for c in configs if c["trials"]]
    labels = [f"{c['threads']} {c['mode']}\n{c['model']}" for c in rows]
    stop_pause = [summarize(c)["pause_ms"] if c["model"] == "stop" else 0 for c in rows]
    smax = [summarize(c)["stall_max_ms"] if c["model"] != "stop" else 0 for c in rows]
    sp99 = [summarize(c)["stall_p99_ms"] if c["model"] != "stop" else 0 for c in rows]
    gap = [summarize(c)["gap_ms"] for c in rows]
    base = [summarize(c)["base_gap_ms"] for c in rows]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(max(8, len(rows) * 0.9), 8))
    x = range(len(rows))
    a1.bar([i - 0.27 for i in x], stop_pause, 0.27, label="stop: global pause (all threads)")
    a1.bar(list(x), smax, 0.27, label="per-thread: longest single-thread stall")
    a1.bar([i + 0.27 for i in x], sp99, 0.27, label="per-thread: p99 single-thread stall")
    a1.set_yscale("symlog", linthresh=0.1)
    a1.set_ylabel("ms (median over trials)")
    a1.set_xticks(list(x), labels, fontsize=7)
    a1.legend(fontsize=8)
    a1.set_title("How long threads are stopped")
    a2.bar([i - 0.2 for i in x], gap, 0.4, label="heartbeat gap during apply")
    a2.bar([i + 0.2 for i in x], base, 0.4, label="baseline gap (no graft)")
    a2.set_yscale("symlog", linthresh=0.1)
    a2.set_ylabel("ms (median)")
    a2.set_xticks(list(x), labels, fontsize=7)
    a2.legend(fontsize=8)
    a2.set_title("What a latency-sensitive thread of the target sees")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv):
    args = parse_args(argv)
    args.graft = os.path.abspath(args.graft)
    workdir = args.workdir or tempfile.mkdtemp(prefix="graft-bench-models.")
    exe, patch = R.build(args, workdir)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": subprocess.run(["git", "-C", BENCH, "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True).stdout.strip(),
            "load": " ".join(open("/proc/loadavg").read().split()[:3]), "cpus": os.cpu_count()}
    configs = []
    for threads in args.threads:
        for mode in args.modes:
            for model in args.models:
                print(f"  {threads} threads, {mode}, {model}", file=sys.stderr)
                configs.append(run_config(args, exe, patch, threads, mode, model))
    gate = None
    try:
        gate = gate_cost(args, exe, patch)
    except R.BenchError as e:
        print(f"  gate cost: FAILED: {e}", file=sys.stderr)
    text = report(args, meta, configs, gate)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "models.txt"), "w") as fh:
            fh.write(text + "\n")
        with open(os.path.join(args.out, "models.json"), "w") as fh:
            json.dump({"meta": meta, "configs": configs, "gate": gate}, fh, indent=1)
        plot(configs, os.path.join(args.out, "models.png"))
    bad = any(c["failures"] for c in configs) or not gate
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
