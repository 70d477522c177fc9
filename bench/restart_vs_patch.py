#!/usr/bin/python3
"""bench/restart_vs_patch.py: a live patch against a restart, on memcached.

What operators do today to fix a running server is restart it. This runs
Debian's memcached 1.6.18 (built before its fixes by scripts/corpus/prepare.sh,
proxy enabled, 4 worker threads) under the same checked load twice
(tests/corpus/mcload.c: N connections, paced get/set, every answer verified,
latency from the moment each request was due):

  patch    at the event, `graft apply` of a real security fix
           (--from-diff of 0009-CVE-2023-46852.patch when graft has it,
           otherwise the patch author's CVE-2023-46853 fix,
           tests/e2e/corpus/memcached-CVE-2023-46853.c);
  restart  at the event, SIGTERM to memcached, then the same command again.

It reports, for each: failed requests, the longest gap in service (the
longest time between two answered requests, all connections together), p99
latency in the 3 s around the event, and the cache hit rate of gets in the
5 s after it (a restart starts with an empty cache; misses of keys stored
before are counted as lost). It prints a table, and with --out writes
bench/results/restart-vs-patch.{txt,json,png} (latency over time around the
event for both).

Run as root with Debian's python (matplotlib): /usr/bin/python3 bench/restart_vs_patch.py --out
"""
import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
CACHE = os.environ.get("GRAFT_CORPUS_DIR", "/var/cache/graft-corpus")


class BenchError(Exception):
    pass


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stdout[-800:]} {r.stderr[-800:]}")
    return r


def read_env(path):
    env = {}
    for line in open(path):
        line = line.strip()
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k] = v.strip("'\"")
    return env


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"version\r\n")
                if s.recv(100).startswith(b"VERSION"):
                    return
        except OSError:
            time.sleep(0.005)
    raise BenchError(f"memcached on port {port} does not answer")


