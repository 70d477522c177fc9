#!/usr/bin/env python3
"""Exec-to-patched latency of graft daemon.

Builds libvuln.so (a unique build-id per run), a patch of it, and a program
that links it; stores the patch, starts `graft daemon` (proc connector, or
--poll), then starts RUNS new processes one after the other. Each process
calls the vulnerable function every 100 us from main() until it sees the
fixed answer and reports the time from the launcher's clock reading just
before fork+exec (exec-to-patched) and from its own main() (time it ran
the old code). Prints median, p90, p99, max and the share over 100 ms.

  bench/exec_latency.py --graft build/graft --include include [--runs 100] [--poll] [--json FILE]

Run as root. It kills the daemon and every process it started.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "exec_latency")


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--graft", required=True)
    ap.add_argument("--include", required=True)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--gap", type=float, default=0.05, help="seconds between two new processes")
    ap.add_argument("--poll", action="store_true", help="the daemon polls /proc instead of the connector")
    ap.add_argument("--model", default="stop")
    ap.add_argument("--json")
    ap.add_argument("--verbose", action="store_true", help="show the daemon's log")
    a = ap.parse_args()
    graft = os.path.abspath(a.graft)
    with tempfile.TemporaryDirectory(prefix="graft-exec-latency.") as t:
        tag = f"bench-{os.getpid()}-{time.time_ns()}"
        cc = ["gcc", "-g", "-O2", "-Wl,--build-id"]
        subprocess.run(cc + ["-shared", "-fPIC", f'-DVULN_TAG="{tag}"', f"{SRC}/libvuln.c", "-o", f"{t}/libvuln.so"], check=True)
        subprocess.run(cc + [f"{SRC}/newproc.c", f"-L{t}", "-lvuln", f"-Wl,-rpath,{t}", "-o", f"{t}/newproc"], check=True)
        env = dict(os.environ, GRAFT_INCLUDE_DIR=os.path.abspath(a.include),
                   GRAFT_STORE=f"{t}/store", GRAFT_POLICY=f"{t}/policy")
        with open(f"{t}/policy", "w") as f:
            json.dump({"audit_log": f"{t}/audit.log"}, f)
        subprocess.run([graft, "build", "--from-source", f"{SRC}/fix.c", "--target", f"{t}/libvuln.so",
                        "-o", f"{t}/fix.graft"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run([graft, "store", "add", f"{t}/fix.graft"], check=True, env=env, stdout=subprocess.DEVNULL)
        cmd = [graft, "daemon", "--kernel-cmdline", "/dev/null", "--model", a.model] + (["--poll"] if a.poll else [])
        log = open(f"{t}/daemon.log", "w+")
        daemon = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.time() + 20
            while "sync (start)" not in open(f"{t}/daemon.log").read():
                if time.time() > deadline or daemon.poll() is not None:
                    sys.exit("the daemon did not start:\n" + open(f"{t}/daemon.log").read())
                time.sleep(0.05)
            exec_ms, old_ms, timeouts, lost = [], [], 0, []
            for _ in range(a.runs):
                launched = time.monotonic_ns()
                proc = subprocess.Popen([f"{t}/newproc", str(launched)], stdout=subprocess.PIPE, text=True, env=env)
                out = proc.communicate()[0]
                if out.startswith("patched"):
                    _, e, m = out.split()
                    exec_ms.append(int(e) / 1e6)
                    old_ms.append(int(m) / 1e6)
                else:
                    timeouts += 1
                    lost.append(out.split()[-1] if out.strip() else "?")
                time.sleep(a.gap)
        finally:
            daemon.terminate()
            daemon.wait(10)
            lines = open(f"{t}/daemon.log").read().splitlines()
            odd = [l for l in lines if "applied fix" not in l or any(f"pid {p} " in l or f" {p}" in l for p in lost)]
            if lost:
                odd.append(f"never patched: pids {', '.join(lost)}")
            if timeouts or a.verbose:
                print("daemon log (besides its applies):\n  " + "\n  ".join(odd))
        res = {"runs": a.runs, "watch": "poll" if a.poll else "connector", "model": a.model,
               "timeouts": timeouts}
        if exec_ms:
            res.update({
                "exec_to_patched_ms": {"median": statistics.median(exec_ms), "p90": pct(exec_ms, 90),
                                       "p99": pct(exec_ms, 99), "max": max(exec_ms), "min": min(exec_ms)},
                "old_code_ms": {"median": statistics.median(old_ms), "p99": pct(old_ms, 99), "max": max(old_ms)},
                "share_over_100ms": (sum(1 for x in exec_ms if x > 100) + timeouts) / a.runs,
            })
        print(f"exec-to-patched over {a.runs} new processes ({res['watch']}, model {a.model}):")
        if exec_ms:
            e = res["exec_to_patched_ms"]
            print(f"  median {e['median']:.1f} ms, p90 {e['p90']:.1f} ms, p99 {e['p99']:.1f} ms, "
                  f"max {e['max']:.1f} ms, min {e['min']:.1f} ms")
            print(f"  old code ran for: median {res['old_code_ms']['median']:.1f} ms, "
                  f"p99 {res['old_code_ms']['p99']:.1f} ms")
            print(f"  share over 100 ms: {100 * res['share_over_100ms']:.1f}% ({timeouts} never patched within 3 s)")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(res, f, indent=1)
        return 0 if exec_ms and timeouts == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
