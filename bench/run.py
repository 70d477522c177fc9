#!/usr/bin/python3
"""bench/run.py: measures graft's stop model against the target's thread count.

For each thread count (default 3, 16, 66, 128 threads in the target process)
and each worker mode (idle, busy), it starts bench/target.c, then runs K
trials of

    reset heartbeat window; graft apply --json; read the longest heartbeat gap
    reset; wait as long again; read the gap    (baseline, patch live)
    reset; graft revert --json; read the gap
    reset; wait as long again; read the gap    (baseline, patch reverted)

and prints medians and p90 of graft's global pause (pause_ms), its apply time
(total_ms), the wall time of the `graft apply` command, and the heartbeat gap
during the apply, next to the baseline gap of the same windows without graft.
See bench/README.md.

Run with Debian's python (for matplotlib): /usr/bin/python3 bench/run.py
"""
import argparse
import datetime
import json
import math
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)

# Quoted from the issue: the same heartbeat workload measured on these 2-core
# machines with the two public userspace live patchers. NOT measured here.
# (threads, apply ms (lo, hi), heartbeat gap ms (lo, hi))
REFERENCE = {
    "LibCare": [(3, (37, 56), (6, 23)), (66, (711, 711), (380, 380))],
    "libpulp": [(3, (41, 63), (9, 12)), (66, (208, 208), (12, 12))],
}
GOAL_THREADS, GOAL_GAP_MS, GOAL_APPLY_MS = 66, 5.0, 50.0


class BenchError(Exception):
    pass


# ----------------------------------------------------------------- statistics

def median(xs):
    return statistics.median(xs) if xs else None


