#!/usr/bin/env python3
"""Checks the include graph between the folders of src/: no cycle between
folders, and no folder includes one that docs/architecture.md puts above it.

    scripts/check_layering.py [SRC_DIR]

Prints each offending edge with the files that make it, and exits 1 if
there is any. Run by CTest as `layering`.
"""
import os
import re
import sys
from collections import defaultdict

# Lower folders first: a folder may include only folders listed before it
# (or itself). `runtime' is C for the target and includes none of these.
LAYERS = [
    ["common"],
    ["elf", "arch"],
    ["patch"],
    ["process", "linker"],
    ["differ", "consistency"],
    ["builder"],
    ["loader", "security", "kernel"],
    ["ops"],
    ["cli"],
]


def folder_of(path):
    parts = path.split("/")
    # arch/x86_64 is one folder: arch.
    return parts[0] if len(parts) > 1 else None


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
    rank = {f: i for i, layer in enumerate(LAYERS) for f in layer}
    edges = defaultdict(set)  # (from, to) -> files
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith((".h", ".cc", ".c")):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src)
            here = folder_of(rel)
            for line in open(path, encoding="utf-8", errors="replace"):
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if not m:
                    continue
                there = folder_of(m.group(1))
                if here and there and there != here and there in rank | {"runtime": 0}:
                    edges[(here, there)].add(rel)
    bad = []
    for (a, b), files in sorted(edges.items()):
        if a not in rank or b not in rank:
            continue
        if rank[b] >= rank[a] and not (rank[a] == rank[b] and (b, a) not in edges):
            bad.append(f"{a} -> {b}: {', '.join(sorted(files))}")
    # Cycles between folders (whatever the layers say).
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    cycles = set()

    def visit(node, stack):
        for nxt in graph[node]:
            if nxt in stack:
                cycle = stack[stack.index(nxt):] + [nxt]
                cycles.add(" -> ".join(cycle))
            elif len(stack) < 12:
                visit(nxt, stack + [nxt])

    for start in list(graph):
        visit(start, [start])
    for c in sorted(cycles):
        bad.append(f"cycle: {c}")
    for b in bad:
        print(b)
    if not bad:
        print(f"layering ok: {len(edges)} include edges between folders, no cycle")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
