#!/usr/bin/env bash
# The graft demo: live-patch a security bug out of a running server, then
# take the patch back out, without restarting it.
#
#   ./demo/run.sh          (as root on Debian 12; builds graft first)
#
#   GRAFT_BUILD_DIR   build directory (default: build)
#   DEMO_PORT         first port to try for the server (default: 7070)
#   NO_COLOR          set to disable colours
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BUILD=${GRAFT_BUILD_DIR:-build}
GRAFT=$BUILD/graft
DEMO=$BUILD/demo
PORT=${DEMO_PORT:-7070}
TOTAL_STEPS=10
export GRAFT_BUILD_DIR=$BUILD

if [[ -t 1 && -z ${NO_COLOR:-} ]]; then
  BOLD=$'\e[1m' DIM=$'\e[2m' RED=$'\e[31m' GREEN=$'\e[32m' CYAN=$'\e[36m' RESET=$'\e[0m'
else
  BOLD='' DIM='' RED='' GREEN='' CYAN='' RESET=''
fi

STEP=0
STEP_NAME="starting"
SERVER_PID=""

section() {
  STEP=$((STEP + 1))
  STEP_NAME=$*
  printf '\n%s== [%d/%d] %s ==%s\n' "$BOLD$CYAN" "$STEP" "$TOTAL_STEPS" "$*" "$RESET"
}

note() { printf '%s%s%s\n' "$DIM" "$*" "$RESET"; }
ok() { printf '%s✔ %s%s\n' "$GREEN" "$*" "$RESET"; }
die() {
  printf '%s✘ %s%s\n' "$RED" "$*" "$RESET" >&2
  exit 1
}

# Shows a command, runs it, and keeps its output in $DEMO/last.out.
run() {
  printf '%s$ %s%s\n' "$BOLD" "$*" "$RESET"
  "$@" 2>&1 | tee "$DEMO/last.out"
}

stop_server() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

