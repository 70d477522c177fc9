#!/usr/bin/env bash
# Callers built with GCC's -fipa-ra (on at -O2) keep values in call-clobbered
# registers across calls to small(), scale() and many() (a general register,
# an xmm register; many() also takes stack arguments). Replacements that
# clobber every call-clobbered register build with an entry thunk that keeps
# the registers the callers rely on, apply live while threads call them in a
# loop, compute the right values, and revert (per thread, then under a
# global stop), the process's maps and fds as before. Built without the thunk (GRAFT_ENTRY_THUNKS=off), the same patch
# makes the callers compute garbage. A C++ exception thrown by a replacement
# passes through its thunk to the handler two frames up.
# ctest-timeout: 240
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/ipara_thunk.c" -o "$T/ipara"

# The callers really keep a value across each call: the first of the few
# instructions after the call that names the register reads it (as a
# source, or as the destination of an arithmetic operation), so nothing
# after the call set it.
relies() {  # FUNCTION REGISTER PROGRAM
  local after line ins
  after=$(objdump -d --no-show-raw-insn "$T/$3" | grep -A4 -E "call +[0-9a-f]+ <$1>" | tail -n 4)
  while IFS= read -r line; do
    ins=$(sed -E 's/^[^:]*:[[:space:]]*//' <<<"$line")
    [[ $ins == *"$2"* ]] || continue
    [[ $ins == *"$2,"* || $ins =~ ^(imul|add|sub|mulsd|addsd)\  ]] ||
      fail "$1: the first instruction naming $2 after the call does not read it: $ins"
    log "a caller of $1 reads $2 kept across the call: $ins"
    return 0
  done <<<"$after"
  fail "no caller of $1 reads $2 after the call (the test would prove nothing):
$after"
}
relies small %esi ipara
relies small %edx ipara
relies scale %xmm2 ipara
relies many %r11 ipara

cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
#include <stdio.h>
extern volatile int k;
extern volatile double kd;
extern volatile long kl;
/* Overwrites the call-clobbered registers the callers keep values in. */
static inline void scrub(void) {
  __asm__ volatile("mov $-1, %%rsi\n\tmov $-1, %%rdx\n\tmov $-1, %%rdi\n\tmov $-1, %%r11\n\t"
                   "mov $-1, %%rcx\n\tmov $-1, %%r8\n\tmov $-1, %%r9\n\tmov $-1, %%r10\n\t"
                   "pcmpeqd %%xmm2, %%xmm2\n\tpcmpeqd %%xmm3, %%xmm3"
                   ::: "rsi", "rdx", "rdi", "rcx", "r8", "r9", "r10", "r11", "xmm2", "xmm3");
}
static int new_small(int x) {
  char buf[32];
  snprintf(buf, sizeof buf, "%d", x);
  scrub();
  return x * k + 2 + (buf[0] == '#');
}
static double new_scale(double x) {
  char buf[32];
  snprintf(buf, sizeof buf, "%g", x);
  scrub();
  return x * kd + 1.0 + (buf[0] == '#');
}
static long new_many(long a, long b, long c, long d, long e, long f, long g, long h) {
  char buf[64];
  snprintf(buf, sizeof buf, "%ld %ld", g, h);
  scrub();
  return (a + b + c + d + e + f) * kl + g * 10 + h + 1000 + (buf[0] == '#');
}
GRAFT_REPLACE(small, new_small);
GRAFT_REPLACE(scale, new_scale);
GRAFT_REPLACE(many, new_many);
C

graft_ok build --from-source "$T/fix.c" --target "$T/ipara" -o "$T/fix.graft"
out=$(cat "$T/graft.out")
for want in "\`small' gets an entry thunk that keeps rdx, rsi, rdi" \
            "\`scale' gets an entry thunk that keeps " \
            "\`many' gets an entry thunk that keeps " "copies its 16 bytes of stack arguments"; do
  [[ $out == *"$want"* ]] || fail "the build does not say \`$want'"
