#!/usr/bin/env bash
# Signed patches and the policy. `graft keygen' makes two key pairs (ops,
# mallory); `graft sign' signs; `graft info' shows the signer. A policy that
# requires a signature from ops refuses, with exit status 3 and the reason,
# and without touching the process: an unsigned patch, one signed by
# mallory (unknown key), one whose signature was tampered with (bad
# signature), one changed after signing; it applies the patch signed by
# ops. Also: a secret key readable by others is refused by `sign', a policy
# with an unknown setting or writable by others is an error, and without
# a policy a bad signature is still refused. Every apply, revert and
# refusal is in the policy's audit log, one JSON line each.
source "$(dirname "$0")/common.sh"

build_basic_with_compute_fix
start_target b "$T/basic"
pid=${TPID[b]}
bytes=$(ask b "bytes compute")

graft_ok keygen -o "$T/ops" --name "ops team"
[[ $(stat -c %a "$T/ops.key") == 600 ]] || fail "the secret key is not mode 600"
graft_ok keygen -o "$T/mallory"
graft_fails 2 keygen -o "$T/ops"  # never overwrites a key
cp "$T/fix.graft" "$T/unsigned.graft"
graft_ok sign "$T/fix.graft" --key "$T/ops.key" -o "$T/ops.graft"
graft_ok sign "$T/fix.graft" --key "$T/mallory.key" -o "$T/mallory.graft"

# Signing keeps the patch id; info shows the signer.
graft_ok info "$T/unsigned.graft" --json
id=$(json_get 'j["id"]' <"$T/graft.out")
[[ $(json_get 'j["signature"]' <"$T/graft.out") == null ]] || fail "an unsigned patch shows a signature"
graft_ok info "$T/ops.graft" --json
[[ $(json_get 'j["id"]' <"$T/graft.out") == "$id" ]] || fail "signing changed the patch id"
[[ $(json_get 'j["signature"]["signer"]' <"$T/graft.out") == "ops team" ]] || fail "info: wrong signer"
[[ $(json_get 'j["signature"]["valid"]' <"$T/graft.out") == true ]] || fail "info: signature not valid"
graft_ok info "$T/ops.graft"
grep -q '^signature ops team (key [0-9a-f]*): valid' "$T/graft.out" || fail "info does not show the signer"

# A signature whose bytes were flipped, and a file changed after signing
# (its own checksum recomputed, so only the signature can tell).
"$PYTHON" - "$T/ops.graft" "$T/tampered-sig.graft" "$T/tampered-body.graft" <<'PY'
import hashlib, struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
m, i = struct.unpack_from("<IQ", data, 12)
end = 56 + m + i
sig = bytearray(data); sig[end + 48] ^= 1          # first byte of the signature
open(sys.argv[2], "wb").write(sig)
body = bytearray(data); body[56 + m + 1] ^= 0xff   # a byte of the code
body[24:56] = hashlib.sha256(bytes(body[56:end])).digest()
open(sys.argv[3], "wb").write(body)
PY

# The secret key must be private.
cp "$T/ops.key" "$T/open.key"
chmod 644 "$T/open.key"
graft_fails 2 sign "$T/fix.graft" --key "$T/open.key" -o "$T/x.graft"
[[ $GRAFT_ERROR == *"accessible to other users"* ]] || fail "unexpected error: $GRAFT_ERROR"

cat >"$T/policy" <<JSON
{"require_signature": true, "trusted_keys": ["$T/ops.pub"], "audit_log": "$T/audit.log"}
JSON
chmod 644 "$T/policy"
# refused HOW FILE REASON: exit 3, the reason, the process untouched.
refused() {
  graft_fails 3 apply "$2" --pid "$pid" --policy "$T/policy"
  [[ $GRAFT_ERROR == *"refused by policy: $3"* ]] || fail "$1: unexpected refusal: $GRAFT_ERROR"
  assert_untouched "$pid"
  [[ $(ask b "bytes compute") == "$bytes" ]] || fail "$1: the bytes of compute changed"
}
refused unsigned "$T/unsigned.graft" "unsigned"
refused mallory "$T/mallory.graft" "unknown key"
refused tampered-signature "$T/tampered-sig.graft" "bad signature"
refused tampered-body "$T/tampered-body.graft" "bad signature"
# The environment names the policy too; --json says why.
GRAFT_POLICY=$T/policy graft_fails 3 apply "$T/unsigned.graft" --pid "$pid" --json
[[ $(json_get 'j["refused"]' <"$T/graft.out") == unsigned* ]] || fail "--json: no refusal reason"

# Without a policy, a bad signature is still refused.
echo '{}' >"$T/empty-policy"
graft_fails 3 apply "$T/tampered-sig.graft" --pid "$pid" --policy "$T/empty-policy"
[[ $GRAFT_ERROR == *"bad signature"* ]] || fail "unexpected error: $GRAFT_ERROR"

# Broken policies are errors, never silently weaker.
echo '{"require_signatures": true}' >"$T/typo-policy"
graft_fails 2 apply "$T/ops.graft" --pid "$pid" --policy "$T/typo-policy"
[[ $GRAFT_ERROR == *"unknown setting"* ]] || fail "unexpected error: $GRAFT_ERROR"
cp "$T/policy" "$T/open-policy"
chmod 666 "$T/open-policy"
graft_fails 2 apply "$T/ops.graft" --pid "$pid" --policy "$T/open-policy"
[[ $GRAFT_ERROR == *"writable by group or others"* ]] || fail "unexpected error: $GRAFT_ERROR"
assert_untouched "$pid"

# The patch signed by ops applies; revert is audited as well.
SUDO_USER=alice graft_ok apply "$T/ops.graft" --pid "$pid" --policy "$T/policy"
[[ $(ask b call) == "600 "* ]] || fail "the signed patch does not work"
graft_ok revert "$id" --pid "$pid" --policy "$T/policy"
[[ $(ask b call) == "7 "* ]] || fail "the revert did not work"

# The audit log: one JSON line per event, in order.
"$PYTHON" - "$T/audit.log" "$pid" "$id" "$(readlink -f "$T/basic")" <<'PY' || fail "audit log check failed"
import json, sys
path, pid, pid_id, exe = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
events = [json.loads(l) for l in open(path)]
got = [(e["action"], e["result"], (e["reason"] or "").split(":")[0]) for e in events]
want = [("apply", "refused", "unsigned"), ("apply", "refused", "unknown key"),
        ("apply", "refused", "bad signature"), ("apply", "refused", "bad signature"),
        ("apply", "refused", "unsigned"), ("apply", "ok", ""), ("revert", "ok", "")]
assert got == want, f"events {got}"
for e in events:
    assert e["pid"] == pid and e["uid"] == 0 and e["user"] == "root", e
    assert e["graft_pid"] > 0 and e["time"].endswith("Z"), e
ok = events[5]
assert ok["sudo_user"] == "alice" and ok["signer"].startswith("ops team (key "), ok
assert ok["patch_id"] == pid_id and len(ok["sha256"]) == 64 and ok["sha256"].startswith(pid_id), ok
assert ok["exe"] == exe, (ok["exe"], exe)
assert events[6]["patch_id"] == pid_id and events[6]["sha256"] == ok["sha256"], events[6]
assert events[1]["signer"].startswith("mallory (key "), events[1]
print(f"audit log: {len(events)} events as expected")
PY
