#!/usr/bin/env bash
# Real security fixes of a shared library, built from Debian's patches by
# `graft build --from-diff` and applied with --all to every process that
# maps it: c-ares 1.18.1 (Debian 12), the tree before its fixes
# (scripts/corpus/prepare.sh; docs/corpus.md).
#
# Three processes (tests/corpus/cares_probe.c) map the unfixed libcares.so.2;
# in each, a thread resolves names all the time against tests/corpus/
# fake_dns.py. A fourth (tests/corpus/cares_bare.c) imports none of glibc's
# string functions, so the IFUNCs a fix calls (strlen, strchr, strncpy for
# CVE-2023-31130) come from libcares's own GOT, or from their resolvers run
# in the process where libcares does not import them either
# (docs/corpus.md). Each fix shows its bug in every process before and not
# after:
#   CVE-2022-4904   ares_set_sortlist("111.111.111.111*/16") overflows a stack
#                   buffer and returns ARES_SUCCESS; ARES_EBADSTR after;
#   CVE-2023-31130  the rewritten ares_inet_net_pton: "1:2:3:4:5:6:7:8/16" is
#                   rejected by the old parser (empty sortlist), one IPv6
#                   entry after;
#   CVE-2023-32067  a 0-byte UDP datagram before the answer fails the query
#                   ("Could not contact DNS servers"); answered after.
# The resolving threads must see no failure, before, during and after.
# ctest-labels: corpus
# ctest-timeout: 1200
GRAFT_BIN=${1:-${GRAFT:-$(dirname "$0")/../../build/graft}}
if [[ -x $GRAFT_BIN ]] && ! "$GRAFT_BIN" build --help 2>&1 | grep -q -- '--from-diff'; then
  echo "SKIP corpus_cares: graft build has no --from-diff yet"
  exit 77
fi
source "$(dirname "$0")/common.sh"
CORPUS=$REPO_ROOT/tests/corpus

bash "$REPO_ROOT/scripts/corpus/prepare.sh" c-ares || fail "scripts/corpus/prepare.sh c-ares failed"
# shellcheck source=/dev/null
source "${GRAFT_CORPUS_DIR:-/var/cache/graft-corpus}/c-ares/env"
log "c-ares $VERSION, tree $TREE"

# The library as built (same file, same build-id), loaded from $T/lib.
mkdir -p "$T/lib"
cp "$ARTIFACT" "$T/lib/libcares.so.2"
LIB=$T/lib/libcares.so.2
cc -pthread -I"$TREE/include" "$CORPUS/cares_probe.c" -L"$T/lib" -l:libcares.so.2 \
  -Wl,-rpath,"$T/lib" -o "$T/cares_probe"
cc -fno-builtin -I"$TREE/include" "$CORPUS/cares_bare.c" -L"$T/lib" -l:libcares.so.2 \
  -Wl,-rpath,"$T/lib" -o "$T/cares_bare"
imports() {  # FILE: the names its dynamic relocations bind (JUMP_SLOT, GLOB_DAT)
  LC_ALL=C readelf -rW "$1" | awk '/JUMP_SLOT|GLOB_DAT/ {sub(/@.*/, "", $5); print $5}' | sort -u
}
LIBC=$(ldd "$T/cares_bare" | awk '/libc\.so/ {print $3}')
LIBC_IFUNCS=$(LC_ALL=C readelf -sW --dyn-syms "$LIBC" | awk '$4 == "IFUNC" {sub(/@.*/, "", $8); print $8}' | sort -u)
[[ -n $LIBC_IFUNCS ]] || fail "found no IFUNC in $LIBC"

"$PYTHON" "$CORPUS/fake_dns.py" "$T/dns.port" &
bg_track $!
wait_until 10 test -s "$T/dns.port" || fail "the fake DNS server did not start"
DNS_PORT=$(cat "$T/dns.port")

PROBES=(p1 p2 p3)
for p in "${PROBES[@]}"; do
  start_target $p "$T/cares_probe" "$DNS_PORT"
  grep -q "$LIB" "/proc/${TPID[$p]}/maps" || fail "$p does not map $LIB"
