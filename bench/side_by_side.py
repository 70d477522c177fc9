#!/usr/bin/python3
"""bench/side_by_side.py: graft against libpulp (SUSE) and LibCare (CloudLinux),
measured in one run on the same target source and the same patch.

The target is bench/target.c in `tick` mode: WORKERS threads calling
bench_work() once per millisecond, a heartbeat thread keeping its longest gap,
the main thread answering the driver. The patch replaces bench_work() (3x+1)
with a version returning 3x+2; every tool gets it in its own form:

  graft    target.c built with `cc -O2 -g -pthread` (and a build-id of its
           own); the patch from bench/patch.c with `graft build --from-source`
  libpulp  target.c built as a shared library with
           -fPIC -fpatchable-function-entry=16,14 (libpulp patches only
           dynamically linked libraries), post-processed with `ulp post`, a
           two-line main() calling it, run with LD_PRELOAD=libpulp.so; the
           patch a shared object holding the new bench_work, its .dsc turned
           into a live patch with `ulp packer`; `ulp trigger [--revert]`
  LibCare  target.c built by LibCare's own compiler wrapper through
           `libcare-patch-make` (original and patched builds, a one-line
           source diff); the .kpatch made by its tools (see `libcare_kpatch`);
           `libcare-ctl patch` / `libcare-ctl unpatch`

Variants, each round running every variant once, in turn (the starting
variant rotates from round to round):

  process  one target of --threads threads (default 66 = 64 workers, main,
           heartbeat), started for the variant: reset the heartbeat window;
           apply (timed, spawn to exit); read the longest gap; check that the
           calls now answer patched; a baseline window as long as the apply;
           revert (timed); read the gap; check that the calls answer original;
           stop the target. Variants: graft stop, graft hybrid, libpulp,
           LibCare.
  fleet    --fleet processes (10) of 4 threads (main, heartbeat, 2 workers),
           started for the variant: the whole apply timed, then every process
           checked, then the revert timed. Variants: graft apply --all (stop,
           hybrid), libpulp's bulk trigger (`ulp trigger -p NAME`), libpulp
           looping over the pids, LibCare looping over the pids (its `-p all`
           would attach to every process of the machine: not used).

Tools come from bench/side_by_side_setup.sh (default /var/cache/graft-bench).
Prints medians over rounds; --out writes results/side-by-side.{txt,json,png}.

    bench/side_by_side_setup.sh --deps            # once, as root
    /usr/bin/python3 bench/side_by_side.py --rounds 5 --out
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import run as R  # noqa: E402
import fleet as F  # noqa: E402

# Quoted from issue 17 (measured there, not here): (apply wall, gap, revert) ms.
ISSUE = {
    "graft stop": (17.5, 2.79, 17.3),
    "graft hybrid": (65.1, 1.13, 48.5),
    "libpulp": (10.8, 1.83, 11.4),
    "LibCare": (113, 106, 97),
}
PULP_EXE = "sbs-pulp"      # the process name `ulp trigger -p NAME` matches
CHECK_WINDOW_S = 0.05      # tick workers call bench_work() every ms


class Failed(Exception):
    pass


def timed(cmd, env=None, timeout=120):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    return (time.perf_counter() - t0) * 1000, p


def sh(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise Failed(f"`{' '.join(map(str, cmd))}` exited {p.returncode}:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return p


def median(xs):
    return statistics.median(xs) if xs else None


def load():
    return float(open("/proc/loadavg").read().split()[0])


# ----------------------------------------------------------------- builds

def build_graft(graft, workdir):
    exe, patch = F.build_copy(graft, workdir, "graft")
    return {"exe": exe, "patch": patch}


def build_libpulp(scratch, workdir):
    """target.c as a live-patchable library + a stub main; the live patch."""
    inst = os.path.join(scratch, "libpulp", "inst")
    ulp, libpulp = os.path.join(inst, "bin", "ulp"), os.path.join(inst, "lib", "libpulp.so")
    for f in (ulp, libpulp):
        if not os.path.exists(f):
            raise Failed(f"{f} missing: run bench/side_by_side_setup.sh")
    d = os.path.join(workdir, "libpulp")
    os.makedirs(d, exist_ok=True)
    lib = os.path.join(d, "libsbstarget.so")
    # -Dmain=...: the whole target (bench_work included) lives in the library.
    sh(["cc", "-O2", "-g", "-pthread", "-fPIC", "-shared", "-fpatchable-function-entry=16,14",
        "-Dmain=sbs_target_main", "-Wl,--build-id", "-Wl,--hash-style=sysv",
        "-Wl,-soname,libsbstarget.so", os.path.join(BENCH, "target.c"), "-o", lib])
    sh([ulp, "post", lib])
    stub = os.path.join(d, "main.c")
    with open(stub, "w") as f:
        f.write("int sbs_target_main(int, char **);\n"
                "int main(int argc, char **argv) { return sbs_target_main(argc, argv); }\n")
    exe = os.path.join(d, PULP_EXE)
    sh(["cc", "-O2", stub, "-L" + d, "-lsbstarget", "-Wl,-rpath," + d, "-o", exe])
    lp_c, lp = os.path.join(d, "fix.c"), os.path.join(d, "fix_livepatch.so")
    with open(lp_c, "w") as f:
        f.write("int bench_work_fixed(int x) { return 3 * x + 2; }\n")
    sh(["cc", "-O2", "-fPIC", "-shared", lp_c, "-o", lp])
    dsc = os.path.join(d, "fix_livepatch.dsc")
    with open(dsc, "w") as f:
        f.write(f"{lp}\n@{lib}\nbench_work:bench_work_fixed\n")
    sh([ulp, "packer", dsc])
    env = dict(os.environ, LD_PRELOAD=libpulp)
    return {"exe": exe, "patch": lp, "ulp": ulp, "env": env}


def neuter_dead_relocs(path):
    """Marks SHT_NULL every SHT_RELA section of an ELF64 file whose target
    section is SHT_NOBITS, and returns their names.

    With Debian 12's toolchain, LibCare's kpatch_strip leaves the relocation
    sections of the sections it emptied (.rela.init, .rela.text, ...), each
    entry turned into R_X86_64_NONE at offset 0, which `kpatch_strip
    --undo-link` then moves before the section's start; libcare-ctl refuses
    the whole patch ("Relocation offset for section '.init' is at
    0xfffffffffffff000 beyond the section size"). Those sections relocate
    nothing that is loaded, so hiding them changes no byte LibCare writes
    into the target."""
    b = bytearray(open(path, "rb").read())
    if b[:4] != b"\x7fELF" or b[4] != 2 or b[5] != 1:
        raise Failed(f"{path}: not a little-endian ELF64 file")
    shoff, = struct.unpack_from("<Q", b, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", b, 0x3a)

    def hdr(i):
        o = shoff + i * shentsize
        name, typ = struct.unpack_from("<II", b, o)
        off, = struct.unpack_from("<Q", b, o + 0x18)
        info, = struct.unpack_from("<I", b, o + 0x2c)
        return o, name, typ, off, info

    stroff = hdr(shstrndx)[3]
    done = []
    for i in range(1, shnum):
        o, name, typ, _, info = hdr(i)
        if typ == 4 and 0 < info < shnum and hdr(info)[2] == 8:
            struct.pack_into("<I", b, o + 4, 0)
            done.append(bytes(b[stroff + name:b.index(b"\0", stroff + name)]).decode())
    with open(path, "wb") as f:
        f.write(b)
    return done


def build_libcare(scratch, workdir):
    """target.c built through libcare-patch-make, and its .kpatch."""
    tools = os.path.join(scratch, "libcare", "src", "src")
    for t in ("libcare-ctl", "libcare-patch-make", "kpatch_strip", "kpatch_make"):
        if not os.access(os.path.join(tools, t), os.X_OK):
            raise Failed(f"{tools}/{t} missing: run bench/side_by_side_setup.sh")
    d = os.path.join(workdir, "libcare")
    proj = os.path.join(d, "proj")
    os.makedirs(os.path.join(d, "a"), exist_ok=True)
    os.makedirs(os.path.join(d, "b"), exist_ok=True)
    os.makedirs(proj, exist_ok=True)
    src = open(os.path.join(BENCH, "target.c")).read()
    old = "return 3 * x + 1 + (int)(h & ((unsigned)x >> 20));"
    if src.count(old) != 1:
        raise Failed("bench/target.c: bench_work's return line not found once")
    for sub, text in (("a", src), ("b", src.replace(old, old.replace("+ 1 +", "+ 2 +")))):
        with open(os.path.join(d, sub, "target.c"), "w") as f:
            f.write(text)
    diff = subprocess.run(["diff", "-u", "a/target.c", "b/target.c"], cwd=d, capture_output=True, text=True)
    with open(os.path.join(d, "fix.patch"), "w") as f:
        f.write(diff.stdout)
    shutil.copy(os.path.join(d, "a", "target.c"), os.path.join(proj, "target.c"))
    with open(os.path.join(proj, "Makefile"), "w") as f:
        f.write("all: target\n"
                "target: target.c\n\t$(CC) -O2 -g -pthread target.c -o target\n"
                "install: target\n\tmkdir -p $$DESTDIR && cp target $$DESTDIR/\n"
                "clean:\n\trm -f target\n")
    env = dict(os.environ, TERM="xterm")  # libcare-patch-make calls tput
    p = subprocess.run(["nice", os.path.join(tools, "libcare-patch-make"), "--clean", "../fix.patch"],
                       cwd=proj, capture_output=True, text=True, env=env)
    orig = os.path.join(proj, "lpmake", "target")
    patched = os.path.join(proj, ".lpmaketmp", "patched", "target")
    if p.returncode != 0 or not os.path.exists(patched):
        raise Failed(f"libcare-patch-make exited {p.returncode}:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    # libcare-patch-make's own last step (build_kpatches), with the
    # relocation sections libcare-ctl refuses hidden before kpatch_make.
    notes = subprocess.run(["eu-readelf", "-n", orig], capture_output=True, text=True).stdout
    build_id = next(l.split()[-1] for l in notes.splitlines() if "Build ID:" in l)
    stripped = os.path.join(d, "target.stripped")
    kst = os.path.join(tools, "kpatch_strip")
    sh([kst, "--strip", patched, stripped])
    sh([kst, "--rel-fixup", orig, stripped])
    sh(["strip", "--strip-unneeded", stripped])
    sh([kst, "--undo-link", orig, stripped])
    hidden = neuter_dead_relocs(stripped)
    kpatch = os.path.join(d, f"{build_id}.kpatch")
    sh([os.path.join(tools, "kpatch_make"), "-b", build_id, stripped, "-o", kpatch])
    return {"exe": orig, "patch": kpatch, "ctl": os.path.join(tools, "libcare-ctl"),
            "build_id": build_id, "hidden_relocs": hidden}


# ------------------------------------------------------------- the tools

class Tool:
    """One way of applying and reverting the patch: apply(pids) and
    revert(pids) return the wall time (ms) or raise Failed."""
    env = None

    def __init__(self, name, build):
        self.name, self.b = name, build

    def start(self, workers, hb_us):
        return R.Target(self.b["exe"], workers, "tick", hb_us, env=self.b.get("env"))


class Graft(Tool):
    def __init__(self, name, build, graft, model):
        super().__init__(name, build)
        self.graft, self.model = graft, model
        self.a = SimpleNamespace(graft=graft, model=model, graft_timeout=10.0, command_timeout=60.0)
        self.detail = {}

    def apply(self, pids, all_=False):
        if not all_:
            try:
                res, wall, doc = R.graft_apply(self.a, self.b["patch"], pids[0])
            except R.BenchError as e:
                raise Failed(str(e))
            self.patch_id = doc["patch_id"]
            self.detail = {k: res.get(k) for k in ("total_ms", "pause_ms", "stall_max_us", "transition_ms")}
            return wall
        wall, p = timed([self.graft, "apply", self.b["patch"], "--all", "--json", "--model", self.model])
        self._check_all(p, pids, "apply --all")
        return wall

    def revert(self, pids, all_=False):
        if not all_:
            try:
                return R.graft_revert(self.a, self.patch_id, pids[0])[1]
            except R.BenchError as e:
                raise Failed(str(e))
        if "id" not in self.b:
            self.b["id"] = json.loads(sh([self.graft, "info", self.b["patch"], "--json"]).stdout)["id"]
        wall, p = timed([self.graft, "revert", self.b["id"], "--all", "--json"])
        self._check_all(p, pids, "revert --all")
        return wall

    @staticmethod
    def _check_all(p, pids, what):
        try:
            ok = {r["pid"] for r in json.loads(p.stdout)["results"] if r["ok"]}
        except (ValueError, KeyError, TypeError):
            ok = set()
        if p.returncode != 0 or not set(pids) <= ok:
            raise Failed(f"graft {what}: exit {p.returncode}, {len(set(pids) & ok)} of {len(pids)} ok: "
                         f"{p.stdout[-600:]} {p.stderr[-600:]}")


class Libpulp(Tool):
    def __init__(self, name, build, bulk=False):
        super().__init__(name, build)
        self.bulk = bulk

    def _trigger(self, pids, revert):
        extra = ["--revert"] if revert else []
        targets = [PULP_EXE] if self.bulk else [str(p) for p in pids]
        t0 = time.perf_counter()
        for t in targets:
            p = subprocess.run([self.b["ulp"], "trigger", "-p", t] + extra + [self.b["patch"]],
                               capture_output=True, text=True, timeout=120)
            out = p.stdout + p.stderr
            if p.returncode != 0 or "Failed: 0" not in out:
                raise Failed(f"ulp trigger -p {t}{' --revert' if revert else ''}: exit {p.returncode}: "
                             f"{out[-800:]}")
        wall = (time.perf_counter() - t0) * 1000
        if self.bulk and f"Processes patched: {len(pids)}," not in out:
            raise Failed(f"ulp trigger -p {PULP_EXE}: not {len(pids)} processes: {out[-800:]}")
        return wall

    def apply(self, pids, all_=False):
        return self._trigger(pids, False)

    def revert(self, pids, all_=False):
        return self._trigger(pids, True)


class LibCare(Tool):
    def _ctl(self, pids, argv, ok_text):
        t0 = time.perf_counter()
        for pid in pids:
            p = subprocess.run([self.b["ctl"], argv[0], "-p", str(pid)] + argv[1:],
                               capture_output=True, text=True, timeout=120)
            out = p.stdout + p.stderr
            # `unpatch` exits with the number of processes it handled.
            if ok_text not in out:
                raise Failed(f"libcare-ctl {argv[0]} -p {pid}: exit {p.returncode}: {out[-800:]}")
        return (time.perf_counter() - t0) * 1000

    def apply(self, pids, all_=False):
        return self._ctl(pids, ["patch", self.b["patch"]], "successfully applied")

    def revert(self, pids, all_=False):
        return self._ctl(pids, ["unpatch", self.b["build_id"]], "successfully cancelled")


# --------------------------------------------------------------- trials

def answers(targets, expect):
    """Resets every target, waits CHECK_WINDOW_S, and checks that their calls
    answered `expect` only ('patched' or 'orig'). Returns problems."""
    for t in targets:
        t.reset()
    time.sleep(CHECK_WINDOW_S)
    other = "orig" if expect == "patched" else "patched"
    bad = []
    for t in targets:
        st = t.stat()
        if st[expect] == 0 or st[other] != 0 or st["errors"] != 0:
            bad.append(f"pid {t.pid}: {expect} {st[expect]}, {other} {st[other]}, errors {st['errors']}")
    return bad


def process_trial(tool, args):
    t = tool.start(args.threads - 2, args.heartbeat_sleep_us)
    s = {}
    try:
        time.sleep(args.settle)
        t.reset()
        s["apply_ms"] = tool.apply([t.pid])
        s["gap_ms"] = t.stat()["gap_us"] / 1000
        if isinstance(tool, Graft):
            s.update({k: v for k, v in tool.detail.items() if v is not None})
        bad = answers([t], "patched")
        if bad:
            raise Failed("after apply: " + "; ".join(bad))
        t.reset()
        time.sleep(max(s["apply_ms"], 20) / 1000)
        s["baseline_ms"] = t.stat()["gap_us"] / 1000
        t.reset()
        s["revert_ms"] = tool.revert([t.pid])
        s["revert_gap_ms"] = t.stat()["gap_us"] / 1000
        bad = answers([t], "orig")
        if bad:
            raise Failed("after revert: " + "; ".join(bad))
    finally:
        t.close()
    return s


def fleet_trial(tool, args):
    ts = []
    s = {}
    try:
        for _ in range(args.fleet):
            ts.append(tool.start(2, args.fleet_heartbeat_sleep_us))
        time.sleep(args.settle)
        pids = [t.pid for t in ts]
        for t in ts:
            t.reset()
        s["apply_ms"] = tool.apply(pids, all_=True)
        s["gap_ms"] = max(t.stat()["gap_us"] for t in ts) / 1000
        bad = answers(ts, "patched")
        if bad:
            raise Failed("after apply: " + "; ".join(bad))
        s["revert_ms"] = tool.revert(pids, all_=True)
        bad = answers(ts, "orig")
        if bad:
            raise Failed("after revert: " + "; ".join(bad))
    finally:
        for t in ts:
            t.close()
    return s


# --------------------------------------------------------------- report

def fmt(v, d=1):
    return "-" if v is None else f"{v:.{d}f}"


def report(args, meta, variants, samples, failures, skipped):
    L = []
    L.append(f"# bench/side_by_side.py --rounds {args.rounds}: {meta['date']}; {meta['machine']}")
    L.append(f"# {meta['graft']}; {meta['tools']}")
    L.append(f"# load average (1 min): {meta['load at start']} at start, median {fmt(meta['load median'], 2)} "
             f"over rounds (min {fmt(meta['load min'], 2)}, max {fmt(meta['load max'], 2)}), "
             f"{meta['load at end']} at end; {os.cpu_count()} CPUs shared with other work")
    L.append(f"# medians of {args.rounds} interleaved rounds (after {args.warmup} warm-up), "
             "each round running every variant once; ms")
    L.append("")
    L.append(f"One process of {args.threads} threads ({args.threads - 2} workers calling bench_work() "
             f"every 1 ms, heartbeat sleeping {args.heartbeat_sleep_us} us):")
    L.append(f"{'variant':<14} {'ok':>5} {'apply wall':>11} {'heartbeat gap':>14} {'baseline':>9} "
             f"{'revert wall':>12} {'revert gap':>11}   issue 17 (apply, gap, revert)")
    for v in variants:
        if v[0] != "process":
            continue
        S = samples[v]
        q = ISSUE.get(v[1])
        quoted = f"   {q[0]}, {q[1]}, {q[2]}" if q else ""
        if not S:
            L.append(f"{v[1]:<14} {0:>2}/{args.rounds:<2} {skipped.get(v[1], 'no successful round')}{quoted}")
            continue
        m = lambda k: median([x[k] for x in S if k in x])  # noqa: E731
        L.append(f"{v[1]:<14} {len(S):>2}/{args.rounds:<2} {fmt(m('apply_ms')):>11} {fmt(m('gap_ms'), 2):>14} "
                 f"{fmt(m('baseline_ms'), 2):>9} {fmt(m('revert_ms')):>12} {fmt(m('revert_gap_ms'), 2):>11}{quoted}")
    gs = [(v, samples[v]) for v in variants if v[0] == "process" and v[1].startswith("graft") and samples[v]]
    for v, S in gs:
        keys = ("total_ms", "pause_ms") if v[1] == "graft stop" else ("total_ms", "transition_ms", "stall_max_us")
        keys = [k for k in keys if any(k in x for x in S)]
        L.append(f"  {v[1]}, graft's own figures (median): " +
                 ", ".join(f"{k} {fmt(median([x[k] for x in S if k in x]), 2)}" for k in keys))
    L.append("")
    L.append(f"{args.fleet} processes of 4 threads (2 workers calling bench_work() every 1 ms), patched at once:")
    L.append(f"{'variant':<30} {'ok':>5} {'apply wall':>11} {'min':>7} {'max':>7} {'worst gap':>10} "
             f"{'revert wall':>12}")
    for v in variants:
        if v[0] != "fleet":
            continue
        S = samples[v]
        if not S:
            L.append(f"{v[1]:<30} {0:>2}/{args.rounds:<2} {skipped.get(v[1], 'no successful round')}")
            continue
        a = [x["apply_ms"] for x in S]
        L.append(f"{v[1]:<30} {len(S):>2}/{args.rounds:<2} {fmt(median(a)):>11} {fmt(min(a)):>7} "
                 f"{fmt(max(a)):>7} {fmt(median([x['gap_ms'] for x in S]), 2):>10} "
                 f"{fmt(median([x['revert_ms'] for x in S])):>12}")
    L.append("  issue 17: graft --all 79-104, libpulp bulk trigger 74, libpulp looping 224, LibCare looping 481")
    L.append("")
    L.append("Columns: apply / revert wall = the tool's command(s), spawn to exit, as this script sees them;")
    L.append("heartbeat gap = the longest gap the target's heartbeat thread saw during the apply (fleet: the")
    L.append("largest over the processes); baseline = the same in a window as long as the apply, no tool")
    L.append("running. Every apply is checked (all calls answer patched within 50 ms), every revert too.")
    L.append("")
    L.append("How each tool is driven and what differs:")
    L.append("  graft    `graft apply PATCH --pid PID --model stop|hybrid --json`, `graft revert ID --pid PID`;")
    L.append("           fleet: `graft apply --all --model M` / `graft revert ID --all` (default --jobs).")
    L.append("           Unmodified target; stack-checked (stop: every thread stopped at once; hybrid: per thread).")
    L.append("  libpulp  `ulp trigger -p PID fix_livepatch.so`, `... --revert`; fleet bulk: `ulp trigger -p "
             f"{PULP_EXE}`.")
    L.append("           Target built with -fpatchable-function-entry=16,14 as a shared library (libpulp only")
    L.append("           patches libraries), run with LD_PRELOAD=libpulp.so; built without --enable-stack-check,")
    L.append("           so no stack check (its default).")
    L.append("  LibCare  `libcare-ctl patch -p PID BUILDID.kpatch`, `libcare-ctl unpatch -p PID BUILDID`;")
    L.append("           target built by libcare-cc (libcare-patch-make); stack-checked. Its .kpatch needed one")
    L.append("           fix-up here: " + meta.get("libcare note", ""))
    for k, v in skipped.items():
        L.append(f"NOT MEASURED: {k}: {v}")
    for f in failures:
        L.append(f"FAILED: {f}")
    return "\n".join(L)


def plot(variants, samples, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    pv = [v for v in variants if v[0] == "process" and samples[v]]
    fv = [v for v in variants if v[0] == "fleet" and samples[v]]
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2))
    for ax, key, title in ((axes[0], "apply_ms", "apply wall (ms)"), (axes[1], "gap_ms", "heartbeat gap (ms)"),
                           (axes[2], "revert_ms", "revert wall (ms)")):
        for i, v in enumerate(pv):
            xs = [x[key] for x in samples[v]]
            ax.scatter([i] * len(xs), xs, s=12, alpha=.5)
            ax.plot([i - .3, i + .3], [median(xs)] * 2, "k-")
        ax.set_xticks(range(len(pv)), [v[1] for v in pv], rotation=20)
        ax.set_yscale("log")
        ax.set_title(title + ", one 66-thread process", fontsize=9)
    ax = axes[3]
    for i, v in enumerate(fv):
        xs = [x["apply_ms"] for x in samples[v]]
        ax.scatter([i] * len(xs), xs, s=12, alpha=.5)
        ax.plot([i - .3, i + .3], [median(xs)] * 2, "k-")
    short = lambda l: (l.replace(", ", "\n").replace(" looping over pids", "\nlooping")  # noqa: E731
                       .replace(" bulk trigger", "\nbulk trigger"))
    ax.set_xticks(range(len(fv)), [short(v[1]) for v in fv], fontsize=8)
    ax.set_yscale("log")
    ax.set_title("apply wall (ms), 10 processes at once", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--graft", default=os.path.join(R.ROOT, "build", "graft"))
    ap.add_argument("--scratch", default=os.environ.get("GRAFT_BENCH_SCRATCH", "/var/cache/graft-bench"),
                    help="where bench/side_by_side_setup.sh built libpulp and LibCare")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    ap.add_argument("--threads", type=int, default=66)
    ap.add_argument("--fleet", type=int, default=10, help="processes patched at once (0: none)")
    ap.add_argument("--heartbeat-sleep-us", type=int, default=100)
    ap.add_argument("--fleet-heartbeat-sleep-us", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=0.3, help="seconds between start and apply")
    ap.add_argument("--tools", default="graft,libpulp,libcare")
    ap.add_argument("--workdir")
    ap.add_argument("--out", nargs="?", const=os.path.join(BENCH, "results"),
                    help="write side-by-side.{txt,json,png} here (default bench/results/)")
    ap.add_argument("-v", action="store_true", help="print every trial")
    args = ap.parse_args(argv)
    graft = os.path.abspath(args.graft)
    wanted = set(args.tools.split(","))
    workdir = args.workdir or tempfile.mkdtemp(prefix="graft-bench-sbs.")
    os.makedirs(workdir, exist_ok=True)
    start_load = " ".join(open("/proc/loadavg").read().split()[:3])

    tools, skipped, meta_notes = {}, {}, {}
    if "graft" in wanted:
        gb = build_graft(graft, workdir)
        tools["graft stop"] = Graft("graft stop", gb, graft, "stop")
        tools["graft hybrid"] = Graft("graft hybrid", gb, graft, "hybrid")
    for key, name, builder in (("libpulp", "libpulp", build_libpulp), ("libcare", "LibCare", build_libcare)):
        if key not in wanted:
            continue
        try:
            b = builder(args.scratch, workdir)
        except (Failed, OSError, subprocess.SubprocessError, StopIteration) as e:
            skipped[name] = f"could not build its target or patch: {e}"
            print(f"side_by_side: {name} skipped: {e}", file=sys.stderr)
            continue
        if key == "libpulp":
            tools["libpulp"] = Libpulp("libpulp", b)
            tools["libpulp bulk"] = Libpulp("libpulp bulk", b, bulk=True)
        else:
            tools["LibCare"] = LibCare("LibCare", b)
            meta_notes["libcare note"] = (
                "relocation sections of emptied (NOBITS) sections hidden (SHT_NULL) before kpatch_make: "
                + ", ".join(b["hidden_relocs"]) + " (libcare-ctl refuses them otherwise, see neuter_dead_relocs)")

    variants = [("process", n) for n in ("graft stop", "graft hybrid", "libpulp", "LibCare") if n in tools]
    if args.fleet:
        for n, label in (("graft stop", "graft --all, stop"), ("graft hybrid", "graft --all, hybrid"),
                         ("libpulp bulk", "libpulp bulk trigger"), ("libpulp", "libpulp looping over pids"),
                         ("LibCare", "LibCare looping over pids")):
            if n in tools:
                variants.append(("fleet", label, n))
    samples = {v: [] for v in variants}
    failures, loads = [], []
    for r in range(args.warmup + args.rounds):
        timed_round = r >= args.warmup
        k = r % len(variants)
        for v in variants[k:] + variants[:k]:
            tool = tools[v[2] if v[0] == "fleet" else v[1]]
            try:
                s = process_trial(tool, args) if v[0] == "process" else fleet_trial(tool, args)
            except (Failed, R.BenchError, subprocess.TimeoutExpired) as e:
                if timed_round:
                    failures.append(f"round {r - args.warmup + 1}, {v[1]}: {str(e)[:600]}")
                print(f"side_by_side: {v[1]}: {str(e)[:600]}", file=sys.stderr)
                continue
            if timed_round:
                samples[v].append(s)
            if args.v:
                print(f"{'round ' + str(r - args.warmup + 1) if timed_round else 'warm-up'}: {v[1]}: "
                      + ", ".join(f"{a} {b:.2f}" for a, b in s.items()), flush=True)
        if timed_round:
            loads.append(load())
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.uname().machine}, {os.cpu_count()} cpus, Linux {os.uname().release}",
        "graft": f"{graft} (repo at " + subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=R.ROOT,
                                                       capture_output=True, text=True).stdout.strip() + ")",
        "tools": "; ".join(open(os.path.join(args.scratch, "versions.txt")).read().split("\n")[:2])
        if os.path.exists(os.path.join(args.scratch, "versions.txt")) else "libpulp/LibCare versions unknown",
        "load at start": start_load,
        "load at end": " ".join(open("/proc/loadavg").read().split()[:3]),
        "load median": median(loads), "load min": min(loads) if loads else None,
        "load max": max(loads) if loads else None,
        **meta_notes,
    }
    text = report(args, meta, variants, samples, failures, skipped)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "side-by-side.txt"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(args.out, "side-by-side.json"), "w") as f:
            json.dump({"meta": meta, "args": vars(args), "loads_after_rounds": loads,
                       "samples": [{"kind": v[0], "variant": v[1], "trials": samples[v]} for v in variants],
                       "skipped": skipped, "failures": failures}, f, indent=1)
        plot(variants, samples, os.path.join(args.out, "side-by-side.png"))
    return 1 if failures or skipped else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