def p90(xs):
    """Nearest-rank 90th percentile: the smallest sample >= 90% of samples."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def fmt(v, digits=None):
    if v is None:
        return "-"
    if digits is None:
        digits = 2 if v < 10 else 1 if v < 100 else 0
    return f"{v:.{digits}f}"


def medp90(xs):
    return f"{fmt(median(xs))} / {fmt(p90(xs))}"


# --------------------------------------------------------------------- target

class Target:
    """One bench/target.c process, driven over its stdin/stdout."""

    def __init__(self, exe, workers, mode, heartbeat_sleep_us, timeout=20.0, env=None):
        self.timeout = timeout
        self.buf = b""
        self.proc = subprocess.Popen(
            [exe, str(workers), mode, str(heartbeat_sleep_us)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.pid = self.proc.pid
        line = self._readline()
        if not line.startswith("ready "):
            raise BenchError(f"target did not start: {line!r}")
        self.ready = dict(kv.split("=", 1) for kv in line.split()[1:])

    def _readline(self):
        deadline = time.monotonic() + self.timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"target {self.pid} did not answer in {self.timeout} s")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise BenchError(f"target {self.pid} exited "
                                     f"(status {self.proc.poll()})")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def call(self, command):
        try:
            self.proc.stdin.write(command.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise BenchError(f"target {self.pid} exited (status {self.proc.poll()})")
        return self._readline()

    def reset(self):
        if self.call("reset") != "ok":
            raise BenchError("target: bad answer to reset")

    def stat(self):
        line = self.call("stat")
        try:
            return {k: int(v) for k, v in (kv.split("=", 1) for kv in line.split())}
        except ValueError:
            raise BenchError(f"target: bad answer to stat: {line!r}")

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call("quit")
            except BenchError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


# ---------------------------------------------------------------------- graft

def run_graft(args, argv, pid):
    """Runs one graft command; returns (result dict of this pid, wall ms, doc)."""
    cmd = [args.graft] + argv
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=args.command_timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"`{' '.join(cmd)}` did not finish in {args.command_timeout} s")
    wall = (time.perf_counter() - t0) * 1000
    try:
        doc = json.loads(p.stdout)
        res = next(r for r in doc["results"] if r.get("pid") == pid)
    except (ValueError, KeyError, TypeError, StopIteration):
        raise BenchError(f"`{' '.join(cmd)}` exited {p.returncode} without the "
                         f"expected JSON\nstdout: {p.stdout.strip()[:800]}\n"
                         f"stderr: {p.stderr.strip()[:800]}")
    if not res.get("ok") or p.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` exited {p.returncode}: "
                         f"{res.get('error') or p.stderr.strip()[:800]}")
    return res, wall, doc


def graft_apply(args, patch, pid):
    argv = ["apply", patch, "--pid", str(pid), "--json"]
    if args.model:
        argv += ["--model", args.model]
    if args.graft_timeout is not None:
        argv += ["--timeout", str(args.graft_timeout)]
    return run_graft(args, argv, pid)


def graft_revert(args, patch_id, pid):
    argv = ["revert", patch_id, "--pid", str(pid), "--json"]
    if args.graft_timeout is not None:
        argv += ["--timeout", str(args.graft_timeout)]
    return run_graft(args, argv, pid)


# --------------------------------------------------------------------- trials

def window(target, seconds):
    target.reset()
    time.sleep(seconds)
    return target.stat()


def live_check(st, expect):
    """True if calls in the window answered as `expect` ('patched' or 'orig'),
    False if all answered the other way, None if no call was made."""
    other = "orig" if expect == "patched" else "patched"
    if st[expect] > 0:
        return True
    if st[other] > 0:
        return False
    return None


def trial(args, target, patch):
    """One apply/revert cycle; raises BenchError on any failure."""
    t = {}
    target.reset()
    w0 = time.perf_counter()
    res, wall, doc = graft_apply(args, patch, target.pid)
    st = target.stat()
    win = time.perf_counter() - w0
    patch_id = doc.get("patch_id")
    t.update(pause_ms=res.get("pause_ms"), max_pause_ms=res.get("max_pause_ms"),
             total_ms=res.get("total_ms"),
             retries=res.get("retries"), wall_ms=wall, graft_threads=res.get("threads"),
             gap_ms=st["gap_us"] / 1000, window_ms=win * 1000)
    # Baseline with the patch live: a window as long as the apply window.
    base_win = max(win, args.min_window_ms / 1000)
    st = window(target, base_win)
    t["base_gaps_ms"] = [st["gap_us"] / 1000]
    t["apply_live"] = live_check(st, "patched")
    try:
        target.reset()
        res, wall, _ = graft_revert(args, patch_id, target.pid)
        st = target.stat()
    except BenchError as e:
        raise BenchError(f"revert failed: {e}", ) from e
    t.update(revert_pause_ms=res.get("pause_ms"), revert_total_ms=res.get("total_ms"),
             revert_retries=res.get("retries"), revert_wall_ms=wall,
             revert_gap_ms=st["gap_us"] / 1000)
    st = window(target, base_win)
    t["base_gaps_ms"].append(st["gap_us"] / 1000)
    t["revert_live"] = live_check(st, "orig")
    t["worker_errors"] = st["errors"]
    return t


def run_config(args, exe, patch, threads, mode):
    workers = threads - 2
    cfg = {"threads": threads, "mode": mode, "workers": workers, "trials": [],
           "failures": [], "notes": []}
    target = Target(exe, workers, mode, args.heartbeat_sleep_us)
    try:
        time.sleep(args.settle)
        consecutive = 0
        n = args.warmup + args.trials
        for i in range(n):
            if time.monotonic() > args.deadline:
                cfg["notes"].append(f"time budget ({args.budget:g} s) spent after "
                                    f"{len(cfg['trials'])} trials")
                break
            try:
                t = trial(args, target, patch)
                consecutive = 0
                if i >= args.warmup:
                    cfg["trials"].append(t)
            except BenchError as e:
                consecutive += 1
                cfg["failures"].append(str(e))
                print(f"    trial {i + 1 - args.warmup}: FAILED: {e}", file=sys.stderr)
                if str(e).startswith("revert failed") or target.proc.poll() is not None:
                    # The process may be left patched or be gone: start afresh.
                    st = target.proc.poll()
                    how = ("" if st is None else f" (target had exited: "
                           f"{'signal ' + signal.Signals(-st).name if st < 0 else 'status ' + str(st)})")
                    cfg["notes"].append(f"target restarted after: {str(e).splitlines()[0]}{how}")
                    print(f"    target restarted{how}", file=sys.stderr)
                    target.close()
                    target = Target(exe, workers, mode, args.heartbeat_sleep_us)
                    time.sleep(args.settle)
                if consecutive >= args.max_failures:
                    cfg["notes"].append(f"gave up after {consecutive} failures in a row")
                    break
            if args.verbose and cfg["trials"] and i >= args.warmup and not consecutive:
                t = cfg["trials"][-1]
                print(f"    trial {i + 1 - args.warmup}: pause {fmt(t['pause_ms'])} "
                      f"apply {fmt(t['total_ms'])} wall {fmt(t['wall_ms'])} "
                      f"gap {fmt(t['gap_ms'])} base {fmt(max(t['base_gaps_ms']))} ms, "
                      f"retries {t['retries']}", file=sys.stderr)
        cfg["target_errors"] = target.stat()["errors"] if target.proc.poll() is None else None
    finally:
        target.close()
    return cfg


# ---------------------------------------------------------------------- report

COLS = [("threads", 7), ("mode", 6), ("ok", 6), ("baseline gap", 14),
        ("heartbeat gap", 14), ("pause", 14), ("max pause", 14), ("apply", 14), ("wall", 14),
        ("retries", 8), ("checks", 7)]


def row(values):
    return "  ".join(str(v).rjust(w) if i > 1 else str(v).ljust(w)
                     for i, ((_, w), v) in enumerate(zip(COLS, values))).rstrip()


def summarize(cfg):
    ts = cfg["trials"]
    get = lambda k: [t[k] for t in ts if t.get(k) is not None]
    s = {k: get(k) for k in ("pause_ms", "max_pause_ms", "total_ms", "wall_ms", "gap_ms", "retries",
                             "revert_pause_ms", "revert_total_ms", "revert_wall_ms",
                             "revert_gap_ms")}
    s["base_gaps_ms"] = [g for t in ts for g in t["base_gaps_ms"]]
    checks = []
    bad_apply = sum(1 for t in ts if t["apply_live"] is False)
    bad_revert = sum(1 for t in ts if t["revert_live"] is False)
    if bad_apply:
        checks.append(f"{bad_apply} post-apply windows saw only original calls")
    if bad_revert:
        checks.append(f"{bad_revert} post-revert windows saw only patched calls")
    seen = {t["graft_threads"] for t in ts if t.get("graft_threads") is not None}
    if seen - {cfg["threads"]}:
        checks.append(f"graft reported {sorted(seen)} threads, the target has "
                      f"{cfg['threads']}")
    if cfg.get("target_errors"):
        checks.append(f"{cfg['target_errors']} worker errors (a blocking call "
                      "returned, or bench_work answered wrongly)")
    if cfg["failures"]:
        checks.append(f"{len(cfg['failures'])} failed trials, first: "
                      f"{cfg['failures'][0].splitlines()[0]}")
    s["checks"] = checks
    s["apply_live"] = (sum(1 for t in ts if t["apply_live"]),
                       sum(1 for t in ts if t["apply_live"] is not None))
    s["revert_live"] = (sum(1 for t in ts if t["revert_live"]),
                        sum(1 for t in ts if t["revert_live"] is not None))
    return s


def report(args, meta, configs):
    out = []
    out.append("graft stop model: global pause, apply time and heartbeat gap "
               "against thread count")
    for k, v in meta.items():
        out.append(f"  {k}: {v}")
    out.append("")
    out.append("All times in ms, 'median / p90' over the trials of one run "
               "(p90 = nearest rank).")
    out.append("threads = threads of the target process (workers + main + heartbeat).")
    out.append("baseline gap = heartbeat gap in windows of the same length without "
               "graft running; heartbeat gap = during `graft apply`;")
    out.append("pause = graft's pause_ms (the successful global stop); max pause = "
               "its max_pause_ms (longest stop, retries included);")
    out.append("apply = graft's total_ms; wall = the `graft apply` command as timed "
               "by this script; retries = median/max.")
    out.append("")
    out.append(row([c for c, _ in COLS]))
    out.append(row(["-" * w for _, w in COLS]))
    notes = []
    for cfg in configs:
        s = summarize(cfg)
        ok = f"{len(cfg['trials'])}/{args.trials}"
        r = s["retries"]
        retries = f"{fmt(median(r), 0)}/{max(r)}" if r else "-"
        out.append(row([cfg["threads"], cfg["mode"], ok, medp90(s["base_gaps_ms"]),
                        medp90(s["gap_ms"]), medp90(s["pause_ms"]), medp90(s["max_pause_ms"]),
                        medp90(s["total_ms"]), medp90(s["wall_ms"]), retries,
                        "FAIL" if s["checks"] else "ok"]))
        for c in s["checks"] + cfg["notes"]:
            notes.append(f"  {cfg['threads']} {cfg['mode']}: {c}")
    out.append("")
    out.append("Quoted for reference, NOT measured here (the same heartbeat workload "
               "on these 2-core machines, from the issue):")
    for name, rows in REFERENCE.items():
        for threads, apply, gap in rows:
            rng = lambda lo_hi: (f"{lo_hi[0]}" if lo_hi[0] == lo_hi[1]
                                 else f"{lo_hi[0]}-{lo_hi[1]}")
            out.append(row([threads, name, "quoted", "-", rng(gap), "-", "-", rng(apply),
                            "-", "-", "-"]))
    out.append("")
    out.append(f"Goal at {GOAL_THREADS} threads: heartbeat gap <= {GOAL_GAP_MS:g} ms "
               f"and apply <= {GOAL_APPLY_MS:g} ms.")
    for cfg in configs:
        if cfg["threads"] != GOAL_THREADS:
            continue
        s = summarize(cfg)
        if not s["gap_ms"]:
            out.append(f"  {cfg['mode']}: no successful trial")
            continue
        verdict = []
        for label, f in (("median", median), ("p90", p90)):
            g, a = f(s["gap_ms"]), f(s["total_ms"])
            met = g <= GOAL_GAP_MS and a is not None and a <= GOAL_APPLY_MS
            verdict.append(f"{label} gap {fmt(g)}, apply {fmt(a)}: "
                           f"{'met' if met else 'NOT met'}")
        out.append(f"  {cfg['mode']}: " + "; ".join(verdict))
    out.append("")
    out.append("Revert (same trials), median / p90:")
    for cfg in configs:
        s = summarize(cfg)
        if s["revert_gap_ms"]:
            out.append(f"  {cfg['threads']:>3} {cfg['mode']:<4}  heartbeat gap "
                       f"{medp90(s['revert_gap_ms'])}, pause {medp90(s['revert_pause_ms'])}, "
                       f"revert {medp90(s['revert_total_ms'])}, wall "
                       f"{medp90(s['revert_wall_ms'])}")
    out.append("")
    out.append("Checks (workers classify every bench_work answer): windows after apply "
               "that saw patched calls / saw any call; after revert, original calls:")
    for cfg in configs:
        s = summarize(cfg)
        out.append(f"  {cfg['threads']:>3} {cfg['mode']:<4}  apply live "
                   f"{s['apply_live'][0]}/{s['apply_live'][1]}, revert live "
                   f"{s['revert_live'][0]}/{s['revert_live'][1]}, worker errors "
                   f"{cfg.get('target_errors')}")
    if notes:
        out.append("")
        out.append("Problems:")
        out.extend(notes)
    return "\n".join(out) + "\n"


def plot(configs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 7))
    colors = {"idle": "tab:blue", "busy": "tab:red"}
    for mode in ("idle", "busy"):
        cs = [c for c in configs if c["mode"] == mode and c["trials"]]
        if not cs:
            continue
        x = [c["threads"] for c in cs]
        ss = [summarize(c) for c in cs]

        def line(ax, key, style, label, marker="o"):
            med = [median(s[key]) for s in ss]
            hi = [p90(s[key]) for s in ss]
            ax.plot(x, med, style, color=colors[mode], marker=marker, label=label)
            ax.vlines(x, med, hi, color=colors[mode], alpha=0.5)

        line(ax1, "gap_ms", "-", f"heartbeat gap, {mode}")
        line(ax1, "pause_ms", "--", f"global pause, {mode}", marker="s")
        line(ax1, "base_gaps_ms", ":", f"baseline gap (no graft), {mode}", marker=".")
        line(ax2, "total_ms", "-", f"apply (total_ms), {mode}")
        line(ax2, "wall_ms", "--", f"`graft apply` wall, {mode}", marker="s")
    for name, marker in (("LibCare", "^"), ("libpulp", "v")):
        for ax, idx in ((ax1, 2), (ax2, 1)):
            xs = [r[0] for r in REFERENCE[name]]
            lo = [r[idx][0] for r in REFERENCE[name]]
            hi = [r[idx][1] for r in REFERENCE[name]]
            mid = [(a + b) / 2 for a, b in zip(lo, hi)]
            ax.errorbar(xs, mid, yerr=[[m - a for m, a in zip(mid, lo)],
                                       [b - m for m, b in zip(mid, hi)]],
                        fmt=marker, color="gray", mfc="none", capsize=3,
                        label=f"{name} (quoted, not measured here)")
    ax1.axhline(GOAL_GAP_MS, color="green", lw=0.8, ls="-.", label=f"goal gap {GOAL_GAP_MS:g} ms")
    ax2.axhline(GOAL_APPLY_MS, color="green", lw=0.8, ls="-.",
                label=f"goal apply {GOAL_APPLY_MS:g} ms")
    for ax, title in ((ax1, "heartbeat gap and global pause"),
                      (ax2, "apply time")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ticks = sorted({c["threads"] for c in configs} | {3, 66})
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
        ax.set_xlabel("threads in the target process")
        ax.set_ylabel("ms (median; bar up to p90)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        failed = [c for c in configs if not c["trials"]]
        for c in failed:
            ax.annotate(f"{c['mode']}: failed", (c["threads"], 1), xycoords=("data", "axes fraction"),
                        xytext=(0, -4 - 10 * (c["mode"] == "busy")), textcoords="offset points",
                        ha="center", va="top", fontsize=7, color=colors[c["mode"]])
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    fig.suptitle("graft stop model on a 2-core machine (one run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------ main

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--graft", default="build/graft",
                    help="graft binary (default build/graft, relative to the "
                         "current directory or else the repository root)")
    ap.add_argument("--trials", type=int, default=15, help="trials per configuration (15)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="untimed trials first, per configuration (1)")
    ap.add_argument("--threads", default="3,16,66,128",
                    help="comma-separated thread counts of the target process, "
                         "each >= 3 (3,16,66,128)")
    ap.add_argument("--modes", default="idle,busy", help="idle,busy")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run for CI: 3 and 66 threads, 3 trials, graft "
                         "--timeout 2, 2 failures in a row end a configuration, "
                         "45 s budget")
    ap.add_argument("--budget", type=float, default=None,
                    help="stop starting trials after this many seconds "
                         "(default none; 45 with --quick)")
    ap.add_argument("--out", nargs="?", const=os.path.join(BENCH, "results"),
                    default=None, metavar="DIR",
                    help="write stop-model.txt, .png and .json to DIR "
                         "(default bench/results)")
    ap.add_argument("--model", default="stop", help="graft apply --model (stop)")
    ap.add_argument("--graft-timeout", type=float, default=None,
                    help="pass --timeout SECONDS to graft apply/revert")
    ap.add_argument("--command-timeout", type=float, default=60.0,
                    help="kill a graft command after this many seconds (60)")
    ap.add_argument("--max-failures", type=int, default=3,
                    help="stop a configuration after this many failures in a row (3)")
    ap.add_argument("--heartbeat-sleep-us", type=int, default=100,
                    help="heartbeat sleep between clock reads; 0 = spin (100)")
    ap.add_argument("--min-window-ms", type=float, default=5.0,
                    help="shortest baseline window (5)")
    ap.add_argument("--settle", type=float, default=0.3,
                    help="seconds to let a new target settle (0.3)")
    ap.add_argument("--workdir", help="where to build target and patch (default: "
                    "a temporary directory, removed afterwards)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every trial")
    args = ap.parse_args(argv)
    if args.quick:
        args.threads = "3,66"
        args.trials = min(args.trials, 3)
        if args.budget is None:
            args.budget = 45.0
        if args.graft_timeout is None:
            args.graft_timeout = 2.0
        args.max_failures = min(args.max_failures, 2)
    args.thread_counts = [int(x) for x in args.threads.split(",")]
    args.mode_list = args.modes.split(",")
    if any(t < 3 for t in args.thread_counts) or \
            any(m not in ("idle", "busy") for m in args.mode_list) or args.trials < 1:
        ap.error("thread counts must be >= 3, modes idle or busy, trials >= 1")
    if not os.path.isabs(args.graft) and not os.path.exists(args.graft):
        args.graft = os.path.join(ROOT, args.graft)
    args.graft = os.path.abspath(args.graft)
    if not os.access(args.graft, os.X_OK):
        ap.error(f"graft not found or not executable: {args.graft}")
    return args


def build(args, workdir):
    exe = os.path.join(workdir, "graft-bench-target")
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O2", "-g", "-pthread", os.path.join(BENCH, "target.c"), "-o", exe]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` failed:\n{p.stderr}")
    patch = os.path.join(workdir, "bench-fix.graft")
    cmd = [args.graft, "build", "--from-source", os.path.join(BENCH, "patch.c"),
           "--target", exe, "-o", patch]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0 or not os.path.exists(patch):
        raise BenchError(f"`{' '.join(cmd)}` exited {p.returncode}:\n"
                         f"{p.stdout}{p.stderr}")
    return exe, patch


def metadata(args):
    def sh(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True,
                                  cwd=ROOT, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, Linux {platform.release()}",
        "graft": f"{args.graft} (repo at {sh(['git', 'rev-parse', '--short', 'HEAD']) or '?'})",
        "trials": f"{args.trials} per configuration after {args.warmup} warm-up; "
                  f"model {args.model}",
        "heartbeat": "spinning" if args.heartbeat_sleep_us == 0 else
                     f"clock read every {args.heartbeat_sleep_us} us of sleep",
        "load average at start": " ".join(open("/proc/loadavg").read().split()[:3]),
    }


def main(argv):
    args = parse_args(argv)
    start = time.monotonic()
    args.deadline = start + args.budget if args.budget else math.inf
    workdir = args.workdir or tempfile.mkdtemp(prefix="graft-bench-")
    os.makedirs(workdir, exist_ok=True)
    try:
        meta = metadata(args)
        exe, patch = build(args, workdir)
        configs = []
        for threads in args.thread_counts:
            for mode in args.mode_list:
                if time.monotonic() > args.deadline:
                    print(f"  {threads} threads, {mode}: skipped, time budget spent",
                          file=sys.stderr)
                    continue
                print(f"  {threads} threads, {mode} ...", file=sys.stderr, flush=True)
                configs.append(run_config(args, exe, patch, threads, mode))
        meta["load average at end"] = " ".join(open("/proc/loadavg").read().split()[:3])
        meta["duration"] = f"{time.monotonic() - start:.0f} s"
        text = report(args, meta, configs)
        print(text, end="")
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, "stop-model.txt"), "w") as f:
                f.write(text)
            with open(os.path.join(args.out, "stop-model.json"), "w") as f:
                json.dump({"meta": meta, "configs": configs}, f, indent=1)
            plot(configs, os.path.join(args.out, "stop-model.png"))
            print(f"wrote {args.out}/stop-model.{{txt,json,png}}", file=sys.stderr)
        failed = any(summarize(c)["checks"] or not c["trials"] for c in configs)
        return 1 if failed else 0
    except BenchError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 1
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main(sys.argv[1:]))
