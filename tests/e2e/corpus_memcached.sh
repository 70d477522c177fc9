#!/usr/bin/env bash
# Real security fixes, built from Debian's patches by `graft build
# --from-diff`, applied live to Debian's memcached 1.6.18 under load.
#
# One build of the tree before the fixes (scripts/corpus/prepare.sh; see
# docs/corpus.md) runs twice, 4 worker threads each:
#   proxy  the proxy enabled (Lua routes), a tagged listener whose `get'
#          route answers with the key it parsed, and a plain ASCII listener;
#   sasl   SASL with a password database (memcached refuses SASL and the
#          proxy together), plus an ASCII listener for the load.
# While mcload (tests/corpus/mcload.c) sends thousands of checked get/set per
# second to both, each fix of the series is built from its diff and applied
# to both processes:
#   0008 CVE-2026-47783/47784  SASL password file: a second line of a user
#                              is never reached before, accepted after;
#   0009 CVE-2023-46852        `get' + 400 spaces: kills an unfixed server
#                              (shown on a throwaway third instance), answers
#                              "malformed request" after;
#   CVE-2023-46853             adds a field to a struct: --from-diff must
#                              refuse it and say why; the patch-author version
#                              with a shadow variable (corpus/memcached-CVE-
#                              2023-46853.c) is applied instead.
# At the end: no failed, wrong or lost request, the same two PIDs, every key
# stored before the first patch still readable, and each fixed behaviour.
# ctest-labels: corpus
# ctest-timeout: 1200
GRAFT_BIN=${1:-${GRAFT:-$(dirname "$0")/../../build/graft}}
if [[ -x $GRAFT_BIN ]] && ! "$GRAFT_BIN" build --help 2>&1 | grep -q -- '--from-diff'; then
  echo "SKIP corpus_memcached: graft build has no --from-diff yet"
  exit 77
fi
source "$(dirname "$0")/common.sh"
CORPUS=$REPO_ROOT/tests/corpus

bash "$REPO_ROOT/scripts/corpus/prepare.sh" memcached || fail "scripts/corpus/prepare.sh memcached failed"
# shellcheck source=/dev/null
source "${GRAFT_CORPUS_DIR:-/var/cache/graft-corpus}/memcached/env"
log "memcached $VERSION, tree $TREE"

gcc -O2 -pthread "$CORPUS/mcload.c" -o "$T/mcload" || fail "cannot build mcload"
cp "$ARTIFACT" "$T/memcached"   # the same file (same build-id), run from $T
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mcask() { "$PYTHON" "$CORPUS/mcask.py" "$@"; }