done
start_target bare "$T/cares_bare"
grep -q "$LIB" "/proc/${TPID[bare]}/maps" || fail "bare does not map $LIB"


# ---------------------------------------------------------------- before
check_all "query plain.test" "ok 10.0.0.1"
check_all "sortlist 111.111.111.111*/16" "status 0 nsort 0"
check_all "sortlist 1:2:3:4:5:6:7:8/16" "status 0 nsort 0"
check_all "query empty-first.test" "error Could not contact DNS servers"
threads_ok resolver
expect bare "sortlist 111.111.111.111*/16" "status 0 nsort 0"
expect bare "sortlist 1:2:3:4:5:6:7:8/16" "status 0 nsort 0"

# ---------------------------------------------------------------- the fixes
want_pids=$(for p in "${PROBES[@]}" bare; do echo "${TPID[$p]}"; done | sort -n | paste -sd, | sed 's/,/, /g; s/^/[/; s/$/]/')
applied=()
for fix in "${FIXES[@]}"; do
  graft build --from-diff "$FIXES_DIR/$fix" --clean "make clean" --source "$TREE" --target "$LIB" --build "$BUILD" \
    -o "$T/$fix.graft" || fail "--from-diff failed for $fix"
  # The IFUNCs the fix calls: none imported by `bare'; where libcares does
  # not import one either, graft must run its resolver in the processes.
  graft_ok info "$T/$fix.graft" --json
  ifuncs=$(json_get '"\n".join(e["name"] for e in j["externals"] if e["where"] == "library")' <"$T/graft.out" |
           grep -xF "$LIBC_IFUNCS" || true)
  if [[ -n $ifuncs ]]; then
    in_bare=$(grep -xF "$(imports "$T/cares_bare")" <<<"$ifuncs" || true)
    [[ -z $in_bare ]] || fail "cares_bare imports $in_bare, which $fix calls"
    not_in_lib=$(grep -vxF "$(imports "$LIB")" <<<"$ifuncs" || true)
    log "$fix calls the IFUNCs $(paste -sd' ' <<<"$ifuncs"); libcares imports all but: ${not_in_lib:-none}"
  fi
  # --all: every process that maps this build of libcares. Processes
  # other than ours (someone else's program on the corpus library) may be
  # among them; ours must all be patched.
  graft apply "$T/$fix.graft" --all --timeout 20 --json || true
  got=$(json_get 'sorted(r["pid"] for r in j["results"] if r["ok"] and r["pid"] in '"$want_pids"')' <"$T/graft.out")
  [[ $got == "$want_pids" ]] ||
    fail "$fix: apply --all patched $got of $want_pids: $(json_get '[r["error"] for r in j["results"]]' <"$T/graft.out")"
  for p in "${PROBES[@]}"; do assert_no_wx "${TPID[$p]}"; done
  applied+=("$fix")
done
is_applied() { [[ " ${applied[*]} " == *" $1 "* ]]; }

# ---------------------------------------------------------------- after
if is_applied CVE-2022-4904.diff; then
  check_all "sortlist 111.111.111.111*/16" "status 17 nsort 0"   # ARES_EBADSTR
  expect bare "sortlist 111.111.111.111*/16" "status 17 nsort 0"
fi
if is_applied CVE-2023-31130.diff; then
  check_all "sortlist 1:2:3:4:5:6:7:8/16" "status 0 nsort 1"
  expect bare "sortlist 1:2:3:4:5:6:7:8/16" "status 0 nsort 1"
fi
if is_applied CVE-2023-32067.diff; then
  check_all "query empty-first.test" "ok 10.0.0.1"
fi
check_all "query plain.test" "ok 10.0.0.1"
sleep 1
threads_ok resolver
for p in "${PROBES[@]}"; do
  [[ $(patch_count "${TPID[$p]}") -eq ${#applied[@]} ]] || fail "$p: graft list does not show ${#applied[@]} patches"
  log "$p (pid ${TPID[$p]}): applied ${applied[*]}; resolver $(ask $p stats)"
done
[[ $(patch_count "${TPID[bare]}") -eq ${#applied[@]} ]] || fail "bare: graft list does not show ${#applied[@]} patches"
