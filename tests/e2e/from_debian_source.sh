#!/usr/bin/env bash
# A real security fix of Debian's own expat, built with `graft build
# --from-diff --debian-source` and applied with --all to every process that
# maps the library (docs/corpus.md).
#
# scripts/corpus/debian_build.sh builds expat 2.5.0-1+deb12u2 as Debian
# does (dpkg-buildpackage -b, its .debs unpacked), with the series rolled
# back to before CVE-2024-45490: the library a server ran before that fix.
# graft rebuilds the same source as Debian does, must find the library's
# build-id among the binaries it rebuilt (reproducible builds), and builds
# the patch from Debian's patch file. Three processes (tests/corpus/
# expat_probe.c) map the library; in each, a thread parses all the time.
#   CVE-2024-45490  XML_ParseBuffer accepts a negative length (status 1);
#                   refuses it after (status 0, XML_ERROR_INVALID_ARGUMENT).
# The parsing threads must see no wrong result, before, during and after.
# Then: another binary (the host's libexpat) against that source is refused
# naming a function that differs, reusing the cached original build.
# ctest-labels: corpus
# ctest-timeout: 1500
source "$(dirname "$0")/common.sh"
CORPUS=$REPO_ROOT/tests/corpus
FIX=CVE-2024-45490.patch

bash "$REPO_ROOT/scripts/corpus/debian_build.sh" expat 2.5.0-1+deb12u2 "$FIX" ||
  fail "scripts/corpus/debian_build.sh expat failed"
# shellcheck source=/dev/null
source "${GRAFT_CORPUS_DIR:-/var/cache/graft-corpus}/debian/expat_2.5.0-1+deb12u2_before-${FIX%.patch}/env"
LIBDIR=$ROOT/lib/x86_64-linux-gnu
LIB=$(readlink -f "$LIBDIR/libexpat.so.1")
[[ -f $LIB ]] || fail "no libexpat.so.1 in $LIBDIR"
# Debian ships it stripped; the debug symbols are graft's to find.
! LC_ALL=C readelf -SW "$LIB" | grep -q '\.symtab' || fail "$LIB is not stripped"
cc -pthread -I"$ROOT/usr/include" "$CORPUS/expat_probe.c" -I"$REPO_ROOT/tests/e2e/programs" \
  -L"$LIBDIR" -l:libexpat.so.1 -Wl,-rpath,"$LIBDIR" -o "$T/expat_probe"

# ---------------------------------------------------------------- the build
graft_ok build --from-diff "$FIXES_DIR/$FIX" --debian-source "$TREE" --target "$LIB" -o "$T/fix.graft" --json
cp "$T/graft.err" "$T/build.err"
log "build: $(grep -c . "$T/graft.err") progress lines, last: $(tail -n 1 "$T/graft.err")"
json_get '[f["symbol"] for f in j["functions"]]' <"$T/graft.out" | grep -q '"XML_ParseBuffer"' ||
  fail "the patch does not replace XML_ParseBuffer: $(cat "$T/graft.out")"
json_get '"\n".join(j["notes"])' <"$T/graft.out" >"$T/notes"
grep -q "is Debian's build of expat 2.5.0-1+deb12u2, reproduced exactly" "$T/notes" ||
  fail "the rebuild did not reproduce $LIB: $(cat "$T/notes")"
grep -Eq '^graft: \[ *[0-9.]+ s\] building the original tree at /build/reproducible-path/expat-2.5.0: dpkg-buildpackage' "$T/build.err" ||
  grep -Eq '^graft: \[ *[0-9.]+ s\] reusing the original build' "$T/build.err" ||
  fail "no progress line for the original build: $(cat "$T/build.err")"

PROBES=(p1 p2 p3)
for p in "${PROBES[@]}"; do
  start_target $p "$T/expat_probe"
  grep -q "$LIB" "/proc/${TPID[$p]}/maps" || fail "$p does not map $LIB"
done

# ---------------------------------------------------------------- before
check_all negative "status 1 error 0"
threads_ok parser

# ---------------------------------------------------------------- apply --all
want_pids=$(for p in "${PROBES[@]}"; do echo "${TPID[$p]}"; done | sort -n | paste -sd, | sed 's/,/, /g; s/^/[/; s/$/]/')
graft apply "$T/fix.graft" --all --timeout 20 --json || true
got=$(json_get 'sorted(r["pid"] for r in j["results"] if r["ok"] and r["pid"] in '"$want_pids"')' <"$T/graft.out")
[[ $got == "$want_pids" ]] ||
  fail "apply --all patched $got of $want_pids: $(json_get '[r["error"] for r in j["results"]]' <"$T/graft.out")"
for p in "${PROBES[@]}"; do assert_no_wx "${TPID[$p]}"; done
PATCH_ID=$(json_get 'j["patch_id"]' <"$T/graft.out")

# ---------------------------------------------------------------- after
check_all negative "status 0 error 41"
sleep 1
threads_ok parser
for p in "${PROBES[@]}"; do
  [[ $(patch_count "${TPID[$p]}") -eq 1 ]] || fail "$p: graft list does not show the patch"
  log "$p (pid ${TPID[$p]}): parser $(ask $p stats)"
done
graft_ok revert "$PATCH_ID" --all --json
check_all negative "status 1 error 0"
threads_ok parser

# ---------------------------------------------------------------- refusals
# The host's own libexpat is another build: refused before anything is
# written, naming a function that differs, after reusing the cached original
# build (no second build of the original tree).
HOST_LIB=$(readlink -f /lib/x86_64-linux-gnu/libexpat.so.1 2>/dev/null || true)
[[ -f $HOST_LIB ]] || fail "no libexpat.so.1 on this host (libexpat1 is installed with python3)"
[[ $(readelf -n "$HOST_LIB" | grep 'Build ID') != $(readelf -n "$LIB" | grep 'Build ID') ]] ||
  fail "the host's libexpat is the library built before the fix"
graft_fails 2 build --from-diff "$FIXES_DIR/$FIX" --debian-source "$TREE" --target "$HOST_LIB" -o "$T/host.graft"
grep -Eq "is not the build of expat 2.5.0-1\+deb12u2: [0-9]+ of the functions it shares with the rebuild differ, the first \`[A-Za-z_]" "$T/graft.err" ||
  fail "the host's library was not refused naming a function: $(cat "$T/graft.err")"
[[ ! -e $T/host.graft ]] || fail "a refused build wrote $T/host.graft"
grep -q "reusing the original build cached in" "$T/graft.err" || fail "the original build was not reused: $(cat "$T/graft.err")"
grep -q "building the" "$T/graft.err" && fail "the refused build built a tree: $(cat "$T/graft.err")"
log "host library: $(without_progress <"$T/graft.err")"
# A source package that is not there, and one that the target is not from.
graft_fails 2 build --from-diff "$FIXES_DIR/$FIX" --debian-source expat=0.0-no-such-version --target "$LIB" -o "$T/x.graft"
grep -q "the configured archives do not have that version" "$T/graft.err" || fail "missing version: $(cat "$T/graft.err")"
graft_fails 2 build --from-diff "$FIXES_DIR/$FIX" --debian-source expat --target "$LIB" -o "$T/x.graft"
grep -q "belongs to no installed package: name the version" "$T/graft.err" || fail "unowned target: $(cat "$T/graft.err")"
log "OK"
