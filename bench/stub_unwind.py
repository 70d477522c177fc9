#!/usr/bin/python3
"""bench/stub_unwind.py: what registering the return stubs' unwind
information with libgcc costs an apply and a revert (docs/architecture.md,
"Unwind information").

The target is tests/e2e/programs/unwinding.cc (a C++ program: libstdc++ and
libgcc_s mapped), with no thread inside the patched function, so that the
transition itself is short and the registration's remote calls stand out.
Each round runs, interleaved, for each model (hybrid, stop):

    graft apply --json, then graft revert --json
      with the registration    (the default)
      without it               (GRAFT_STUB_UNWIND_INFO=0: no .eh_frame
                                written, no __register_frame_info call, no
                                deregistration at the revert)

and reports the medians of graft's own `total_ms' and of the wall time of
each command, and the median of the per-round differences of total_ms
(with and without, run back to back): the registration's cost (the
.eh_frame write and one remote call at the apply; _Unwind_Find_FDE and
__deregister_frame_info at the revert).

    /usr/bin/python3 bench/stub_unwind.py --graft build/graft [--rounds 15] [--out]
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
PROGRAM = os.path.join(ROOT, "tests", "e2e", "programs", "unwinding.cc")

PATCH = r"""
#include <graft/patch.h>
static int new_dwell(int ms, int how) { return 2 + 0 * (ms + how); }
GRAFT_REPLACE(dwell, new_dwell);
"""


class Target:
    def __init__(self, path):
        self.p = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.p.stdout.readline().split()
        assert line[0] == "ready", line
        self.pid = int(line[1])

    def ask(self, cmd):
        self.p.stdin.write(cmd + "\n")
        return self.p.stdout.readline().strip()

    def close(self):
        self.p.kill()
        self.p.wait()


def build(graft, work):
    exe = os.path.join(work, "unwinding")
    subprocess.run(["g++", "-g", "-O2", "-Wl,--build-id", "-pthread", "-rdynamic",
                    "-I" + os.path.dirname(PROGRAM), PROGRAM, "-o", exe], check=True)
    src = os.path.join(work, "fix.c")
    with open(src, "w") as f:
        f.write(PATCH)
    patch = os.path.join(work, "fix.graft")
    env = dict(os.environ, GRAFT_INCLUDE_DIR=os.path.join(ROOT, "include"))
    subprocess.run([graft, "build", "--from-source", src, "--target", exe, "-o", patch], check=True,
                   env=env, capture_output=True)
    return exe, patch


def one(graft, target, args, env):
    t0 = time.monotonic()
    p = subprocess.run([graft] + args + ["--pid", str(target.pid), "--json"], capture_output=True, text=True,
                       env=env)
    wall = (time.monotonic() - t0) * 1000
    res = json.loads(p.stdout)["results"][0] if p.stdout.startswith("{") else {}
    if p.returncode != 0 or not res.get("ok"):
        sys.exit(f"graft {' '.join(args)} failed: {p.stdout} {p.stderr}")
    return res.get("total_ms", 0.0), wall


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--graft", default=os.path.join(ROOT, "build", "graft"))
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out", action="store_true", help="write bench/results/stub-unwind.{txt,json}")
    a = ap.parse_args(argv)
    graft = os.path.abspath(a.graft)
    work = tempfile.mkdtemp(prefix="graft-bench-stub-unwind.")
    exe, patch = build(graft, work)
    target = Target(exe)
    samples = {}
    try:
        for _ in range(a.rounds):
            for model in ("hybrid", "stop"):
                for registered in (True, False):
                    env = dict(os.environ)
                    if not registered:
                        env["GRAFT_STUB_UNWIND_INFO"] = "0"
                    ap_ = one(graft, target, ["apply", patch, "--model", model], env)
                    assert target.ask("call") == "2"
                    rv = one(graft, target, ["revert", "fix", "--model", model], env)
                    assert target.ask("call") == "1"
                    for op, (total, wall) in (("apply", ap_), ("revert", rv)):
                        samples.setdefault((model, registered, op), []).append((total, wall))
    finally:
        target.close()
        shutil.rmtree(work, ignore_errors=True)
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    lines = [f"graft return-stub unwind registration, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, "
             f"graft {rev}, {a.rounds} interleaved rounds, load {os.getloadavg()[0]:.1f}, "
             f"{os.cpu_count()} CPUs; medians (ms)",
             "model   op      registered: total_ms  wall    without: total_ms  wall    "
             "cost: median of per-round differences (total_ms)  [p25, p75]"]
    for model in ("hybrid", "stop"):
        for op in ("apply", "revert"):
            on = samples[(model, True, op)]
            off = samples[(model, False, op)]
            m = lambda xs, i: statistics.median(x[i] for x in xs)
            diffs = sorted(x[0] - y[0] for x, y in zip(on, off))
            q = statistics.quantiles(diffs, n=4) if len(diffs) >= 2 else [diffs[0]] * 3
            lines.append(f"{model:7} {op:7} {m(on, 0):20.2f} {m(on, 1):7.1f} {m(off, 0):17.2f} {m(off, 1):7.1f}    "
                         f"{statistics.median(diffs):+8.2f}  [{q[0]:+.2f}, {q[2]:+.2f}]")
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if a.out:
        with open(os.path.join(BENCH, "results", "stub-unwind.txt"), "w") as f:
            f.write(text)
        with open(os.path.join(BENCH, "results", "stub-unwind.json"), "w") as f:
            json.dump({f"{m} {'registered' if r else 'without'} {op}": xs for (m, r, op), xs in samples.items()},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
