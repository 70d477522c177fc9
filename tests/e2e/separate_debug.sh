#!/usr/bin/env bash
# Stripped targets with separate debug files, as distributions ship them:
# a patch is built against a stripped libfoo.so whose symbols (its static
# foo_scale included) are in a debug file found by build-id under
# GRAFT_DEBUG_ROOT, or by .gnu_debuglink beside it; a debug file of another
# build is not taken; without one the build is refused naming where graft
# looked and what to install. Then the real thing: Debian's stripped
# libc.so.6 with libc6-dbg, patched live in a running process.
source "$(dirname "$0")/common.sh"

tag="e2e-$$-$RANDOM-$(date +%s%N)"
cc -shared -fPIC -DFOO_TAG="\"$tag\"" "$PROGRAMS/libfoo.c" -o "$T/libfoo.full.so"
cc -shared -fPIC -DFOO_TAG="\"other-$tag\"" "$PROGRAMS/libfoo.c" -o "$T/other.so"
objcopy --only-keep-debug "$T/libfoo.full.so" "$T/libfoo.debug"
objcopy --only-keep-debug "$T/other.so" "$T/other.debug"
# As Debian's dh_strip does for a shared library.
strip --remove-section=.comment --remove-section=.note --strip-unneeded \
  -o "$T/libfoo.so" "$T/libfoo.full.so"
readelf -S "$T/libfoo.so" | grep -q '\.symtab' && fail "strip left a .symtab"
id=$(LC_ALL=C readelf -n "$T/libfoo.so" | awk '/Build ID/ { print $3 }')
[[ -n $id ]] || fail "libfoo.so has no build-id"

cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
extern int foo_calls;
int foo_scale(int x);  /* static in libfoo.so: only the debug file names it */
static int new_foo_compute(int x) {
  __atomic_add_fetch(&foo_calls, 1, __ATOMIC_RELAXED);
  return foo_scale(x) * 50;
}
GRAFT_REPLACE(foo_compute, new_foo_compute);
C

# No debug file anywhere: refused, naming where graft looked and what to do.
mkdir -p "$T/empty"
export GRAFT_DEBUG_ROOT=$T/empty
graft_fails any build --from-source "$T/fix.c" --target "$T/libfoo.so" -o "$T/fix.graft"
[[ $GRAFT_ERROR == *"is stripped"*"$T/empty/.build-id/${id:0:2}/${id:2}.debug"*"GRAFT_DEBUG_ROOT"* ]] ||
  fail "unexpected refusal: $GRAFT_ERROR"

# A debug file of another build at this build-id's place: not taken.
mkdir -p "$T/wrong/.build-id/${id:0:2}"
cp "$T/other.debug" "$T/wrong/.build-id/${id:0:2}/${id:2}.debug"
export GRAFT_DEBUG_ROOT=$T/wrong
graft_fails any build --from-source "$T/fix.c" --target "$T/libfoo.so" -o "$T/fix.graft"
[[ $GRAFT_ERROR == *"is stripped"* ]] || fail "a mismatched debug file was used: $GRAFT_ERROR"

# By build-id.
mkdir -p "$T/debug/.build-id/${id:0:2}"
cp "$T/libfoo.debug" "$T/debug/.build-id/${id:0:2}/${id:2}.debug"
export GRAFT_DEBUG_ROOT=$T/debug
build_patch "$T/fix.c" "$T/libfoo.so" "$T/fix.graft"

# By .gnu_debuglink, in the library's .debug/ folder (no build-id tree).
mkdir -p "$T/linked/.debug"
cp "$T/libfoo.debug" "$T/linked/.debug/libfoo.debug"
objcopy --add-gnu-debuglink="$T/libfoo.debug" "$T/libfoo.so" "$T/linked/libfoo.so"
export GRAFT_DEBUG_ROOT=$T/empty
build_patch "$T/fix.c" "$T/linked/libfoo.so" "$T/linked.graft"
# A debuglink whose CRC does not match (the other build's debug file): refused.
cp "$T/other.debug" "$T/linked/.debug/libfoo.debug"
graft_fails any build --from-source "$T/fix.c" --target "$T/linked/libfoo.so" -o "$T/bad.graft"

# The patch built from the debug file applies to processes running the
# stripped library, and reverts.
cc -pthread "$PROGRAMS/libmain.c" -L"$T" -lfoo -Wl,-rpath,"$T" -o "$T/libmain"
for p in p1 p2; do
  start_target $p "$T/libmain"
  expect $p call "7 0"
done
graft_ok apply "$T/fix.graft" --all --json
[[ $(json_get 'len(j["results"])' <"$T/graft.out") == 2 ]] || fail "apply --all did not find 2 processes"
for p in p1 p2; do
  [[ $(ask $p call) == "300 "* ]] || fail "$p does not run the patched foo_compute"
done
graft_ok revert "$(json_get 'j["results"][0]["patch_id"]' <"$T/graft.out")" --all
for p in p1 p2; do
  [[ $(ask $p call) == "7 "* ]] || fail "$p still runs the patched foo_compute"
  assert_untouched "${TPID[$p]}"
done

# A stripped library of a Debian package whose debug file is not installed:
# the refusal names the package to install.
cat >"$T/z.c" <<'C'
#include <graft/patch.h>
static unsigned long no_flags(void) { return 0; }
GRAFT_REPLACE(zlibCompileFlags, no_flags);
C
export GRAFT_DEBUG_ROOT=$T/empty
graft_fails any build --from-source "$T/z.c" --target /lib/x86_64-linux-gnu/libz.so.1 -o "$T/z.graft"
[[ $GRAFT_ERROR == *"is stripped"*"zlib1g-dbg"* ]] || fail "the refusal does not name zlib1g's debug package: $GRAFT_ERROR"

# Debian's own stripped libc with libc6-dbg (scripts/test.sh installs it).
unset GRAFT_DEBUG_ROOT
libc=/lib/x86_64-linux-gnu/libc.so.6
readelf -S "$libc" | grep -q '\.symtab' && fail "$libc is not stripped"
if ! dpkg-query -W -f='${Status}' libc6-dbg 2>/dev/null | grep -q 'install ok installed'; then
  echo "SKIP: libc6-dbg is not installed (scripts/test.sh installs it)"
  exit 77
fi
cat >"$T/labs.c" <<'C'
#include <graft/patch.h>
static long new_labs(long x) { return x < 0 ? -x * 1000 : x * 1000; }
GRAFT_REPLACE(labs, new_labs);
C
build_patch "$T/labs.c" "$libc" "$T/labs.graft"
"$CC" -g -O2 -fno-builtin -I"$PROGRAMS" "$PROGRAMS/labsuser.c" -o "$T/labsuser"
start_target u "$T/labsuser"
expect u call "7"
apply_ok "$T/labs.graft" "${TPID[u]}"
expect u call "7000"
graft_ok revert labs --pid "${TPID[u]}"
expect u call "7"
assert_untouched "${TPID[u]}"
