#!/usr/bin/env bash
# A real fix that changes a struct, applied live to a real server:
# memcached 1.6.18 (Debian 12's source, proxy enabled) without
# CVE-2023-46853.patch, which adds `endlen' to the proxy's request parser.
# The live patch (corpus/memcached-CVE-2023-46853.c) keeps `endlen' in a
# shadow variable. Checked: the bug shows before (a request ending in a bare
# "\n" loses its last character: "mg foo\n" is parsed as key "fo"); the fix
# works after; 8 clients see no wrong answer while the patch is applied,
# reverted and applied again; the revert brings the bug back.
#
# The unfixed memcached (Debian's tree before its first security fix, proxy
# enabled) comes from scripts/corpus/prepare.sh, built once (about 2
# minutes) and cached for every corpus test.
# ctest-labels: corpus
# ctest-timeout: 900
source "$(dirname "$0")/common.sh"

"$REPO_ROOT/scripts/corpus/prepare.sh" memcached || fail "cannot prepare Debian's memcached"
# shellcheck disable=SC1091
source "${GRAFT_CORPUS_DIR:-/var/cache/graft-corpus}/memcached/env"
SRC=$TREE
grep -q 'uint32_t endlen' "$SRC/proxy.h" && fail "$SRC has the fix already"
[[ -x $ARTIFACT ]] || fail "no memcached built in $SRC"

build_patch "$E2E_DIR/corpus/memcached-CVE-2023-46853.c" "$ARTIFACT" "$T/fix.graft" \
  -- -DHAVE_CONFIG_H -I"$SRC" -I"$SRC/vendor/lua/src"

PORT=$((20000 + RANDOM % 20000))
"$ARTIFACT" -l 127.0.0.1 -p $PORT -U 0 -t 4 -u nobody \
  -o proxy_config="$E2E_DIR/corpus/memcached-proxy-routes.lua" >"$T/memcached.log" 2>&1 &
MC=$!
bg_track $MC
# ask_mc REQUEST...: one answer line per request (escapes like \n allowed).
ask_mc() {
  "$PYTHON" - "$PORT" "$@" <<'PY'
import socket, sys, time
for attempt in range(100):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); break
    except OSError:
        time.sleep(0.1)
f = s.makefile("rb")
for req in sys.argv[2:]:
    s.sendall(req.encode().decode("unicode_escape").encode())
    print(f.readline().decode().rstrip("\r\n"))
PY
}
[[ $(ask_mc 'mg foo v\r\n') == "HD k=foo v=true" ]] || fail "the proxy does not answer as configured"
[[ $(ask_mc 'mg foo\n') == "HD k=fo v=false" ]] || fail "the unfixed memcached does not show the bug"
log "unfixed: 'mg foo\\n' is parsed with key 'fo'"

# 8 clients, each request checked, while the patch goes in, out and in.
"$PYTHON" - "$PORT" "$T/stop" 8 >"$T/load.out" 2>&1 <<'PY' &
import socket, sys, threading, os
port, stop, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
counts, bad = [0] * n, [0] * n
def client(i):
    s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb"); k = 0
    while not os.path.exists(stop):
        key = "k%d_%d" % (i, k % 1000)
        s.sendall(("mg %s v\r\n" % key).encode())
        if f.readline().decode() != "HD k=%s v=true\r\n" % key: bad[i] += 1
        k += 1
    counts[i] = k
ts = [threading.Thread(target=client, args=(i,)) for i in range(n)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sum(counts), sum(bad))
PY
LOAD=$!
bg_track $LOAD
sleep 0.5
apply_ok "$T/fix.graft" $MC
grep -q 'graft runtime injected' "$T/graft.out" || fail "no runtime injected into memcached"
[[ $(ask_mc 'mg foo\n' 'mg foo v\n' 'mg foo t v\n') == $'HD k=foo v=false\nHD k=foo v=true\nHD k=foo v=true' ]] ||
  fail "the live fix does not work: $(ask_mc 'mg foo\n' 'mg foo v\n')"
graft_ok revert fix --pid $MC
[[ $(ask_mc 'mg foo\n') == "HD k=fo v=false" ]] || fail "after the revert the original parser should be back"
apply_ok "$T/fix.graft" $MC
[[ $(ask_mc 'mg foo\n') == "HD k=foo v=false" ]] || fail "the fix does not work when applied again"
touch "$T/stop"
wait_bounded $LOAD 20 || fail "the load clients failed: $(cat "$T/load.out")"
read -r requests wrong <"$T/load.out"
[[ $wrong -eq 0 && $requests -gt 100 ]] || fail "load: $requests requests, $wrong wrong answers"
log "8 clients: $requests requests through apply, revert, apply; $wrong wrong"
kill -0 $MC || fail "memcached died"