class Memcached:
    def __init__(self, binary, port, workdir, routes):
        self.cmd = [binary, "-u", "nobody", "-t", "4", "-U", "0", "-m", "256",
                    "-l", f"127.0.0.1:{port}", "-o", f"proxy_config={routes}"]
        self.port, self.workdir, self.proc = port, workdir, None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.workdir, "memcached.log"), "a"))
        wait_port(self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def prepare_patch(args, env, work, binary):
    """A real fix for the running build: from its diff if graft can, else the
    patch author's version of CVE-2023-46853."""
    out = os.path.join(work, "fix.graft")
    helps = subprocess.run([args.graft, "build", "--help"], capture_output=True, text=True)
    if "--from-diff" in helps.stdout + helps.stderr:
        fix = "0009-CVE-2023-46852.patch"
        run([args.graft, "build", "--from-diff", os.path.join(env["FIXES_DIR"], fix),
             "--clean", "make clean", "--source", env["TREE"], "--target", binary, "--build", env["BUILD"], "-o", out])
        return out, f"{fix} (graft build --from-diff)"
    src = os.path.join(ROOT, "tests", "e2e", "corpus", "memcached-CVE-2023-46853.c")
    run([args.graft, "build", "--from-source", src, "--target", binary, "-o", out, "--",
         "-DHAVE_CONFIG_H", f"-I{env['TREE']}", f"-I{env['TREE']}/vendor/lua/src"])
    return out, "CVE-2023-46853 (patch author's version with a shadow variable, --from-source)"


def scenario(name, args, env, work, binary, mcload, patch):
    port = free_port()
    routes = os.path.join(ROOT, "tests", "e2e", "corpus", "memcached-proxy-routes.lua")
    mc = Memcached(binary, port, work, routes)
    mc.start()
    csv_path = os.path.join(work, f"{name}.csv")
    start_file = os.path.join(work, f"{name}.start")
    try:
        load = subprocess.Popen(
            [mcload, "run", "--port", str(port), "--conns", str(args.conns), "--rate", str(args.rate),
             "--duration", str(args.duration), "--keys", str(args.keys), "--latency-out", csv_path,
             "--start-file", start_file],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        # mcload stores every key, then starts its clock (CLOCK_MONOTONIC, as
        # time.monotonic()) and writes it to the start file.
        deadline = time.monotonic() + 60
        while not (os.path.exists(start_file) and open(start_file).read().endswith("\n")):
            if time.monotonic() > deadline or load.poll() is not None:
                raise BenchError(f"mcload did not start ({name})")
            time.sleep(0.01)
        t0 = float(open(start_file).read())
        time.sleep(max(0.0, t0 + args.event_at - time.monotonic()))
        event = {"name": name}
        t_event = time.monotonic()
        event["at_ms"] = (t_event - t0) * 1000
        if name == "patch":
            r = run([args.graft, "apply", patch, "--pid", str(mc.proc.pid), "--json", "--timeout", "20"])
            res = json.loads(r.stdout)["results"][0]
            event.update(pause_ms=res["pause_ms"], total_ms=res["total_ms"], pid_same=True)
        else:
            old_pid = mc.proc.pid
            mc.stop()
            mc.start()
            event.update(pid_same=mc.proc.pid == old_pid)
        event["wall_ms"] = (time.monotonic() - t_event) * 1000
        out, _ = load.communicate(timeout=args.duration + 60)
        summary = json.loads(out.strip().splitlines()[-1])
    finally:
        mc.stop()
    rows = list(csv.DictReader(open(csv_path)))
    return summary, event, rows


def analyse(rows, event_ms, summary):
    samples = [(float(r["t_ms"]), int(r["latency_us"]), r["op"], r["result"]) for r in rows]
    samples.sort()
    around = [lat for t, lat, _, _ in samples if event_ms - 1000 <= t <= event_ms + 2000]
    around.sort()
    p99 = around[int((len(around) - 1) * 0.99)] / 1000 if around else None
    after_gets = [res for t, _, op, res in samples if op == "get" and event_ms + 200 <= t <= event_ms + 5200]
    hit_rate = sum(1 for res in after_gets if res == "ok") / len(after_gets) if after_gets else None
    # Longest gap between answers (completion = due + latency), answered only.
    done = sorted(t + lat / 1000 for t, lat, _, res in samples if res == "ok")
    gap, gap_at = 0.0, None
    for a, b in zip(done, done[1:]):
        if b - a > gap:
            gap, gap_at = b - a, a
    return {
        "requests": len(samples),
        "failed": sum(1 for s in samples if s[3] == "failed"),
        "wrong": sum(1 for s in samples if s[3] == "wrong"),
        "lost": sum(1 for s in samples if s[3] == "lost"),
        "longest_gap_ms": round(gap, 2),
        "longest_gap_at_ms": round(gap_at, 1) if gap_at is not None else None,
        "p99_ms_around_event": p99,
        "p50_ms_overall": summary["p50_us"] / 1000,
        "hit_rate_after": hit_rate,
    }


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True, sharey=True)
    for ax, (name, res) in zip(axes, results.items()):
        event_ms = res["event"]["at_ms"]
        ok = [(float(r["t_ms"]) - event_ms, int(r["latency_us"]) / 1000) for r in res["rows"]
              if r["result"] == "ok"]
        bad = [(float(r["t_ms"]) - event_ms, max(int(r["latency_us"]) / 1000, 0.01)) for r in res["rows"]
               if r["result"] != "ok"]
        ax.scatter([x for x, _ in ok], [y for _, y in ok], s=1, color="tab:blue", label="answered")
        if bad:
            ax.scatter([x for x, _ in bad], [y for _, y in bad], s=4, color="tab:red",
                       label="failed or lost (miss)")
        ax.axvline(0, color="black", linewidth=0.8)
        m = res["metrics"]
        ax.set_title(f"{name}: {m['failed']} failed, {m['lost']} lost, longest gap "
                     f"{m['longest_gap_ms']:.1f} ms, p99 around event {m['p99_ms_around_event']:.2f} ms, "
                     f"hit rate after {100 * (m['hit_rate_after'] or 0):.1f}%", fontsize=9)
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms)")
        ax.set_xlim(-3000, 6000)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time from the event (ms)")
    fig.suptitle("memcached 1.6.18 under load: live patch vs restart")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--graft", default=os.path.join(ROOT, "build", "graft"))
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--rate", type=float, default=4000, help="requests per second, all connections")
    ap.add_argument("--keys", type=int, default=500, help="keys per connection")
    ap.add_argument("--duration", type=float, default=14)
    ap.add_argument("--event-at", type=float, default=6, help="seconds after the load starts")
    ap.add_argument("--out", action="store_true", help="write bench/results/restart-vs-patch.*")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise BenchError("run as root (ptrace, memcached -u nobody)")

    run(["bash", os.path.join(ROOT, "scripts", "corpus", "prepare.sh"), "memcached"])
    env = read_env(os.path.join(CACHE, "memcached", "env"))
    work = tempfile.mkdtemp(prefix="graft-bench-rvp.")
    os.chmod(work, 0o755)
    mcload = os.path.join(work, "mcload")
    run(["gcc", "-O2", "-pthread", os.path.join(ROOT, "tests", "corpus", "mcload.c"), "-o", mcload])
    binary = os.path.join(work, "memcached")
    shutil.copy2(env["ARTIFACT"], binary)
    patch, patch_name = prepare_patch(args, env, work, binary)

    results = {}
    for name in ("patch", "restart"):
        summary, event, rows = scenario(name, args, env, work, binary, mcload, patch)
        results[name] = {"summary": summary, "event": event, "rows": rows,
                         "metrics": analyse(rows, event["at_ms"], summary)}

    lines = [
        f"memcached {env.get('VERSION', '?')} (proxy, 4 threads), {args.conns} connections, "
        f"{args.rate:.0f} req/s paced, {args.keys} keys each, event at {args.event_at:.0f} s",
        f"live patch: {patch_name}",
        f"{'':10} {'failed':>7} {'lost':>6} {'wrong':>6} {'gap ms':>8} {'p99 ms':>8} "
        f"{'hit rate':>9} {'same pid':>9} {'event ms':>9}",
    ]
    for name, res in results.items():
        m, e = res["metrics"], res["event"]
        lines.append(f"{name:10} {m['failed']:7d} {m['lost']:6d} {m['wrong']:6d} {m['longest_gap_ms']:8.1f} "
                     f"{m['p99_ms_around_event']:8.2f} {100 * (m['hit_rate_after'] or 0):8.1f}% "
                     f"{str(e['pid_same']):>9} {e['wall_ms']:9.1f}")
    lines += [
        "failed: requests without an answer (connection refused/reset, timeout); lost: gets that missed",
        "a key stored before; gap: longest time between two answers; p99: latency from -1 s to +2 s",
        "around the event; hit rate: gets answered with the stored value, +0.2 s to +5.2 s after it;",
        "event ms: the apply (graft's own wall time) or the restart (SIGTERM until the port answers).",
    ]
    if "pause_ms" in results["patch"]["event"]:
        lines.append(f"graft: global pause {results['patch']['event']['pause_ms']:.2f} ms, "
                     f"apply {results['patch']['event']['total_ms']:.2f} ms")
    table = "\n".join(lines)
    print(table)
    if args.out:
        os.makedirs(os.path.join(BENCH, "results"), exist_ok=True)
        base = os.path.join(BENCH, "results", "restart-vs-patch")
        with open(base + ".txt", "w") as f:
            f.write(table + "\n")
            f.write(f"\nrun {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC on {platform.node()}, "
                    f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
        with open(base + ".json", "w") as f:
            json.dump({n: {"summary": r["summary"], "event": r["event"], "metrics": r["metrics"]}
                       for n, r in results.items()} | {"patch": patch_name, "args": vars(args)}, f, indent=1)
        plot(results, base + ".png")
        print(f"wrote {base}.txt, .json, .png")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print(f"restart_vs_patch: {e}", file=sys.stderr)
        sys.exit(1)
