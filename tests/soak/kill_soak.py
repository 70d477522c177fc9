#!/usr/bin/env python3
"""Kill soak test: graft is killed (SIGKILL) in the middle of `apply` and
`revert`, again and again, on one running target; the target must never
crash, hang or compute a wrong result, and after `graft recover` it must be
fully patched or fully unpatched, with `graft list` saying which.

Two kinds of faults:
  random  SIGKILL from outside at a uniformly random moment of the
          operation (0 to 1.2 times its measured duration);
  point   GRAFT_FAULT=NAME[:N]: graft kills itself at a named step of the
          write protocol (see src/common/fault_point.h), so every step is
          hit, not only the likely ones.

    tests/soak/kill_soak.py --graft build/graft --include include --trials 200
    tests/soak/kill_soak.py ... --json results.json      # the figures, for the README
    tests/soak/kill_soak.py ... --cumulative --model hybrid

With --cumulative, the patched target gets a cumulative patch (soak_undo.c)
that replaces soak_fix and puts its three functions back to their original
code; it is then reverted: unpatched -> patched -> replaced -> unpatched.

Exit status 0 only if no trial crashed, hung, computed a wrong value, or
stayed half patched (or inconsistent with `graft list`) after recovery.
"""
import argparse
import json
import os
import random
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = os.path.join(HERE, "..", "e2e", "programs")

# Named steps of the write protocol, per operation (":N" = the Nth pass).
APPLY_POINTS = ["remote-syscall:1", "remote-syscall:2", "remote-syscall:3", "remote-syscall:5",
                "region-created", "record-written", "image-written", "stopped",
                "running-alone:1", "return-trapped:1", "entry-written:1", "entry-written:2",
                "entry-written:3", "activated", "entry-written:4", "entry-written:5", "applied"]
# The per-thread models write entries in running code (int3 first, then the
# tail, then the first byte) instead of stopping the world.
PER_THREAD_APPLY_POINTS = ["remote-syscall:1", "remote-syscall:2", "remote-syscall:4",
                           "region-created", "record-written", "image-written",
                           "entry-int3:1", "entry-tail:1", "entry-int3:2", "entry-tail:2"]
REVERT_POINTS = ["stopped", "running-alone:1", "return-trapped:1", "entry-written:1", "entry-written:2",
                 "activated", "entry-written:4", "reverted", "remote-syscall:1", "region-removed"]
# A per-thread patch is reverted per thread too: entries to the gates, then
# back to the old bytes, each written in running code.
PER_THREAD_REVERT_POINTS = ["remote-syscall:1", "remote-syscall:3", "entry-int3:1", "entry-tail:1",
                            "entry-int3:2", "entry-tail:2", "reverted", "region-removed"]
# A cumulative patch, besides: marked applied (the replaced patches not yet
# marked for removal), they marked, its record settled, their regions
# unmapped.
CUMULATIVE_POINTS = ["marked-applied", "replaced", "record-settled", "remote-syscall:5", "remote-syscall:6"]


