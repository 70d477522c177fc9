#!/usr/bin/env bash
# The audit trail reaches syslog: ident "graft", facility authpriv. The
# test runs graft in a private mount namespace whose /dev is a fresh tmpfs
# with a syslog socket of its own at /dev/log (the machine's logging is not
# touched), and reads what graft sent: a refusal (warning) and an apply
# (notice), each with the pid, the patch's id and SHA-256, the user and the
# reason.
source "$(dirname "$0")/common.sh"

command -v unshare >/dev/null || fail "unshare (util-linux) is not installed"
build_basic_with_compute_fix
start_target b "$T/basic"
pid=${TPID[b]}
graft_ok info "$T/fix.graft" --json
id=$(json_get 'j["id"]' <"$T/graft.out")
echo '{"require_signature": true, "trusted_keys": ["graft-ed25519 '"$(printf '%064d' 0)"' nobody"], "audit_log": ""}' \
  >"$T/strict-policy"
echo '{"audit_log": ""}' >"$T/open-policy"

unshare --mount --propagation private bash -c '
  set -e
  mount -t tmpfs graft-test-dev /dev
  "$1" - /dev/log "$2/syslog.txt" 2 <<"PY" &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
with open(sys.argv[2] + ".ready", "w"):
    pass
with open(sys.argv[2], "w") as out:
    for _ in range(int(sys.argv[3])):
        out.write(s.recv(65536).decode(errors="replace") + "\n")
        out.flush()
PY
  listener=$!
  for _ in $(seq 100); do [[ -e $2/syslog.txt.ready ]] && break; sleep 0.05; done
  rc=0
  "$3" apply "$2/fix.graft" --pid "$4" --policy "$2/strict-policy" >/dev/null 2>&1 || rc=$?
  [[ $rc -eq 3 ]] || { echo "strict policy: exit $rc, expected 3"; exit 1; }
  SUDO_USER=alice "$3" apply "$2/fix.graft" --pid "$4" --policy "$2/open-policy" >/dev/null
  wait $listener
' _ "$PYTHON" "$T" "$GRAFT" "$pid" || fail "graft in the private namespace failed"

log "syslog received:"
sed 's/^/    | /' "$T/syslog.txt"
# <PRI>: facility authpriv (10) * 8 + severity warning (4) or notice (5).
grep -q "^<84>.*graft\[[0-9]*\]: apply refused: pid=$pid .*id=$id .*uid=0 user=root .*reason=unsigned" "$T/syslog.txt" ||
  fail "no authpriv.warning line for the refusal"
grep -q "^<85>.*graft\[[0-9]*\]: apply ok: pid=$pid exe=$(readlink -f "$T/basic") patch=fix id=$id sha256=$id[0-9a-f]* .*sudo_user=alice" "$T/syslog.txt" ||
  fail "no authpriv.notice line for the apply"
[[ $(ask b call) == "600 "* ]] || fail "the patch was not applied"
