#!/usr/bin/env bash
# A real security fix of Debian's own nginx executable, built with `graft
# build --from-diff --debian-source` and applied with --all to the master
# and worker processes of a server under HTTP load (docs/corpus.md).
#
# scripts/corpus/debian_build.sh builds nginx 1.22.1-9+deb12u9 as Debian
# does, with the series rolled back to before CVE-2026-42055.patch
# ("Upstream: limit header length for HTTP/2 and gRPC"). graft rebuilds the
# same source and must find the executable's build-id among the binaries it
# rebuilt.
#   CVE-2026-42055  a request header longer than NGX_HTTP_V2_MAX_FIELD to a
#                   grpc_pass location is encoded into the HTTP/2 request
#                   (overflowing its buffer) and sent upstream; after the
#                   fix nginx refuses it ("too long http2 header value",
#                   500) without contacting the upstream.
# nginx records its configure line, build path included: graft rebuilds it
# where Debian's buildds do (/build/reproducible-path/nginx-1.22.1, as the
# corpus build did), must reproduce the executable bit for bit, and takes
# the stripped executable's symbols from its own rebuild (no -dbgsym).
# The bug is shown on a throwaway instance (its worker's heap is corrupt
# after), the fix on the server under load: no request may fail, the
# processes stay the same, and workers a reload forks from the patched
# master carry the fix.
# ctest-labels: corpus
# ctest-timeout: 1800
source "$(dirname "$0")/common.sh"
CORPUS=$REPO_ROOT/tests/corpus
FIX=CVE-2026-42055.patch
BIG=$((2 * 1024 * 1024 + 4096))   # past NGX_HTTP_V2_MAX_FIELD (2 MiB + 126)

bash "$REPO_ROOT/scripts/corpus/debian_build.sh" nginx 1.22.1-9+deb12u9 "$FIX" ||
  fail "scripts/corpus/debian_build.sh nginx failed"
# shellcheck source=/dev/null
source "${GRAFT_CORPUS_DIR:-/var/cache/graft-corpus}/debian/nginx_1.22.1-9+deb12u9_before-${FIX%.patch}/env"
NGINX=$ROOT/usr/sbin/nginx
[[ -x $NGINX ]] || fail "no usr/sbin/nginx in $ROOT"
! LC_ALL=C readelf -SW "$NGINX" | grep -q '\.symtab' || fail "$NGINX is not stripped"

# ---------------------------------------------------------------- the build
graft_ok build --from-diff "$FIXES_DIR/$FIX" --debian-source "$TREE" --target "$NGINX" -o "$T/fix.graft" --json
json_get '[f["symbol"] for f in j["functions"]]' <"$T/graft.out" | grep -q '"ngx_http_grpc_create_request"' ||
  fail "the patch does not replace ngx_http_grpc_create_request: $(cat "$T/graft.out")"
json_get '"\n".join(j["notes"])' <"$T/graft.out" >"$T/notes"
grep -q "is Debian's build of nginx 1.22.1-9+deb12u9, reproduced exactly" "$T/notes" ||
  fail "the rebuild did not reproduce $NGINX: $(cat "$T/notes")"
grep -q "building the patched tree at /build/reproducible-path/nginx-1.22.1" "$T/graft.err" ||
  fail "graft did not build at Debian's build path: $(cat "$T/graft.err")"
log "build: $(tail -n 1 "$T/graft.err")"

# ---------------------------------------------------------------- servers
"$PYTHON" "$CORPUS/http_probe.py" upstream "$T/up.port" "$T/up.count" &
bg_track $!
wait_until 10 test -s "$T/up.port" || fail "the stand-in upstream did not start"
UP_PORT=$(cat "$T/up.port")
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_nginx() {  # NAME WORKERS: an nginx in $T/NAME, port in PORT[NAME]
  local name=$1 workers=$2 dir=$T/$1 port
  port=$(free_port)
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<CONF
user root root;
worker_processes $workers;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  large_client_header_buffers 4 4m;
  server {
    listen 127.0.0.1:$port;
    location / { return 200 "ok\n"; }
    location /grpc { grpc_pass grpc://127.0.0.1:$UP_PORT; }
  }
}
CONF
  "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/stdout" 2>&1 &
  NPID[$name]=$!
  bg_track "${NPID[$name]}"
  PORT[$name]=$port
  wait_until 20 curl -fsS "http://127.0.0.1:$port/" -o /dev/null || fail "nginx $name did not start: $(cat "$dir/error.log" "$dir/stdout")"
  log "started nginx $name: master ${NPID[$name]}, workers $(pgrep -P "${NPID[$name]}" | paste -sd' ')"
}
declare -A NPID PORT
# Workers outlive a killed master (and a live master replaces killed
# workers): note them, kill the master, then them.
stop_all_nginx() {
  local rc=$? m workers
  for m in "${NPID[@]}"; do
    workers=$(pgrep -P "$m" || true)
    kill -KILL "$m" 2>/dev/null || true
    for w in $workers; do kill -KILL "$w" 2>/dev/null || true; done
  done
  cleanup "$rc"
}
trap stop_all_nginx EXIT