class Target:
    def __init__(self, path, naps=False):
        env = dict(os.environ, SOAK_NAPS="1") if naps else None
        self.proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1, env=env)
        line = self._readline(10)
        if line != f"ready {self.proc.pid}":
            raise SystemExit(f"soak: target did not start: {line!r}")
        self.pid = self.proc.pid

    def _readline(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        return self.proc.stdout.readline().rstrip("\n")

    def ask(self, cmd, timeout=5):
        """The answer, or None if the target is gone or does not answer."""
        if self.proc.poll() is not None:
            return None
        try:
            self.proc.stdin.write(cmd + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        return self._readline(timeout)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.kill()
        self.proc.wait()


def graft_cmd(args, *argv):
    return [args.graft, *argv]


def run_graft(args, *argv, env=None, timeout=60):
    return subprocess.run(graft_cmd(args, *argv), capture_output=True, text=True, env=env,
                          timeout=timeout)


def listed(args, pid):
    out = run_graft(args, "list", "--pid", str(pid), "--json")
    try:
        return json.loads(out.stdout)["processes"][0]["patches"]
    except (ValueError, KeyError, IndexError):
        return None


def leaked_memfds(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:graft:"):
                n += 1
        except OSError:
            pass
    return n


def graft_regions(pid):
    with open(f"/proc/{pid}/maps") as f:
        return sum(1 for line in f if "graft:" in line)


def classify(state):
    if state is None:
        return "no answer"
    words = state.split()
    if words == ["old"] * 3:
        return "unpatched"
    if words == ["new"] * 3:
        return "patched"
    if "bad" in words:
        return "wrong result"
    return "half"


def operation(args, patch_files, pid, state):
    """The next operation from `state': (name, graft arguments)."""
    if state == "unpatched":
        return "apply", ["apply", patch_files["soak_fix"], "--pid", str(pid), "--model", args.model]
    if state == "patched" and args.cumulative:
        return "replace", ["apply", patch_files["soak_undo"], "--pid", str(pid), "--model", args.model]
    name = "soak_undo" if state == "replaced" else "soak_fix"
    return "revert", ["revert", name, "--pid", str(pid)]


def measure(args, target, patch_files):
    """Median duration (s) of each operation on this target."""
    times = defaultdict(list)
    for _ in range(5):
        for state in ("unpatched", "patched", "replaced") if args.cumulative else ("unpatched", "patched"):
            op, argv = operation(args, patch_files, target.pid, state)
            t = time.monotonic()
            r = run_graft(args, *argv)
            times[op].append(time.monotonic() - t)
            if r.returncode:
                raise SystemExit(f"soak: {op} failed: {r.stdout}{r.stderr}")
    return {op: statistics.median(v) for op, v in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--graft", default=os.path.join(HERE, "..", "..", "build", "graft"))
    ap.add_argument("--include", default=os.path.join(HERE, "..", "..", "include"))
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--model", default="stop")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--cumulative", action="store_true", help="also replace the patch by a cumulative one")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)

    work = tempfile.mkdtemp(prefix="graft-soak.")
    exe = os.path.join(work, "soak_target")
    subprocess.run(["gcc", "-O2", "-g", "-pthread", "-fno-ipa-ra", "-Wl,--build-id", f"-I{PROGRAMS}",
                    os.path.join(HERE, "soak_target.c"), "-o", exe], check=True)
    patch_files = {}
    for name in ("soak_fix", "soak_undo"):
        patch_files[name] = os.path.join(work, name + ".graft")
        b = run_graft(args, "build", "--from-source", os.path.join(HERE, name + ".c"), "--target", exe,
                      "-o", patch_files[name], "--", f"-I{args.include}")
        if b.returncode:
            raise SystemExit(f"soak: graft build failed: {b.stdout}{b.stderr}")

    target = Target(exe, naps=args.model == "lazy")
    durations = measure(args, target, patch_files)
    print(f"soak: seed {seed}, model {args.model}{', cumulative' if args.cumulative else ''}; median " +
          ", ".join(f"{op} {t * 1000:.1f} ms" for op, t in durations.items()) + " (graft process wall time)")

    before = defaultdict(Counter)  # kind -> outcome right after the kill
    after = defaultdict(Counter)   # kind -> outcome after graft recover
    injected = Counter()
    failures = []
    restarts = 0
    where = "unpatched"  # where the last trial left the target, after recovery
    started = time.monotonic()
    for trial in range(args.trials):
        op, argv = operation(args, patch_files, target.pid, where)
        env = dict(os.environ)
        if rng.random() < 0.35:
            apply_points = APPLY_POINTS if args.model == "stop" else PER_THREAD_APPLY_POINTS
            revert_points = REVERT_POINTS if args.model == "stop" else PER_THREAD_REVERT_POINTS
            points = {"apply": apply_points, "replace": apply_points + CUMULATIVE_POINTS,
                      "revert": revert_points}[op]
            point = rng.choice(points)
            env["GRAFT_FAULT"] = point
            kind = f"{op} at {point.split(':')[0]}"
            proc = subprocess.Popen(graft_cmd(args, *argv), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env=env)
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
                failures.append(f"trial {trial}: graft hung ({kind})")
            if rc != -signal.SIGKILL:
                kind = f"{op}, point not reached"
        else:
            kind = f"{op} at a random moment"
            delay = rng.uniform(0, 1.2 * durations[op])
            proc = subprocess.Popen(graft_cmd(args, *argv), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            rc = proc.wait()
            if rc != -signal.SIGKILL:
                kind = f"{op}, finished before the kill"
        injected[kind] += 1

        # Right after the kill: the target must live, answer, compute right.
        time.sleep(0.02)
        state = target.ask("state")
        if not target.alive():
            outcome = "crashed"
        elif state is None:
            outcome = "hung"
        else:
            outcome = classify(state)
        bad = target.ask("bad")
        threads = target.ask("threads")
        if outcome in ("patched", "unpatched", "half") and (bad != "0" or threads != "5"):
            outcome = "wrong result" if bad != "0" else "lost a thread"
        before[kind][outcome] += 1
        if outcome not in ("patched", "unpatched", "half"):
            failures.append(f"trial {trial}: {outcome} after graft was killed ({kind}); "
                            f"state={state} bad={bad} threads={threads}")
            target.stop()
            target = Target(exe, naps=args.model == "lazy")
            restarts += 1
            where = "unpatched"
            continue

        # Repair, then the state must be whole and agree with graft list.
        r = run_graft(args, "recover", "--pid", str(target.pid))
        state = classify(target.ask("state"))
        patches = listed(args, target.pid)
        if r.returncode or patches is None:
            result = "recover failed"
        elif (state == "patched" and len(patches) == 1 and patches[0]["name"] == "soak_fix" and
              patches[0]["state"] == "applied"):
            result = "patched"
        elif (state == "unpatched" and len(patches) == 1 and patches[0]["name"] == "soak_undo" and
              patches[0]["state"] == "applied" and not any(f.get("restores") for f in patches[0]["functions"])):
            result = "replaced"
        elif (state == "unpatched" and not patches and graft_regions(target.pid) == 0):
            result = "unpatched"
        else:
            result = f"inconsistent ({state}, list: {[(p['name'], p['state']) for p in patches]})"
        if leaked_memfds(target.pid):
            result += ", memfd leaked"
        after[kind][result] += 1
        if result not in ("patched", "unpatched", "replaced"):
            failures.append(f"trial {trial}: after graft recover: {result} ({kind}); "
                            f"recover said: {r.stdout.strip()} {r.stderr.strip()}")
            target.stop()
            target = Target(exe, naps=args.model == "lazy")
            restarts += 1
            where = "unpatched"
            continue
        where = result
        if (trial + 1) % 50 == 0:
            print(f"soak: {trial + 1}/{args.trials} trials, {len(failures)} failures", flush=True)

    elapsed = time.monotonic() - started
    target.stop()
    shutil.rmtree(work, ignore_errors=True)

    print(f"\nsoak: {args.trials} trials in {elapsed:.0f} s (model {args.model}, seed {seed})")
    print(f"{'fault injected':38} {'n':>4}  right after the kill -> after graft recover")
    for kind in sorted(injected):
        b_ = ", ".join(f"{k} {v}" for k, v in sorted(before[kind].items()))
        a_ = ", ".join(f"{k} {v}" for k, v in sorted(after[kind].items()))
        print(f"{kind:38} {injected[kind]:4}  {b_} -> {a_}")
    totals_before = sum((before[k] for k in before), Counter())
    totals_after = sum((after[k] for k in after), Counter())
    print(f"{'all':38} {args.trials:4}  {dict(totals_before)} -> {dict(totals_after)}")
    for f in failures:
        print("FAILURE:", f)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"trials": args.trials, "model": args.model, "seed": seed,
                       "seconds": elapsed, "cumulative": args.cumulative,
                       **{f"{op}_ms": t * 1000 for op, t in durations.items()},
                       "injected": injected, "before_recovery": before, "after_recovery": after,
                       "failures": failures, "target_restarts": restarts}, f, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
