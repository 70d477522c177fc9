# Shared helpers of the end-to-end tests (sourced by every tests/e2e/*.sh).
#
# A test compiles a small real target and patch, starts the target, patches it
# live with the real graft binary and checks what the target answers.
#
#   bash tests/e2e/NAME.sh [GRAFT [INCLUDE_DIR]]
#
# GRAFT (the graft binary) and GRAFT_INCLUDE_DIR (the directory holding
# graft/patch.h) come from the arguments (CTest passes them) or from the
# environment. Every target speaks the line protocol of programs/serve.h: it
# prints "ready PID" once, then answers each command line read on its stdin
# with exactly one line on its stdout.
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROGRAMS=$E2E_DIR/programs
TEST_NAME=$(basename "$0" .sh)
REPO_ROOT=$(cd "$E2E_DIR/../.." && pwd)

GRAFT=${1:-${GRAFT:-$REPO_ROOT/build/graft}}
export GRAFT_INCLUDE_DIR=${2:-${GRAFT_INCLUDE_DIR:-$REPO_ROOT/include}}
[[ -x $GRAFT ]] || { echo "FAIL $TEST_NAME: graft binary not found: $GRAFT" >&2; exit 1; }
[[ -f $GRAFT_INCLUDE_DIR/graft/patch.h ]] ||
  { echo "FAIL $TEST_NAME: no graft/patch.h under $GRAFT_INCLUDE_DIR" >&2; exit 1; }

# The system python (a version manager's shim can take seconds to start).
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
CC=${CC:-gcc}
CXX=${CXX:-g++}
# Targets and libraries carry a build-id (graft identifies targets by it).
CFLAGS=(-g -O2 -Wl,--build-id -I"$PROGRAMS")

T=$(mktemp -d "${TMPDIR:-/tmp}/graft-e2e-$TEST_NAME.XXXXXX")
chmod 755 "$T"

declare -A TPID=() TIN=() TOUT=()
BG_PIDS=()
TEST_START=$SECONDS

log() { printf '[%s %3ds] %s\n' "$TEST_NAME" $((SECONDS - TEST_START)) "$*"; }

fail() {
  printf 'FAIL %s: %s\n' "$TEST_NAME" "$*" >&2
  exit 1
}

