#!/usr/bin/python3
"""bench/returns.py: how soon a transition ends once a thread that lives in a
replaced function returns from it (exit stubs, docs/architecture.md 5b).

The target is tests/e2e/programs/returns.c: a sleeper thread spends 3 s
inside dwell() and 50 ms outside it between calls, beside nine idle threads.
Each round, for each model (interleaved: lazy, hybrid, lazy, ...) and each
direction (apply, then revert of the same patch):

    wait until the sleeper has just entered dwell(); 0.3 s later run
    graft apply|revert --json; when graft exits, ask the target when dwell()
    last returned (CLOCK_REALTIME, taken right after the return)

and reports, as medians over the rounds:

  * return -> exit: from the sleeper's return to graft's exit, as seen by
    this script (includes graft's detach and exit);
  * return -> end: graft's own `return_to_end_ms': from the moment graft
    saw the trap of the sleeper's stub to the end of the transition (the
    entries written, the record `applied');
  * wall: the whole graft command.

With --baseline, one more configuration per model runs with
GRAFT_RETURN_STUBS=0 (the stubs off: the old checks alone) and
--timeout 8.

    /usr/bin/python3 bench/returns.py --graft build/graft [--rounds 7] [--out]
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
ROOT = os.path.dirname(BENCH)
PROGRAM = os.path.join(ROOT, "tests", "e2e", "programs", "returns.c")

PATCH = r"""
#include <graft/patch.h>
#include <time.h>
extern int entered;
static int new_dwell(int ms) {
  __atomic_fetch_add(&entered, 1, __ATOMIC_SEQ_CST);
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
  return 2;
}
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
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()

    def close(self):
        self.p.kill()
        self.p.wait()


def build(graft, work):
    exe = os.path.join(work, "returns")
    subprocess.run(["cc", "-O2", "-g", "-pthread", "-fno-ipa-ra", "-Wl,--build-id",
                    "-I" + os.path.dirname(PROGRAM), PROGRAM, "-o", exe], check=True)
    src = os.path.join(work, "fix.c")
    with open(src, "w") as f:
        f.write(PATCH)
    patch = os.path.join(work, "fix.graft")
    subprocess.run([graft, "build", "--from-source", src, "--target", exe, "-o", patch], check=True,
                   stdout=subprocess.DEVNULL)
    return exe, patch


def one(graft, target, args, env):
    n = int(target.ask("entered 0"))
    target.ask(f"entered {n + 1}")
    time.sleep(0.3)
    returns0 = int(target.ask("last").split()[2])
    t0 = time.time_ns()
    p = subprocess.run([graft] + args + ["--pid", str(target.pid), "--json"], capture_output=True, text=True,
                       env=env)
    t_exit = time.time_ns()
    r, t_ret, returns = (int(x) for x in target.ask("last").split())
    res = json.loads(p.stdout)["results"][0] if p.stdout.startswith("{") else {}
    ok = p.returncode == 0 and res.get("ok")
    return {
        "ok": bool(ok),
        "wall_ms": (t_exit - t0) / 1e6,
        "return_to_exit_ms": (t_exit - t_ret) / 1e6 if ok and returns > returns0 else None,
        "return_to_end_ms": res.get("return_to_end_ms"),
        "returns_passed": res.get("returns_passed"),
        "error": None if ok else (res.get("error") or p.stderr.strip()),
    }


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x):
    return "-" if x is None else f"{x:.3g}" if x < 100 else f"{x:.0f}"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--graft", default=os.path.join(ROOT, "build", "graft"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--models", default="lazy,hybrid")
    ap.add_argument("--baseline", action="store_true")
    ap.add_argument("--out", nargs="?", const=os.path.join(BENCH, "results"))
    a = ap.parse_args(argv)
    graft = os.path.abspath(a.graft)
    work = tempfile.mkdtemp(prefix="graft-bench-returns.")
    exe, patch = build(graft, work)
    configs = [(m, True) for m in a.models.split(",")]
    if a.baseline:
        configs += [(m, False) for m in a.models.split(",")]
    samples = {(m, s, d): [] for m, s in configs for d in ("apply", "revert")}
    target = Target(exe)
    target.ask("sleeper")
    try:
        for rnd in range(a.rounds):
            for model, stubs in configs:
                env = dict(os.environ)
                if not stubs:
                    env["GRAFT_RETURN_STUBS"] = "0"
                timeout = "20" if stubs else "8"
                ap_ = one(graft, target, ["apply", patch, "--model", model, "--timeout", timeout], env)
                samples[(model, stubs, "apply")].append(ap_)
                if ap_["ok"]:
                    rv = one(graft, target, ["revert", "fix", "--timeout", timeout], env)
                    samples[(model, stubs, "revert")].append(rv)
                    if not rv["ok"]:
                        subprocess.run([graft, "revert", "fix", "--pid", str(target.pid), "--model", "stop",
                                        "--timeout", "20"], capture_output=True)
                print(f"round {rnd + 1}/{a.rounds} {model} stubs={'on' if stubs else 'off'}: "
                      f"{ap_['wall_ms']:.0f} ms {'ok' if ap_['ok'] else ap_['error']}", file=sys.stderr)
    finally:
        target.close()
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    lines = [f"graft exit-stub benchmark, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, graft {rev}, "
             f"load {load}, {os.cpu_count()} CPUs",
             f"{a.rounds} interleaved rounds; sleeper 3 s inside dwell(), 50 ms outside; medians, ms",
             "",
             "model   stubs  op      ok    return->end (graft)  return->exit  wall"]
    for (model, stubs, op), xs in samples.items():
        ok = sum(x["ok"] for x in xs)
        lines.append(f"{model:<7} {'on' if stubs else 'off':<6} {op:<7} {ok}/{len(xs):<4} "
                     f"{fmt(med(x['return_to_end_ms'] for x in xs)):>19}  "
                     f"{fmt(med(x['return_to_exit_ms'] for x in xs)):>12}  {fmt(med(x['wall_ms'] for x in xs)):>5}")
        for x in xs:
            if x["error"]:
                lines.append(f"        failure: {x['error'][:150]}")
                break
    print("\n".join(lines))
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "returns.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(a.out, "returns.json"), "w") as f:
            json.dump({f"{m} stubs={'on' if s else 'off'} {d}": xs for (m, s, d), xs in samples.items()}, f,
                      indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
