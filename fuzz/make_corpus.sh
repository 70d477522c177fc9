#!/usr/bin/env bash
# Regenerates the seed corpora of fuzz/corpus/ from real graft output: patch
# files built by `graft build`, and the maps, records and unwind-table
# headers of a live target patched with them. As root (graft apply).
#
#   bash fuzz/make_corpus.sh [GRAFT [INCLUDE_DIR]]     (default: build/graft)
#
# The seeds are committed; run this again when a format changes.
source "$(dirname "$0")/../tests/e2e/common.sh"
CORPUS=$REPO_ROOT/fuzz/corpus

# Seeds: PIE and non-PIE, with and without endbr64 at the entries, code only
# and code + rodata + data + bss + library calls, two stacked patches.
cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
cc -pthread -fcf-protection=full -no-pie "$PROGRAMS/basic.c" -o "$T/basic-cet"
build_basic_with_compute_fix
cat >"$T/rich.c" <<'C'
#include <graft/patch.h>
#include <stdio.h>
extern int counter;
static char last[64];              /* bss */
static int calls = 5;              /* data */
static const char fmt[] = "%d:%d"; /* rodata */
static int compute_rich(int x) {
  counter += snprintf(last, sizeof last, fmt, x, ++calls);
  return x * 1000;
}
GRAFT_REPLACE(compute, compute_rich);
C
build_patch "$T/rich.c" "$T/basic" "$T/rich.graft"
build_patch "$T/rich.c" "$T/basic-cet" "$T/rich-cet.graft"

mkdir -p "$CORPUS"/{patch_file,patch_record,maps,unwind_table,eh_frame}
cp "$T/fix.graft" "$CORPUS/patch_file/fix.graft"
cp "$T/rich.graft" "$CORPUS/patch_file/rich.graft"
cp "$T/rich-cet.graft" "$CORPUS/patch_file/rich-cet.graft"
graft_ok keygen -o "$T/seed" --name "seed signer"
graft_ok sign "$T/fix.graft" --key "$T/seed.key" -o "$CORPUS/patch_file/fix-signed.graft"

# dump PID LABEL: maps, each record (maps + NUL + record bytes), unwind seeds.
dump() {
  "$PYTHON" - "$1" "$2" "$CORPUS" <<'PY'
import os, re, struct, sys
pid, label, corpus = sys.argv[1], sys.argv[2], sys.argv[3]
maps = open(f"/proc/{pid}/maps", "rb").read()
open(f"{corpus}/maps/{label}.maps", "wb").write(maps)
mem = open(f"/proc/{pid}/mem", "rb")
def read(at, n):
    mem.seek(at)
    return mem.read(n)
n = 0
for line in maps.decode().splitlines():
    f = line.split(maxsplit=5)
    start, end = (int(x, 16) for x in f[0].split("-"))
    path = f[5] if len(f) > 5 else ""
    if "graft:" in path and int(f[2], 16) == 0:
        head = read(start, 32)
        size = struct.unpack_from("<Q", head, 24)[0]
        open(f"{corpus}/patch_record/{label}-{n}.rec", "wb").write(maps + b"\0" + read(start, 32 + size))
        n += 1
    elif label in ("unpatched", "cet") and path.startswith("/") and int(f[2], 16) == 0 and ("basic" in path or "libc" in path):
        page = read(start, 4096)
        # The .eh_frame_hdr: PT_GNU_EH_FRAME's vaddr plus the bias.
        phoff, = struct.unpack_from("<Q", page, 32)
        phnum, = struct.unpack_from("<H", page, 56)
        etype, = struct.unpack_from("<H", page, 16)
        loads = [];  hdr = None
        for i in range(phnum):
            p_type, _, _, vaddr = struct.unpack_from("<IIQQ", page, phoff + 56 * i)
            if p_type == 1: loads.append(vaddr & ~0xfff)
            if p_type == 0x6474e550: hdr = vaddr
        if hdr is None: continue
        bias = 0 if etype == 2 else start - min(loads)
        name = os.path.basename(path).replace(" ", "_")
        open(f"{corpus}/unwind_table/{label}-{name}", "wb").write(page + read(bias + hdr, 12))
print(f"{label}: {n} record(s)")
PY
}

start_target plain "$T/basic"
dump "${TPID[plain]}" unpatched
apply_ok "$T/fix.graft" "${TPID[plain]}"
dump "${TPID[plain]}" one-patch
apply_ok "$T/rich.graft" "${TPID[plain]}"
dump "${TPID[plain]}" stacked

start_target cet "$T/basic-cet"
apply_ok "$T/rich-cet.graft" "${TPID[cet]}"
dump "${TPID[cet]}" cet
# .eh_frame of static executables (no .eh_frame_hdr), and of a dynamic one.
printf 'int main(void) { return 0; }\n' > "$T/static.c"
gcc -O2 -static -o "$T/static" "$T/static.c"
objcopy -O binary --only-section=.eh_frame "$T/static" "$CORPUS/eh_frame/glibc-static"
objcopy -O binary --only-section=.eh_frame /usr/bin/true "$CORPUS/eh_frame/true"
objcopy -O binary --only-section=.eh_frame /usr/bin/ls "$CORPUS/eh_frame/ls"

ls -l "$CORPUS"/*
