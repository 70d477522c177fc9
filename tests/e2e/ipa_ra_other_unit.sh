#!/usr/bin/env bash
# GCC's -fipa-ra applies only within a compile unit: a caller in another
# unit cannot rely on a register the callee leaves alone. report() (main.c)
# calls ext() (other.c) and then hands rcx on to printf; graft must not
# count that as reliance, whether the target has its DWARF or is stripped
# with a separate debug file (which then says what the units are).
# ctest-timeout: 120
source "$(dirname "$0")/common.sh"

cat >"$T/other.c" <<'C'
__attribute__((noinline)) long ext(const char *s, long n) {
  long v = 0;
  for (long i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
  return v;
}
C
cat >"$T/main.c" <<'C'
#include <stdio.h>
#include <unistd.h>
long ext(const char *s, long n);
__attribute__((noinline)) void report(const char *s, double d) {
  long v = ext(s, 2);
  printf("%ld %g\n", v, d);
}
int main(void) {
  for (;;) {
    report("17", 2.5);
    sleep(1);
  }
}
C
cc -O2 "$T/main.c" "$T/other.c" -o "$T/prog"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static long new_ext(const char *s, long n) {
  long v = 0;
  for (long i = 0; i < n && i < 18; i++) v = v * 10 + (s[i] - '0');
  return v;
}
GRAFT_REPLACE(ext, new_ext);
C

graft_ok build --from-source "$T/fix.c" --target "$T/prog" -o "$T/full.graft"
! grep -q "entry thunk" "$T/graft.out" || fail "a caller in another unit counts as relying: $(cat "$T/graft.out")"

objcopy --only-keep-debug "$T/prog" "$T/prog.debug"
mkdir -p "$T/stripped"
strip --strip-all -o "$T/stripped/prog" "$T/prog"
id=$(LC_ALL=C readelf -n "$T/prog" | awk '/Build ID/ {print $3}')
mkdir -p "$T/debug/.build-id/${id:0:2}"
cp "$T/prog.debug" "$T/debug/.build-id/${id:0:2}/${id:2}.debug"
export GRAFT_DEBUG_ROOT=$T/debug
graft_ok build --from-source "$T/fix.c" --target "$T/stripped/prog" -o "$T/stripped.graft"
! grep -q "entry thunk" "$T/graft.out" ||
  fail "stripped, a caller in another unit counts as relying: $(cat "$T/graft.out")"
log "OK"
