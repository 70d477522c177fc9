#!/usr/bin/env bash
# SIGINT or SIGTERM while graft waits for a thread to leave the function it
# replaces: graft rolls back, says so in its output, exits 128+signal, and
# the process holds no trace of it (stop model and per-thread model).
# (Before: exit 130 or 143 with no output, a `loading' record and three
# graft mappings left behind.)
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_wait_here(int x) { return x * 1000; }
GRAFT_REPLACE(wait_here, new_wait_here);
C
build_patch "$T/fix.c" "$T/basic" "$T/fix.graft"
start_target b "$T/basic"
pid=${TPID[b]}
tid=$(ask b block)
[[ $tid -gt 0 ]] || fail "the blocker thread did not enter wait_here"

for case in "INT stop 130" "TERM stop 143" "INT hybrid 130" "TERM lazy 143"; do
  read -r sig model want <<<"$case"
  log "--- SIG$sig during an apply (--model $model)"
  # Background jobs of a script ignore SIGINT: give graft the default back.
  env --default-signal=INT,TERM "$GRAFT" apply "$T/fix.graft" --pid "$pid" --model "$model" \
    --timeout 20 --report-after 60 >"$T/apply.out" 2>"$T/apply.err" &
  gp=$!
  bg_track $gp
  sleep 1
  kill -"$sig" $gp
  rc=0
  wait_bounded $gp 10 || rc=$?
  out=$(cat "$T/apply.out" "$T/apply.err")
  log "exit $rc: $out"
  [[ $rc -eq $want ]] || fail "SIG$sig: graft exited with $rc, expected $want"
  [[ $out == *"interrupted by SIG$sig"* ]] || fail "SIG$sig: graft does not say it was interrupted: $out"
  if [[ $model == stop ]]; then
    [[ $out == *"process left unchanged" ]] || fail "SIG$sig: graft does not say it left the process unchanged"
  else
    [[ $out == *"rolled back"* ]] || fail "SIG$sig: graft does not say it rolled back"
  fi
  assert_untouched "$pid"
done
expect b release 4
expect b call "7 0"
