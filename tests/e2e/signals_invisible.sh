#!/usr/bin/env bash
# A live patch must be invisible to signals and system calls. The target
# (programs/signals.c) has a thread in epoll_wait(350 ms) in a loop, one in
# read() on an idle pipe, one reading a timerfd, one in an absolute
# clock_nanosleep, one blocking every signal (nanosleep), a worker calling
# the patched function, a POSIX timer sending SIGRTMIN (SA_SIGINFO |
# SA_RESTART, value 4242) every 5 ms and an interval timer sending SIGALRM
# every 7 ms. Patched and reverted in cycles under each model, it must see
# no EINTR, no early wake-up, every timer signal once with the siginfo the
# kernel gave it (SI_TIMER or SI_KERNEL, never graft's tgkill), no timer
# expiration lost, and its blocked mask left alone.
# ctest-timeout: 240
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/signals.c" -o "$T/signals" -lrt
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_work(int x) { return 3 * x + 2; }
GRAFT_REPLACE(work, new_work);
C
build_patch "$T/fix.c" "$T/signals" "$T/fix.graft"

# field STATS KEY: the value of KEY=N in a stats line.
field() { sed -n "s/.*\\b$2=\\(-\\?[0-9]*\\).*/\\1/p" <<<"$1"; }

cycles=${SIGNALS_CYCLES:-5}
failed=()
for model in ${SIGNALS_MODELS:-stop lazy hybrid}; do
  start_target "$model" "$T/signals"
  pid=${TPID[$model]}
  sleep 0.3
  for ((i = 1; i <= cycles; i++)); do
    # lazy moves a thread only when it finds it blocked in a call: one that
    # takes a signal every few milliseconds may not be found so in time.
    # A rolled-back apply stops and borrows the threads just the same.
    if [[ $model == lazy ]]; then
      if ! graft apply "$T/fix.graft" --pid "$pid" --model lazy --timeout 5; then
        grep -q "still pending.*rolled back" "$T/graft.out" || fail "lazy apply failed: $(cat "$T/graft.out")"
        expect "$model" call 16
        continue
      fi
    else
      apply_ok "$T/fix.graft" "$pid" --model "$model" --timeout 20
    fi
    expect "$model" call 17
    graft_ok revert fix --pid "$pid" --timeout 20
    expect "$model" call 16
  done
  assert_untouched "$pid"
  s=$(ask "$model" stats)
  log "$model: $s"
  for key in epoll_eintr read_eintr tfd_eintr sleep_eintr nap_eintr rt_wrong alrm_wrong \
             epoll_early sleep_early nap_early other mask_changed bad_calls tfd_lost; do
    v=$(field "$s" "$key")
    [[ $v == 0 ]] || failed+=("$model: $key=$v")
  done
  # Expirations by the clock minus those signalled (count + overruns), as
  # the last handler saw them: a lost signal leaves a lasting deficit.
  v=$(field "$s" rt_deficit)
  [[ $v -ge -1 && $v -le 3 ]] || failed+=("$model: rt_deficit=$v")
  [[ $(field "$s" rt_received) -gt 50 && $(field "$s" alrm_received) -gt 50 ]] ||
    failed+=("$model: too few timer signals: $s")
  stop_target "$model"
done
[[ ${#failed[@]} -eq 0 ]] || fail "the target saw graft: ${failed[*]}"
