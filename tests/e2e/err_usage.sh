#!/usr/bin/env bash
# Bad usage says what is wrong in one line and exits 2; "no such process" is
# exit 1 in every command; with --json every command prints one JSON
# document on stdout, even on bad input, with a machine-readable
# error_code; `list`'s status depends only on the process asked about.
# (Before: --timeout 0 printed a 310-digit range, --pid -5 was "does not
# exist" with exit 1, `graft aply` said "A subcommand is required", --pid 0
# said "needs --pid", build --from-source --json printed text, keygen and
# sign refused --json, list exited 2 for a missing process and apply 1, and
# errors before any process was reached were text even with --json.)
source "$(dirname "$0")/common.sh"

build_basic_with_compute_fix
nopid=$(cat /proc/sys/kernel/pid_max)

# usage WANT ARGS...: exit 2 and the first line of stderr contains WANT.
usage() {
  local want=$1 rc=0
  shift
  graft "$@" || rc=$?
  [[ $rc -eq 2 ]] || fail "graft $* exited with $rc, expected 2"
  [[ $(head -n1 "$T/graft.err") == *"$want"* ]] || fail "graft $*: expected \`$want': $(cat "$T/graft.err")"
  [[ $(wc -c <"$T/graft.err") -lt 300 ]] || fail "graft $*: the message is too long"
}
usage "--timeout: must be a number of seconds above 0, not \`0'" apply "$T/fix.graft" --pid 1234 --timeout 0
usage "--timeout: must be a number of seconds above 0, not \`-1'" revert fix --pid 1234 --timeout -1
usage "--pid: must be a process id (a positive integer), not \`-5'" apply "$T/fix.graft" --pid -5
usage "--pid: must be a process id (a positive integer), not \`0'" apply "$T/fix.graft" --pid 0
usage "--pid: must be a process id (a positive integer), not \`x'" list --pid x
usage "unknown command \`aply' (did you mean \`apply'?)" aply "$T/fix.graft" --pid 1234
usage "unknown model \`fast'" apply "$T/fix.graft" --pid 1234 --model fast
usage "apply needs --pid PID or --all" apply "$T/fix.graft"
usage "--force needs --model hybrid or lazy" apply "$T/fix.graft" --pid 1234 --force --model stop

# json_error CODE STATUS ARGS...: one JSON document on stdout, ok false,
# error_code CODE (in the document or its one result), exit STATUS.
json_error() {
  local code=$1 want=$2 rc=0 got
  shift 2
  graft "$@" || rc=$?
  [[ $rc -eq $want ]] || fail "graft $* exited with $rc, expected $want"
  got=$(json_get 'j.get("error_code") or (j.get("results") or [{}])[0].get("error_code")' <"$T/graft.out") ||
    fail "graft $*: stdout is not one JSON document"
  [[ $got == "$code" ]] || fail "graft $*: error_code $got, expected $code"
}
json_error usage 2 apply "$T/fix.graft" --pid 1234 --timeout 0 --json
json_error usage 2 apply "$T/fix.graft" --pid -5 --json
json_error usage 2 aply "$T/fix.graft" --json
json_error usage 2 apply "$T/fix.graft" --json
json_error bad_input 2 apply "$T/nonexistent.graft" --pid 1234 --json
json_error failed 2 info "$T/nonexistent.graft" --json
json_error usage 2 sign "$T/fix.graft" --key "$T/nonexistent.key" --json
json_error failed 2 keygen -o "$T/no/such/dir/k" --json
for cmd in "apply $T/fix.graft" "revert fix" "recover" "list"; do
  # shellcheck disable=SC2086
  json_error no_such_process 1 $cmd --pid "$nopid" --json
  # shellcheck disable=SC2086
  graft_fails 1 $cmd --pid "$nopid"
  [[ $GRAFT_ERROR == *"process $nopid does not exist"* ]] || fail "graft $cmd: $GRAFT_ERROR"
done

log "--- --json output of build, keygen and sign"
graft_ok build --from-source "$T/fix.c" --target "$T/basic" -o "$T/j.graft" --json
[[ $(json_get 'j["functions"][0]["symbol"]' <"$T/graft.out") == compute ]] || fail "build --json: no function"
graft_ok keygen -o "$T/k" --json
[[ $(json_get 'j["public_key"]' <"$T/graft.out") == "$T/k.pub" ]] || fail "keygen --json: no public key"
graft_ok sign "$T/j.graft" --key "$T/k.key" --json
[[ $(json_get 'j["signer"]' <"$T/graft.out") == k* ]] || fail "sign --json: no signer"

log "--- list: the status is that of the process asked about"
cc "$PROGRAMS/hostile.c" -o "$T/hostile"
start_target h "$T/hostile"
[[ $(ask h "fake site_in_data") == 0123456789ab ]] || fail "the hostile target has no fake region"
start_target b "$T/basic"
apply_ok "$T/fix.graft" "${TPID[b]}"
graft_ok list --pid "${TPID[b]}"
graft_ok list
grep -q "pid ${TPID[h]}: WARNING: .*invalid record" "$T/graft.out" || fail "list does not warn of the invalid record"
graft_ok list --json
graft list --pid "${TPID[h]}" && fail "list --pid of a process with an invalid record succeeded"
true
