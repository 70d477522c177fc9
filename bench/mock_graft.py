#!/usr/bin/python3
"""bench/mock_graft.py: a stand-in for `graft`, to test bench/run.py alone.

It patches nothing. It speaks enough of the CLI contract (docs/cli.md) for
run.py: `build` writes a placeholder file; `apply` and `revert` stop the whole
process with SIGSTOP for a random 0.2-2 ms, resume it with SIGCONT and print
the contract's JSON. So the heartbeat of bench/target.c sees a real pause,
and the harness's plumbing (JSON, gap windows, tables, plot) can be checked:

    /usr/bin/python3 bench/run.py --graft bench/mock_graft.py --quick

Numbers measured with it say nothing about graft.
"""
import json
import os
import random
import secrets
import signal
import sys
import time


def pause_process(pid):
    t0 = time.perf_counter()
    os.kill(pid, signal.SIGSTOP)
    time.sleep(random.uniform(0.0002, 0.002))
    os.kill(pid, signal.SIGCONT)
    return (time.perf_counter() - t0) * 1000


def main(argv):
    start = time.perf_counter()
    if not argv:
        print("usage: mock_graft.py build|apply|revert ...", file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "build":
        out = args[args.index("-o") + 1]
        with open(out, "w") as f:
            f.write("mock graft patch\n")
        return 0
    if cmd in ("apply", "revert"):
        pid = int(args[args.index("--pid") + 1])
        pause = pause_process(pid)
        patch_id = args[0] if cmd == "revert" else secrets.token_hex(6)
        total = (time.perf_counter() - start) * 1000
        doc = {"command": cmd, "patch": "mock", "patch_id": patch_id,
               "results": [{"pid": pid, "ok": True, "total_ms": round(total, 3),
                            "pause_ms": round(pause, 3), "retries": 0,
                            "error": None}]}
        if "--json" in args:
            print(json.dumps(doc))
        else:
            print(f"pid {pid}: {cmd} mock (id {patch_id}) in {total:.1f} ms, "
                  f"global pause {pause:.2f} ms, 0 retries")
        return 0
    print(f"mock_graft.py: unsupported command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