cat >"$T/routes.lua" <<'LUA'
-- Only the listener tagged "echo" has a route: `get' answers with the key
-- the proxy parsed. Everything else goes to memcached's own cache.
function mcp_config_pools(old)
  return {}
end
function mcp_config_routes(pools)
  mcp.attach(mcp.CMD_GET, function(r)
    return "SERVER_ERROR key [" .. r:key() .. "]\r\n"
  end, "echo")
end
LUA
host=$(hostname)
mkdir -p "$T/sasl"
echo "mech_list: plain" >"$T/sasl/memcached.conf"
printf 'alice@%s:old\nalice@%s:new\nbob@%s:pw\n' "$host" "$host" "$host" >"$T/pwdb"
chmod -R a+rX "$T"

start_memcached() {  # NAME LISTENERS [memcached options...]
  local name=$1 listen=$2
  shift 2
  "$T/memcached" -u nobody -t 4 -U 0 -m 256 -l "$listen" "$@" >"$T/$name.log" 2>&1 &
  TPID[$name]=$!
  log "started memcached $name: pid ${TPID[$name]} ($listen)"
}
wait_port() { wait_until 20 mcask "$1" 'version\r\n' >/dev/null || fail "memcached on port $1 does not answer"; }

P_PROXY=$(free_port) P_ECHO=$(free_port) P_ASCII=$(free_port)
start_memcached proxy "127.0.0.1:$P_PROXY,tag[echo]:127.0.0.1:$P_ECHO,proto[ascii]:127.0.0.1:$P_ASCII" \
  -o proxy_config="$T/routes.lua"
S_BIN=$(free_port) S_ASCII=$(free_port)
SASL_CONF_PATH=$T/sasl MEMCACHED_SASL_PWDB=$T/pwdb \
  start_memcached sasl "127.0.0.1:$S_BIN,proto[ascii]:127.0.0.1:$S_ASCII" -S
wait_port "$P_ASCII"
wait_port "$S_ASCII"
PROXY_PID=${TPID[proxy]} SASL_PID=${TPID[sasl]}
threads() { ls "/proc/$1/task" | wc -l; }
log "proxy: $(threads "$PROXY_PID") threads, sasl: $(threads "$SASL_PID") threads"

# ---------------------------------------------------------------- the bugs, before
long_get="get$(printf '%400s' '')k1 k2\r\n"
[[ $(mcask "$P_ECHO" 'get abc\n') == "SERVER_ERROR key [ab]" ]] ||
  fail "CVE-2023-46853 not visible before the fix: $(mcask "$P_ECHO" 'get abc\n')"
log "before: 'get abc\\n' is parsed as key 'ab' (CVE-2023-46853)"
[[ $(mcask --sasl "$S_BIN" alice new) == 32 && $(mcask --sasl "$S_BIN" bob pw) == 0 ]] ||
  fail "SASL before the fix: alice/new $(mcask --sasl "$S_BIN" alice new), bob/pw $(mcask --sasl "$S_BIN" bob pw)"
log "before: alice's second password line is never reached (0008)"
# CVE-2023-46852 kills the server: shown on a throwaway instance.
X_PROXY=$(free_port) X_ECHO=$(free_port)
start_memcached crash "127.0.0.1:$X_PROXY,tag[echo]:127.0.0.1:$X_ECHO" -o proxy_config="$T/routes.lua"
wait_port "$X_PROXY"
mcask "$X_ECHO" "$long_get" >"$T/crash.out" || true
wait_until 10 bash -c "! kill -0 ${TPID[crash]} 2>/dev/null" || fail "the unfixed memcached survived CVE-2023-46852"
grep -q 'buffer overflow detected' "$T/crash.log" || fail "the throwaway memcached died without the overflow message"
log "before: '$(printf '%.12s' "$long_get")...' kills memcached: $(grep -o 'buffer overflow detected' "$T/crash.log") (CVE-2023-46852)"
unset "TPID[crash]"

# ---------------------------------------------------------------- load
"$T/mcload" fill --port "$P_ASCII" --keys 2000 --prefix keep_ >"$T/fill1" || fail "fill: $(cat "$T/fill1")"
"$T/mcload" fill --port "$S_ASCII" --keys 2000 --prefix keep_ >"$T/fill2" || fail "fill: $(cat "$T/fill2")"
"$T/mcload" run --port "$P_PROXY,$P_ASCII" --conns 12 --rate 3000 --duration 900 --stop-file "$T/stop" \
  >"$T/load-proxy.json" 2>"$T/load-proxy.err" &
LOAD1=$!
bg_track $LOAD1
"$T/mcload" run --port "$S_ASCII" --conns 4 --rate 1000 --duration 900 --stop-file "$T/stop" \
  >"$T/load-sasl.json" 2>"$T/load-sasl.err" &
LOAD2=$!
bg_track $LOAD2
wait_until 30 grep -q 't=2s' "$T/load-proxy.err" || fail "the load did not start: $(cat "$T/load-proxy.err")"
log "load: $(tail -n1 "$T/load-proxy.err")"

# ---------------------------------------------------------------- the fixes, from their diffs
build_from_diff() {  # FIX OUTPUT: graft build --from-diff
  graft build --from-diff "$FIXES_DIR/$1" --clean "make clean" --source "$TREE" --target "$T/memcached" \
    --build "$BUILD" -o "$2"
}
apply_both() {  # PATCH
  apply_ok "$1" "$PROXY_PID" --timeout 20
  apply_ok "$1" "$SASL_PID" --timeout 20
}

build_from_diff 0008-CVE-2026-47783-CVE-2026-47784.patch "$T/0008.graft" || fail "--from-diff failed for 0008"
grep -q 'sasl_server_userdb_checkpass' "$T/graft.out" "$T/graft.err" ||
  fail "the 0008 patch does not replace sasl_server_userdb_checkpass"
apply_both "$T/0008.graft"

build_from_diff 0009-CVE-2023-46852.patch "$T/0009.graft" || fail "--from-diff failed for 0009"
grep -q 'proxy_process_command' "$T/graft.out" "$T/graft.err" ||
  fail "the 0009 patch does not replace proxy_process_command"
apply_both "$T/0009.graft"

# A new field in the middle of struct mcp_parser_s: never applied as is.
if build_from_diff CVE-2023-46853.patch "$T/46853.graft"; then
  fail "--from-diff built CVE-2023-46853 (a new field in struct mcp_parser_s) as a plain patch"
fi
grep -qE 'mcp_parser_s|mcp_parser_t|endlen' "$T/graft.out" "$T/graft.err" ||
  fail "--from-diff refused CVE-2023-46853 without naming the struct or the field"
log "CVE-2023-46853 refused: $(grep -hE 'mcp_parser|endlen' "$T/graft.out" "$T/graft.err" | head -n1)"
# The patch author's version keeps the layout (endlen in a shadow variable).
build_patch "$E2E_DIR/corpus/memcached-CVE-2023-46853.c" "$T/memcached" "$T/46853-author.graft" \
  -- -DHAVE_CONFIG_H -I"$TREE" -I"$TREE/vendor/lua/src"
apply_ok "$T/46853-author.graft" "$PROXY_PID" --timeout 20

sleep 2   # some load on the patched code
touch "$T/stop"
wait_bounded $LOAD1 30 || fail "load on the proxy instance: $(cat "$T/load-proxy.json")"
wait_bounded $LOAD2 30 || fail "load on the sasl instance: $(cat "$T/load-sasl.json")"
for f in load-proxy load-sasl; do
  log "$f: $(cat "$T/$f.json")"
  [[ $(json_get 'j["failed"] + j["wrong"] + j["lost"]' <"$T/$f.json") == 0 ]] || fail "$f: requests failed"
done
[[ $(json_get 'int(j["rps"] >= 2000)' <"$T/load-proxy.json") == 1 ]] || fail "the proxy instance saw fewer than 2000 requests/s"

# ---------------------------------------------------------------- after
[[ ${TPID[proxy]} == "$PROXY_PID" ]] && kill -0 "$PROXY_PID" && kill -0 "$SASL_PID" || fail "a memcached is gone"
"$T/mcload" check --port "$P_ASCII" --keys 2000 --prefix keep_ >"$T/check1" || fail "cache contents: $(cat "$T/check1")"
"$T/mcload" check --port "$S_ASCII" --keys 2000 --prefix keep_ >"$T/check2" || fail "cache contents: $(cat "$T/check2")"
log "2000 keys stored before the patches, all read back from both: $(cat "$T/check1")"
[[ $(mcask --sasl "$S_BIN" alice new) == 0 && $(mcask --sasl "$S_BIN" bob pw) == 0 &&
   $(mcask --sasl "$S_BIN" bob nope) == 32 ]] || fail "0008 not in effect"
log "after: alice/new accepted, bob/nope refused (0008)"
got=$(mcask "$P_ECHO" "$long_get" | paste -sd'|')
[[ $got == "SERVER_ERROR malformed request|SERVER_ERROR malformed request|END" ]] ||
  fail "CVE-2023-46852 not fixed: $got"
kill -0 "$PROXY_PID" || fail "CVE-2023-46852 still kills memcached"
log "after: '$(printf '%.12s' "$long_get")...' answers $got (CVE-2023-46852)"
[[ $(mcask "$P_ECHO" 'get abc\n') == "SERVER_ERROR key [abc]" ]] ||
  fail "CVE-2023-46853 not fixed: $(mcask "$P_ECHO" 'get abc\n')"
log "after: 'get abc\\n' is parsed as key 'abc' (CVE-2023-46853)"
graft_ok list --pid "$PROXY_PID"
[[ $(patch_count "$PROXY_PID") -eq 3 && $(patch_count "$SASL_PID") -eq 2 ]] ||
  fail "graft list: $(patch_count "$PROXY_PID") patches in proxy, $(patch_count "$SASL_PID") in sasl"