# Kills every process the test started (targets and helpers), never leaves one.
# cleanup [STATUS]: a test's own EXIT trap passes the status it saw (under
# set -e, a trap that re-creates it with `(exit N)' would end right there).
cleanup() {
  local rc=${1:-$?} name pid
  trap - EXIT
  for pid in "${BG_PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  for name in "${!TPID[@]}"; do
    pid=${TPID[$name]}
    kill -KILL "$pid" 2>/dev/null || true
  done
  for pid in "${BG_PIDS[@]}" "${TPID[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ $rc -eq 0 ]]; then
    rm -rf "$T"
    log "PASS ($((SECONDS - TEST_START)) s)"
  elif [[ $rc -eq 77 ]]; then  # skipped (CTest: SKIP_RETURN_CODE), the test said why
    rm -rf "$T"
    log "SKIPPED ($((SECONDS - TEST_START)) s)"
  else
    for name in "${!TPID[@]}"; do
      if [[ -s $T/$name.err ]]; then
        echo "--- stderr of target $name:" >&2
        tail -n 20 "$T/$name.err" >&2
      fi
    done
    echo "FAIL $TEST_NAME (exit $rc); files kept in $T" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# bg_track PID: a background process of the test, killed at exit.
bg_track() { BG_PIDS+=("$1"); }

# ---------------------------------------------------------------- building

cc() { log "cc $*"; "$CC" "${CFLAGS[@]}" "$@"; }
cxx() { log "c++ $*"; "$CXX" "${CFLAGS[@]}" "$@"; }

# build_patch SOURCE TARGET OUTPUT [graft build options...]: the build must
# succeed without a -fipa-ra warning: the targets are written so that no
# caller relies on a patched function's registers (set ALLOW_IPA_RA_WARNING=1
# where a test expects one).
build_patch() {
  local src=$1 target=$2 out=$3
  shift 3
  graft build --from-source "$src" --target "$target" -o "$out" "$@" ||
    fail "graft build of $src failed"
  if [[ ${ALLOW_IPA_RA_WARNING:-0} != 1 ]] && grep -q -- '-fipa-ra' "$T/graft.out" "$T/graft.err"; then
    fail "graft build warns that a caller in the target may rely on -fipa-ra; fix the test program"
  fi
}

# build_basic_with_compute_fix: builds programs/basic.c into $T/basic and the
# usual patch of it into $T/fix.graft: compute() returns helper(x) * 100 and
# counts its calls in the target's `counter'.
build_basic_with_compute_fix() {
  cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
  cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
extern int counter;
int helper(int x);
static int new_compute(int x) { counter++; return helper(x) * 100; }
GRAFT_REPLACE(compute, new_compute);
C
  build_patch "$T/fix.c" "$T/basic" "$T/fix.graft"
}

# apply_at_stub NAME ROLE [ENV...]: starts $T/unwinding (programs/unwinding.cc)
# as target NAME, sends its ROLE thread (tracer, canceller) into dwell(), and
# starts a hybrid apply of $T/fix.graft with ENV in the background (APPLY: its
# pid; its JSON in $T/NAME.apply) that points that thread's return at an exit
# stub. Returns once it has.
apply_at_stub() {
  local name=$1 role=$2 led=0
  shift 2
  start_target "$name" "$T/unwinding"
  ask "$name" "$role" >/dev/null
  expect "$name" "entered 1" 1
  env "$@" "$GRAFT" apply "$T/fix.graft" --pid "${TPID[$name]}" --model hybrid --timeout 30 --json \
    >"$T/$name.apply" 2>"$T/$name.apply.err" &
  APPLY=$!
  bg_track "$APPLY"
  for _ in $(seq 100); do
    led=$(ask "$name" led)
    [[ $led == 1 ]] && break
    sleep 0.02
  done
  [[ $led == 1 ]] || fail "$name: graft did not point the $role's return at a stub"
}

# ---------------------------------------------------------------- running graft

# graft ARGS...: runs graft, shows the command and its output (stdout and
# stderr, in $T/graft.out and $T/graft.err), returns graft's status.
graft() {
  local rc=0
  log "\$ graft $*"
  "$GRAFT" "$@" >"$T/graft.out" 2>"$T/graft.err" || rc=$?
  sed 's/^/    | /' "$T/graft.out" "$T/graft.err"
  [[ $rc -eq 0 ]] || log "    (exit $rc)"
  return $rc
}

# graft_ok ARGS...: graft must succeed.
graft_ok() { graft "$@" || fail "graft $* failed (exit $?)"; }

# graft_fails EXPECTED_STATUS ARGS...: graft must fail with that status
# ("any" for any non-zero status that is not a crash) and say why in one
# line: the error is left in $GRAFT_ERROR. With --json, the one line is the
# JSON document, and $GRAFT_ERROR holds the errors of its results.
GRAFT_ERROR=
# without_progress: graft's output less the progress lines a per-thread
# transition prints while it waits (on stderr, before the result).
without_progress() {
  grep -Ev '^graft: (pid [0-9]+: ((applying|reverting): [0-9]+/[0-9]+ threads moved|after [0-9.]+ s, thread [0-9]+ is still pending: )|\[ *[0-9.]+ s\] )'
}
graft_fails() {
  local want=$1 rc=0 lines
  shift
  graft "$@" || rc=$?
  [[ $rc -ne 0 ]] || fail "graft $* succeeded; it should have failed"
  [[ $rc -lt 128 ]] || fail "graft $* crashed (exit $rc)"
  [[ $want == any || $rc -eq $want ]] || fail "graft $* exited with $rc, expected $want"
  lines=$(cat "$T/graft.out" "$T/graft.err" | without_progress | grep -c . || true)
  [[ $lines -eq 1 ]] || fail "graft $* printed $lines lines instead of a one-line error"
  if [[ $(head -c1 "$T/graft.out") == "{" ]]; then
    GRAFT_ERROR=$(json_get '"; ".join(r["error"] or "" for r in j["results"])' <"$T/graft.out")
    [[ $(json_get 'any(not r["ok"] for r in j["results"])' <"$T/graft.out") == true ||
       $(json_get 'j["results"]' <"$T/graft.out") == "[]" ]] ||
      fail "graft $* failed but its JSON says every result is ok"
  else
    GRAFT_ERROR=$(cat "$T/graft.out" "$T/graft.err" | without_progress)
  fi
}

# json_get EXPR < json: evaluates a Python expression on the parsed document `j`.
json_get() {
  "$PYTHON" -c 'import json,sys; j=json.load(sys.stdin); v=eval(sys.argv[1]); print(json.dumps(v) if isinstance(v,(dict,list,bool)) or v is None else v)' "$1"
}

# ---------------------------------------------------------------- targets

# start_target NAME COMMAND...: starts a target speaking the serve.h protocol
# and waits (10 s at most) until it is ready. Its pid is in ${TPID[NAME]}.
start_target() {
  local name=$1
  shift
  rm -f "$T/$name.in" "$T/$name.out"
  mkfifo "$T/$name.in" "$T/$name.out"
  "$@" <"$T/$name.in" >"$T/$name.out" 2>"$T/$name.err" &
  local pid=$! win rout
  TPID[$name]=$pid
  # Each open blocks until the target's side is open too.
  exec {win}>"$T/$name.in"
  exec {rout}<"$T/$name.out"
  TIN[$name]=$win
  TOUT[$name]=$rout
  local line=
  read -r -t 10 -u "$rout" line || fail "target $name ($*) did not start"
  # In its own PID namespace (TARGET_OWN_PID_NS=1) it knows another pid.
  [[ $line == "ready $pid" || (-n ${TARGET_OWN_PID_NS:-} && $line == "ready "*) ]] ||
    fail "target $name: unexpected first line \`$line'"
  log "started $name: pid $pid ($(basename "$1"))"
}

# ask NAME COMMAND: sends a command to a target and prints its one-line answer.
ask() {
  local name=$1 cmd=$2 line=
  kill -0 "${TPID[$name]}" 2>/dev/null || fail "target $name (pid ${TPID[$name]}) is gone (asked \`$cmd')"
  printf '%s\n' "$cmd" >&"${TIN[$name]}" || fail "cannot send \`$cmd' to target $name"
  read -r -t 20 -u "${TOUT[$name]}" line || fail "target $name did not answer \`$cmd'"
  printf '%s\n' "$line"
}

# expect NAME COMMAND WANT: the target's answer to COMMAND must be WANT.
expect() {
  local got
  got=$(ask "$1" "$2")
  [[ $got == "$3" ]] || fail "target $1: \`$2' answered \`$got', expected \`$3'"
  log "$1: $2 -> $got"
}

# check_all COMMAND WANT: every target named in the array PROBES answers WANT.
check_all() {
  local p
  for p in "${PROBES[@]}"; do expect "$p" "$1" "$2"; done
}

# threads_ok WHAT: every target in PROBES answers `stats' with "ok N failed
# 0", N > 0: its WHAT thread (a parser, a resolver) worked and never failed.
threads_ok() {
  local p s
  for p in "${PROBES[@]}"; do
    s=$(ask "$p" stats)
    [[ $s =~ ^ok\ ([0-9]+)\ failed\ 0$ && ${BASH_REMATCH[1]} -gt 0 ]] || fail "$p: $1 thread: $s"
  done
}

# stop_target NAME: kills a target now (SIGKILL) and reaps it.
stop_target() {
  local name=$1 pid=${TPID[$1]} win=${TIN[$1]} rout=${TOUT[$1]}
  exec {win}>&- {rout}<&-
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "TPID[$name]"
}

# ---------------------------------------------------------------- process state

# graft_regions PID: the graft mappings of a process (lines of its maps).
graft_regions() { grep 'graft:' "/proc/$1/maps" || true; }

# assert_no_wx PID: no mapping of the process is both writable and executable.
assert_no_wx() {
  local wx
  wx=$(awk 'substr($2,2,2) == "wx"' "/proc/$1/maps")
  [[ -z $wx ]] || fail "pid $1 has writable and executable mappings:
$wx"
}

# patch_count PID: how many patches `graft list --pid PID` shows.
patch_count() {
  local out
  out=$("$GRAFT" list --pid "$1") || fail "graft list --pid $1 failed"
  if [[ $out == "pid $1 ("*"): no patches" ]]; then
    echo 0
  else
    grep -c "^pid $1 (.*): .* (id [0-9a-f]*) #[0-9]* " <<<"$out" || true
  fi
}

# assert_untouched PID: graft left no trace in the process: no patch listed,
# no graft mapping, no writable and executable mapping.
assert_untouched() {
  local pid=$1 n
  kill -0 "$pid" 2>/dev/null || fail "pid $pid is gone"
  n=$(patch_count "$pid")
  [[ $n -eq 0 ]] || fail "pid $pid: graft list shows $n patch(es); the process should be untouched"
  [[ -z $(graft_regions "$pid") ]] || fail "pid $pid still maps a graft region:
$(graft_regions "$pid")"
  assert_no_wx "$pid"
}

# apply_ok PATCH PID [options]: applies, then checks no W+X mapping appeared.
apply_ok() {
  local patch=$1 pid=$2
  shift 2
  graft_ok apply "$patch" --pid "$pid" "$@"
  assert_no_wx "$pid"
}

# wait_until SECONDS COMMAND...: polls (every 50 ms) until COMMAND succeeds.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [[ $SECONDS -lt $deadline ]] || return 1
    sleep 0.05
  done
}

