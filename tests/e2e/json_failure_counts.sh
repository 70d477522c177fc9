#!/usr/bin/env bash
# ctest-labels: regression
#
# `graft apply --json' that gives up at its timeout (a thread stays inside the
# function) reports, in its result, the retries it made and the longest pause
# it imposed, as it does on success (docs/cli.md): the error text says
# "gave up after 1.0 s and N retries", so "retries" must be N.
#
# REGRESSION TEST: a core bug this suite found, fixed in df0fed3 ("Fix core
# bugs found by the e2e suite"). Before the fix: on failure the result has
# "retries": 0 and "max_pause_ms": 0.0 whatever happened (apply_patch() only
# copies them from a successful run_stop_model()).
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
#include <unistd.h>
extern int block_pipe[2];
static int new_wait_here(int x) {
  char c;
  if (read(block_pipe[0], &c, 1) != 1) return -1;
  return x * 1000;
}
GRAFT_REPLACE(wait_here, new_wait_here);
C
build_patch "$T/fix.c" "$T/basic" "$T/fix.graft"

start_target b "$T/basic"
pid=${TPID[b]}
tid=$(ask b block)
[[ $tid -gt 0 ]] || fail "the blocker thread did not enter wait_here"
graft_fails 1 apply "$T/fix.graft" --pid "$pid" --model stop --timeout 1 --json
assert_untouched "$pid"
said=$(sed -n 's/.*gave up after [0-9.]* s and \([0-9]*\) retries.*/\1/p' <<<"$GRAFT_ERROR")
[[ -n $said && $said -gt 0 ]] || fail "the error does not count its retries: $GRAFT_ERROR"
retries=$(json_get 'j["results"][0]["retries"]' <"$T/graft.out")
max_pause=$(json_get 'j["results"][0]["max_pause_ms"]' <"$T/graft.out")
log "the error says $said retries; the result says retries=$retries, max_pause_ms=$max_pause"
expect b release 4
[[ $retries -eq $said ]] ||
  fail "REGRESSION (df0fed3): the JSON result says $retries retries, its own error says $said"
[[ $(json_get 'j["results"][0]["max_pause_ms"] > 0' <"$T/graft.out") == true ]] ||
  fail "REGRESSION (df0fed3): the JSON result says max_pause_ms=$max_pause after $said stops"