up_count() { cat "$T/up.count"; }
# big NAME: the status of a request with a too long header to /grpc, and
# whether the upstream was contacted ("forwarded" / "not forwarded").
big() {
  local before status
  before=$(up_count)
  status=$("$PYTHON" "$CORPUS/http_probe.py" big "http://127.0.0.1:${PORT[$1]}/grpc" "$BIG")
  sleep 0.3
  if [[ $(up_count) -gt $before ]]; then echo "$status forwarded"; else echo "$status not forwarded"; fi
}

# ---------------------------------------------------------------- before
# On a throwaway instance: the request is encoded and sent upstream.
start_nginx throwaway 1
got=$(big throwaway)
log "before, throwaway: $got"
[[ $got == *" forwarded" && $got != *"not forwarded" ]] || fail "the unfixed nginx did not forward the request: $got"
grep -q "too long http2 header value" "$T/throwaway/error.log" && fail "the unfixed nginx refused the header"
kill "${NPID[throwaway]}"
wait_until 10 bash -c "! kill -0 ${NPID[throwaway]} 2>/dev/null" || fail "the throwaway nginx did not stop"

# ---------------------------------------------------------------- apply under load
start_nginx server 2
MASTER=${NPID[server]}
# Workers' titles do not name the binary: the master and its children.
server_pids() { { echo "$MASTER"; pgrep -P "$MASTER"; } | sort -n; }
"$PYTHON" "$CORPUS/http_probe.py" load "http://127.0.0.1:${PORT[server]}/" "$T/stop" "$T/load.stats" 4 &
LOAD=$!
bg_track $LOAD
sleep 1
graft apply "$T/fix.graft" --all --timeout 20 --json || true
want=$(server_pids | paste -sd, | sed 's/,/, /g; s/^/[/; s/$/]/')
got=$(json_get 'sorted(r["pid"] for r in j["results"] if r["ok"])' <"$T/graft.out")
[[ $got == "$want" ]] || fail "apply --all patched $got of $want: $(json_get '[r["error"] for r in j["results"]]' <"$T/graft.out")"
PATCH_ID=$(json_get 'j["patch_id"]' <"$T/graft.out")
sleep 1

# ---------------------------------------------------------------- after
got=$(big server)
log "after: $got"
[[ $got == "500 not forwarded" ]] || fail "the patched nginx answered $got"
grep -q "too long http2 header value" "$T/server/error.log" || fail "no \"too long http2 header value\" in the error log"
stats=$(cat "$T/load.stats")
log "load while patched: $stats"
[[ $stats =~ ^ok\ ([0-9]+)\ failed\ 0\ reconnects\ 0$ ]] || fail "requests failed while the patch was applied: $stats"
# A reload forks new workers from the patched master (the old ones close
# their kept-alive connections: the client reconnects).
kill -HUP "$MASTER"
sleep 2
workers=$(pgrep -P "$MASTER" | paste -sd' ')
log "after a reload: workers $workers"
for w in $workers; do [[ $(patch_count "$w") -eq 1 ]] || fail "new worker $w does not carry the patch"; done
got=$(big server)
[[ $got == "500 not forwarded" ]] || fail "a reloaded worker answered $got"
touch "$T/stop"
wait "$LOAD" || true
stats=$(cat "$T/load.stats")
log "load: $stats"
[[ $stats =~ ^ok\ ([0-9]+)\ failed\ 0\  && ${BASH_REMATCH[1]} -gt 100 ]] || fail "requests failed under load: $stats"
kill -0 "$MASTER" || fail "the master is gone"
! grep -E "exited on signal|worker process [0-9]+ exited" "$T/server/error.log" ||
  fail "a worker died: $(grep -E "exited" "$T/server/error.log")"
graft_ok revert "$PATCH_ID" --all --json
log "OK"