# wait_bounded PID SECONDS: waits for a background child; its exit status,
# or a failure of the test if it still runs after SECONDS (it is killed).
wait_bounded() {
  local pid=$1 deadline=$((SECONDS + $2)) rc=0
  while kill -0 "$pid" 2>/dev/null; do
    if [[ $SECONDS -ge $deadline ]]; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      fail "process $pid (graft?) still ran after $2 s: hung"
    fi
    sleep 0.05
  done
  wait "$pid" || rc=$?
  return $rc
}

# thread_state PID TID: the scheduler state letter of a thread (R, S, t...).
thread_state() { awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/task/$2/stat" 2>/dev/null; }

# ---------------------------------------------------------------- per-thread models

# build_transition_target [-DWITH_RUNTIME]: programs/transition.c into
# $T/transition (with the runtime: linked to libgraft-rt.so next to graft),
# and its usual patch into $T/fix.graft: work(x) returns 3x+2 instead of 3x+1.
build_transition_target() {
  local rt=()
  if [[ ${1:-} == -DWITH_RUNTIME ]]; then
    local dir
    dir=$(dirname "$GRAFT")
    [[ -f $dir/libgraft-rt.so ]] || fail "no libgraft-rt.so next to $GRAFT"
    rt=(-DWITH_RUNTIME -I"$GRAFT_INCLUDE_DIR" -L"$dir" -Wl,-rpath,"$dir" -lgraft-rt)
  fi
  cc -pthread -fno-ipa-ra "$PROGRAMS/transition.c" -o "$T/transition" "${rt[@]}"
  cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_work(int x) { return 3 * x + 2; }
GRAFT_REPLACE(work, new_work);
C
  build_patch "$T/fix.c" "$T/transition" "$T/fix.graft"
}

# epoch_stats NAME: starts a new epoch in target NAME and prints the counts of
# the calls started in it ("old=N new=N bad=N").
epoch_stats() {
  local e
  e=$(ask "$1" mark)
  ask "$1" "stats $e"
}

# expect_epoch NAME old|new: every call started from now on gives that result.
expect_epoch() {
  local s
  s=$(epoch_stats "$1")
  log "$1: calls of a new epoch: $s"
  [[ $s == *" bad=0" ]] || fail "$1: calls returned garbage: $s"
  if [[ $2 == new ]]; then
    [[ $s == "old=0 "* ]] || fail "$1: calls started after the switch returned the old result: $s"
  else
    [[ $s == *"new=0 "* ]] || fail "$1: calls started after the switch returned the new result: $s"
  fi
}

# list_state PID: the state of the first patch graft list shows ("" if none).
list_state() {
  "$GRAFT" list --pid "$1" --json 2>/dev/null |
    "$PYTHON" -c 'import json,sys; j=json.load(sys.stdin); p=j["processes"][0]["patches"]; print(p[0]["state"] if p else "")'
}

# ---------------------------------------------------------------- from-diff

# shop_tree DIR: a fresh copy of programs/diffshop (with serve.h) in DIR.
shop_tree() {
  rm -rf "$1"
  cp -r "$PROGRAMS/diffshop" "$1"
  mkdir -p "$1/programs"
  cp "$PROGRAMS/serve.h" "$1/programs/"
}

# make_fix ORIG NAME EDIT...: copies the tree ORIG (sources only) to
# $T/NAME, runs the EDIT command in it, and writes `diff -ruN' of the two
# trees to $T/NAME.patch (paths a/... b/..., applied with -p1).
make_fix() {
  local orig=$1 name=$2
  shift 2
  rm -rf "$T/$name.a" "$T/$name.b"
  mkdir "$T/$name.a"
  (cd "$orig" && find . -type f \( -name '*.c' -o -name '*.h' -o -name '*.cc' -o -name Makefile \) \
    -exec cp --parents {} "$T/$name.a/" \;)
  cp -r "$T/$name.a" "$T/$name.b"
  (cd "$T/$name.b" && "$@")
  (cd "$T" && diff -ruN "$name.a" "$name.b" | sed -e "s#^--- $name.a/#--- a/#" -e "s#^+++ $name.b/#+++ b/#" \
    >"$T/$name.patch") || true
  [[ -s $T/$name.patch ]] || fail "make_fix $name: the edit changed nothing"
}

# no_ipa_ra_warning: the last graft run did not warn about -fipa-ra.
no_ipa_ra_warning() {
  ! grep -q -- '-fipa-ra' "$T/graft.out" "$T/graft.err" ||
    fail "graft build warns that a caller may rely on -fipa-ra"
}
