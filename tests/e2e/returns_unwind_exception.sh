#!/usr/bin/env bash
# ctest-timeout: 240
# A C++ thread sleeps inside dwell() (programs/unwinding.cc) while a hybrid
# apply points its return at an exit stub; the old dwell() then throws to
# the catch in its caller. libgcc finds the stubs' unwind information graft
# registered with it: the exception is caught, the thread never runs its
# stub and is moved by the stack checks once outside, the transition
# completes, and the revert leaves nothing behind. With the registration
# left out (GRAFT_STUB_UNWIND_INFO=0, the stubs serving anyway), the same
# throw ends the process (std::terminate). Also with the target linked
# statically (libgcc_eh inside, its functions found in .symtab).
source "$(dirname "$0")/common.sh"

cxx -pthread -rdynamic "$PROGRAMS/unwinding.cc" -o "$T/unwinding"
cxx -pthread -static "$PROGRAMS/unwinding.cc" -o "$T/unwinding-static"
cat >"$T/fix.cc" <<'CXX'
#include <graft/patch.h>
#include <stdexcept>
#include <time.h>
extern "C" void trace_below();
static int new_dwell(int ms, int how) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
  if (how == 1) throw std::runtime_error("2");
  if (how == 2) trace_below();
  return 2;
}
GRAFT_REPLACE(dwell, new_dwell);
CXX
build_patch "$T/fix.cc" "$T/unwinding" "$T/fix.graft"
build_patch "$T/fix.cc" "$T/unwinding-static" "$T/fix-static.graft"

for kind in shared static; do
patch=$T/fix.graft target=$T/unwinding
[[ $kind == static ]] && patch=$T/fix-static.graft target=$T/unwinding-static
log "--- $kind"
start_target s "$target"
pid=${TPID[s]}
tid=$(ask s thrower)
maps0=$(grep -vc 'graft:' "/proc/$pid/maps")
fds0=$(ls "/proc/$pid/fd" | wc -l)
expect s "entered 1" 1
sleep 0.3  # inside dwell(), 2.7 s to go
apply_ok "$patch" "$pid" --model hybrid --timeout 30 --json
rewritten=$(json_get 'j["results"][0]["returns_rewritten"]' <"$T/graft.out")
passed=$(json_get 'j["results"][0]["returns_passed"]' <"$T/graft.out")
log "thrower $tid: rewritten=$rewritten passed=$passed; $(ask s stats)"
[[ $rewritten -ge 1 ]] || fail "the thrower's return was not rewritten"
[[ $passed -eq 0 ]] || fail "a return through a stub was counted, but the thrower throws"
(($(ask s redirected) >= 1)) || fail "no throw left dwell() with its return at a stub"
stats=$(ask s stats)
[[ $stats =~ ^caught\ ([0-9]+)\ bad\ 0 && ${BASH_REMATCH[1]} -ge 1 ]] || fail "after the apply: $stats"
expect s call 2
caught=${BASH_REMATCH[1]}
sleep 3.2  # the new dwell() throws too
stats=$(ask s stats)
[[ $stats =~ ^caught\ ([0-9]+)\ bad\ 0 && ${BASH_REMATCH[1]} -gt $caught ]] || fail "in the new code: $stats"
graft_ok revert "$(basename "$patch" .graft)" --pid "$pid" --timeout 30
assert_untouched "$pid"
expect s call 1
[[ $(ask s stats) =~ bad\ 0 ]] || fail "wrong results: $(ask s stats)"
[[ $(grep -vc 'graft:' "/proc/$pid/maps") -eq $maps0 ]] || fail "the target's mappings changed"
[[ $(ls "/proc/$pid/fd" | wc -l) -eq $fds0 ]] || fail "the target's fds changed"
stop_target s
done

# Without the unwind information, the throw through the stub terminates.
start_target n "$T/unwinding"
pid=${TPID[n]}
ask n thrower >/dev/null
expect n "entered 1" 1
GRAFT_STUB_UNWIND_INFO=0 "$GRAFT" apply "$T/fix.graft" --pid "$pid" --model hybrid --timeout 10 \
  >"$T/bare.out" 2>&1 &
bare=$!
bg_track "$bare"
wait_until 8 bash -c "! kill -0 $pid 2>/dev/null" ||
  fail "without the stubs' unwind information the process survived the throw (a test that proves nothing)"
wait_bounded "$bare" 30 || true
log "without the unwind information: the target died; graft: $(tail -1 "$T/bare.out")"
grep -q "terminate" "$T/n.err" || log "(no terminate message on its stderr: $(cat "$T/n.err"))"
stop_target n
log "ok"