done
[[ $out =~ \`scale\'\ gets\ an\ entry\ thunk\ that\ keeps\ [^\(]*xmm2 ]] || fail "scale's thunk does not keep xmm2"
[[ $out =~ \`many\'\ gets\ an\ entry\ thunk\ that\ keeps\ [^\(]*r11 ]] || fail "many's thunk does not keep r11"
[[ ! -s $T/graft.err ]] || fail "the build warned: $(cat "$T/graft.err")"

# Stripped, with its debug file: the same thunks (the units, which say who
# may rely on what, and the signatures come from the debug file).
thunks() { grep -o "gets an entry thunk.*" "$1" | sort; }
thunks "$T/graft.out" >"$T/thunks.full"
mkdir -p "$T/stripped"
objcopy --only-keep-debug "$T/ipara" "$T/ipara.debug"
strip --strip-all -o "$T/stripped/ipara" "$T/ipara"
id=$(LC_ALL=C readelf -n "$T/ipara" | awk '/Build ID/ {print $3}')
mkdir -p "$T/debug/.build-id/${id:0:2}"
cp "$T/ipara.debug" "$T/debug/.build-id/${id:0:2}/${id:2}.debug"
GRAFT_DEBUG_ROOT=$T/debug graft_ok build --from-source "$T/fix.c" --target "$T/stripped/ipara" -o "$T/stripped.graft"
thunks "$T/graft.out" >"$T/thunks.stripped"
cmp -s "$T/thunks.full" "$T/thunks.stripped" ||
  fail "the stripped target gets other thunks: $(diff "$T/thunks.full" "$T/thunks.stripped")"

start_target p "$T/ipara"
pid=${TPID[p]}
expect p call 41
expect p vcall 13.5
expect p mcall 166
expect p "load 2" started
maps0=$(grep -vc 'graft:' "/proc/$pid/maps")
fds0=$(ls "/proc/$pid/fd" | wc -l)
for model in hybrid stop; do
  apply_ok "$T/fix.graft" "$pid" --model "$model" --timeout 30
  expect p call 42
  expect p vcall 14.5
  expect p mcall 1166
  sleep 0.3
  graft_ok revert fix --pid "$pid" --model "$model" --timeout 30
  expect p call 41
  expect p vcall 13.5
  expect p mcall 166
done
# Stacked: a second patch of small(), with its own thunk, over the first.
sed -e 's/x \* k + 2 + /x * k + 3 + /' -e '/GRAFT_REPLACE(scale\|GRAFT_REPLACE(many/d' "$T/fix.c" >"$T/fix2.c"
graft_ok build --from-source "$T/fix2.c" --target "$T/ipara" -o "$T/fix2.graft"
apply_ok "$T/fix.graft" "$pid" --timeout 30
apply_ok "$T/fix2.graft" "$pid" --timeout 30
expect p call 43
expect p vcall 14.5
graft_ok revert fix2 --pid "$pid" --timeout 30
expect p call 42
graft_ok revert fix --pid "$pid" --timeout 30
expect p call 41
errors=$(ask p errors)
[[ $errors == "0 of "* && $errors != "0 of 0" ]] || fail "the threads computed wrong values: $errors"
log "threads: $errors wrong"
assert_untouched "$pid"
[[ $(grep -vc 'graft:' "/proc/$pid/maps") -eq $maps0 ]] || fail "the process's mappings changed"
[[ $(ls "/proc/$pid/fd" | wc -l) -eq $fds0 ]] || fail "the process's fds changed"

# Without the thunk, the callers compute with the scrubbed registers. And
# vcaller() calls scale() with a misaligned stack (GCC's
# -fipa-stack-alignment: scale() needs no alignment), which the thunk
# realigns: without it, snprintf("%g") in the replacement faults on an
# aligned store.
GRAFT_ENTRY_THUNKS=off graft_ok build --from-source "$T/fix.c" --target "$T/ipara" -o "$T/nothunk.graft"
grep -q "keeps rdx, rsi, rdi live across the call" "$T/graft.err" ||
  fail "the build without thunks does not warn about caller"
grep -q "\`vcaller' calls \`scale' at 0x[0-9a-f]* with the stack 8 bytes off" "$T/graft.err" ||
  fail "the build without thunks does not warn about vcaller's misaligned call"
start_target q "$T/ipara"
apply_ok "$T/nothunk.graft" "${TPID[q]}"
for c in "call 42" "mcall 1166"; do
  got=$(ask q "${c% *}")
  [[ $got != "${c#* }" ]] || fail "without the thunk, \`${c% *}' still answered ${c#* }: the test proves nothing"
  log "without the thunk: ${c% *} -> $got (right: ${c#* })"
done
printf 'vcall\n' >&"${TIN[q]}"
gone() { [[ ! -e /proc/$1 || $(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) == Z ]]; }
wait_until 10 gone "${TPID[q]}" ||
  fail "without the thunk, vcall did not fault on the misaligned stack"
log "without the thunk: vcall -> the target faulted (misaligned stack)"
wait "${TPID[q]}" 2>/dev/null || true
unset 'TPID[q]'

# A C++ exception thrown by a replacement goes through the thunk.
cxx "$PROGRAMS/ipara_throw.cc" -o "$T/throw"
relies _Z5smalli %esi throw
cat >"$T/throw.cc" <<'CXX'
#include <graft/patch.h>
#include <stdexcept>
extern volatile int k;
int new_small(int x) {
  __asm__ volatile("mov $-1, %%rsi\n\tmov $-1, %%rdx\n\tmov $-1, %%rdi" ::: "rsi", "rdx", "rdi");
  if (x < 0) throw std::invalid_argument("negative (patched)");
  return x * k + 2;
}
GRAFT_REPLACE("small(int)", new_small);
CXX
graft_ok build --from-source "$T/throw.cc" --target "$T/throw" -o "$T/throw.graft"
grep -q "gets an entry thunk that keeps rdx, rsi, rdi" "$T/graft.out" || fail "no thunk for small(int)"
start_target x "$T/throw"
expect x "call 1" 41
expect x "call -1" 21
apply_ok "$T/throw.graft" "${TPID[x]}"
expect x "call 1" 42
expect x "call -1" "caught: negative (patched)"
expect x "call 2" 52
graft_ok revert throw --pid "${TPID[x]}"
expect x "call -1" 21
assert_untouched "${TPID[x]}"