on_exit() {
  local rc=$?
  stop_server
  if [[ $rc -ne 0 ]]; then
    printf '\n%sdemo FAILED in step %d/%d (%s), exit status %d%s\n' \
      "$BOLD$RED" "$STEP" "$TOTAL_STEPS" "$STEP_NAME" "$rc" "$RESET" >&2
  fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# The requests of the demo: a plain one, one that injects text into the reply
# through a quote, and one too long for the reply buffer.
LONG_NAME=$(printf 'A%.0s' {1..120})
REQUESTS=("world" 'eve" (admin) "' "$LONG_NAME")

show_request() {
  if [[ ${#1} -gt 40 ]]; then
    printf '%s... (%d bytes)' "${1:0:12}" "${#1}"
  else
    printf '%s' "$1"
  fi
}

# Sends every request on one connection (bash /dev/tcp, no extra tools),
# prints request and reply, and leaves the replies in REPLIES.
ask() {
  REPLIES=()
  exec 3<>"/dev/tcp/127.0.0.1/$PORT" || die "cannot connect to 127.0.0.1:$PORT"
  printf '%s\n' "$@" >&3
  local req line
  for req in "$@"; do
    IFS= read -r -t 5 line <&3 || die "no reply to '$(show_request "$req")' within 5 s"
    REPLIES+=("$line")
    printf '  %s>%s %s\n' "$DIM" "$RESET" "$(show_request "$req")"
    printf '  %s<%s %s\n' "$DIM" "$RESET" "$line"
  done
  exec 3<&-
}

# Start time of a process, in clock ticks after boot (field 22 of
# /proc/PID/stat; the command name before it may hold spaces).
start_ticks() {
  local stat fields
  stat=$(<"/proc/$1/stat") || return 1
  read -r -a fields <<<"${stat##*) }"
  echo "${fields[19]}"
}

start_date() {
  local btime hz
  btime=$(awk '/^btime/ {print $2}' /proc/stat)
  hz=$(getconf CLK_TCK)
  date -d "@$((btime + $1 / hz))" '+%F %T'
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

show_process() {
  local ticks tasks
  ticks=$(start_ticks "$SERVER_PID") || die "server pid $SERVER_PID is gone"
  tasks=(/proc/"$SERVER_PID"/task/*)
  printf '  pid %s, %d threads, started %s (start time %s ticks after boot)\n' \
    "$SERVER_PID" "${#tasks[@]}" "$(start_date "$ticks")" "$ticks"
}

mkdir -p "$DEMO"
printf '%sgraft demo: fixing a running server without restarting it%s\n' "$BOLD" "$RESET"
[[ $(id -u) -eq 0 ]] || note "(not root: installing packages and ptrace may fail)"

# ---------------------------------------------------------------------------
section "Build graft"
run scripts/build.sh

# ---------------------------------------------------------------------------
section "Build the demo server (demo/server.c)"
run cc -std=c11 -Wall -Wextra -g -O2 -pthread -o "$DEMO/server" demo/server.c
note "symbols the patch replaces (T), calls (t, a static function) and updates (B):"
nm "$DEMO/server" | grep -E ' (format_reply|server_version|requests_served)$' | sed 's/^/  /'

# ---------------------------------------------------------------------------
section "Start the server"
for _ in $(seq 20); do
  port_in_use "$PORT" || break
  note "port $PORT is busy, trying $((PORT + 1))"
  PORT=$((PORT + 1))
done
printf '%s$ %s &%s\n' "$BOLD" "$DEMO/server $PORT" "$RESET"
"$DEMO/server" "$PORT" >"$DEMO/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do
  port_in_use "$PORT" && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$DEMO/server.log" >&2; die "the server exited"; }
  sleep 0.1
done
port_in_use "$PORT" || die "the server does not listen on 127.0.0.1:$PORT"
sed 's/^/  /' "$DEMO/server.log"
show_process
START_TICKS=$(start_ticks "$SERVER_PID")

# ---------------------------------------------------------------------------
section "Ask the server (unpatched)"
ask "${REQUESTS[@]}"
BEFORE=("${REPLIES[@]}")
note "the bug: the name is pasted in unescaped and unbounded, so a quote lets"
note "a client rewrite the reply, and a long name cuts off its end."

# ---------------------------------------------------------------------------
section "Build the live patch (demo/fix.c)"
run "$GRAFT" build --from-source demo/fix.c --target "$DEMO/server" -o "$DEMO/fix.graft"
run "$GRAFT" info "$DEMO/fix.graft"

# ---------------------------------------------------------------------------
section "Apply the patch to pid $SERVER_PID"
run "$GRAFT" apply "$DEMO/fix.graft" --pid "$SERVER_PID"
APPLY_OUT=$(<"$DEMO/last.out")

# ---------------------------------------------------------------------------
section "Ask the same server again (patched)"
ask "${REQUESTS[@]}"
for i in "${!REPLIES[@]}"; do
  [[ ${REPLIES[$i]} == *"live-patched by graft"* ]] ||
    die "reply $((i + 1)) does not come from the patch: ${REPLIES[$i]}"
done
[[ ${REPLIES[1]} == 'hello, "eve\" (admin) \""'* ]] || die "the quote is not escaped: ${REPLIES[1]}"
[[ ${REPLIES[2]} == *'..." (server v1, '* ]] || die "the long name is not cut: ${REPLIES[2]}"
kill -0 "$SERVER_PID" || die "the server is gone"
show_process
[[ $(start_ticks "$SERVER_PID") == "$START_TICKS" ]] || die "the server was restarted"
ok "same process (kill -0 $SERVER_PID succeeds, start time unchanged), new code"
note "the fix: quotes are escaped, the name is cut to 32 characters, and the"
note "patch counts requests in the server's own global, requests_served."

# ---------------------------------------------------------------------------
section "List the patches in pid $SERVER_PID"
run "$GRAFT" list --pid "$SERVER_PID"
PATCH_ID=$("$GRAFT" list --pid "$SERVER_PID" --json 2>/dev/null | python3 -c '
import json, sys
pid = int(sys.argv[1])
for proc in json.load(sys.stdin).get("processes", []):
    if proc.get("pid") == pid and proc.get("patches"):
        print(proc["patches"][-1]["id"])
' "$SERVER_PID" 2>/dev/null || true)
if [[ -z $PATCH_ID ]]; then # fall back to the "(id ...)" of the apply line
  PATCH_ID=$(sed -n 's/.*(id \([0-9a-zA-Z_-]*\)).*/\1/p' <<<"$APPLY_OUT" | head -n 1)
fi
[[ -n $PATCH_ID ]] || die "cannot find the id of the applied patch"
note "patch id: $PATCH_ID"

# ---------------------------------------------------------------------------
section "Revert the patch"
run "$GRAFT" revert "$PATCH_ID" --pid "$SERVER_PID"
note "asking again:"
ask "${REQUESTS[@]}"
for i in "${!REPLIES[@]}"; do
  [[ ${REPLIES[$i]} == "${BEFORE[$i]}" ]] ||
    die "reply $((i + 1)) differs from the original: ${REPLIES[$i]}"
done
kill -0 "$SERVER_PID" || die "the server is gone"
[[ $(start_ticks "$SERVER_PID") == "$START_TICKS" ]] || die "the server was restarted"
ok "original code back, same process"

# ---------------------------------------------------------------------------
section "Stop the server"
pid=$SERVER_PID
stop_server
sed 's/^/  /' "$DEMO/server.log" | tail -n +2
note "(${#REQUESTS[@]} requests x 3 rounds: the patched ones were counted by the patch)"
ok "demo done: pid $pid was patched and unpatched while it ran, with no restart"
