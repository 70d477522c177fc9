#!/usr/bin/env bash
# `graft recover --all --jobs 3`: four processes, each left mid-transition
# by a graft killed after writing an int3 at an entry, are repaired side by
# side; one result per process, in pid order (JSON); each process is left
# unpatched with its entry restored, and its calls never went wrong.
# (Alone: --all would repair what other tests' killed grafts leave.)
# ctest-run-serial
source "$(dirname "$0")/common.sh"

build_transition_target
pids=()
for n in a b c d; do
  start_target $n "$T/transition"
  ask $n "load 2" >/dev/null
  pids+=(${TPID[$n]})
done
original=$(ask a "bytes work")
for n in a b c d; do
  rc=0
  GRAFT_FAULT=entry-int3:1 "$GRAFT" apply "$T/fix.graft" --pid "${TPID[$n]}" --model hybrid --timeout 20 \
    >"$T/graft.out" 2>&1 || rc=$?
  [[ $rc -eq 137 ]] || fail "$n: graft was not killed at entry-int3:1 (exit $rc): $(cat "$T/graft.out")"
  [[ $(ask $n "bytes work") == cc* ]] || fail "$n: no int3 left at the entry"
done

graft_ok recover --all --jobs 3 --json
r=$T/graft.out
got=$(json_get '[x["pid"] for x in j["results"]]' <"$r")
want=$(printf '%s\n' "${pids[@]}" | sort -n | paste -sd, | sed 's/,/, /g')
[[ $got == "[$want]" ]] || fail "recover --all repaired $got, expected [$want] in pid order"
for n in a b c d; do
  pid=${TPID[$n]}
  acts=$(json_get '[x for x in j["results"] if x["pid"] == '"$pid"'][0]' <"$r")
  [[ $acts == *'"ok": true'* && $acts == *"rolled back"* ]] || fail "$n: recover result: $acts"
  assert_untouched "$pid"
  [[ $(ask $n "bytes work") == "$original" ]] || fail "$n: the entry of work() was not restored"
  expect_epoch $n old
done
log "recover --all: 4 processes repaired: $(json_get '[x["actions"] for x in j["results"]]' <"$r" | cut -c1-200)"
graft_ok recover --all
grep -q "no process needs repair" "$T/graft.out" || fail "a second recover --all found work: $(cat "$T/graft.out")"
log "ok"
