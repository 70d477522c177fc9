# Runs inside the guest (see livepatch.sh), as root, from /test.
fail() {
  echo "GUEST FAIL: $*"
  graft list --kernel
  exit 1
}
step() { echo "=== $*"; }
orig=$(cat /proc/cmdline)
has_module() { grep -q "^$1 " /proc/modules; }
now() { cut -d' ' -f1 /proc/uptime; }
# Starts `sleep $1` and waits until it sleeps in common_nsleep; sets
# $sleeper. It holds a transition until it ends or livepatch's fake signal
# (after 15 s) moves it out of common_nsleep.
start_sleeper() {
  sleep "$1" &
  sleeper=$!
  i=0
  while [ $i -lt 200 ]; do
    grep -q 'common_nsleep+0x' /proc/$sleeper/stack 2>/dev/null && return 0
    sleep 0.1
    i=$((i + 1))
  done
  cat /proc/$sleeper/stack
  fail "the sleeper never slept in common_nsleep"
}
stop_sleeper() {
  kill $sleeper 2>/dev/null
  wait $sleeper 2>/dev/null
}

mkdir -p /var/log/graft

step "a policy that requires signatures: unsigned, untrusted and altered modules are refused"
graft keygen -o /tmp/ops >/dev/null || fail "keygen"
graft keygen -o /tmp/other >/dev/null || fail "keygen other"
echo '{"require_signature": true, "trusted_keys": ["/tmp/ops.pub"]}' >/tmp/policy
chmod 644 /tmp/policy
graft sign cmdline_v1.ko --key /tmp/other.key -o other_v1.ko || fail "sign with the other key"
graft sign cmdline_v1.ko --key /tmp/ops.key -o signed_v1.ko || fail "sign with the trusted key"
cp signed_v1.ko altered_v1.ko
printf 'X' | dd of=altered_v1.ko bs=1 seek=2000 conv=notrunc 2>/dev/null
# refused FILE REASON: exit 3, the reason said, nothing loaded.
refused() {
  status=0
  graft apply --kernel "$1" --policy /tmp/policy >out 2>&1 || status=$?
  cat out
  [ $status = 3 ] || fail "$1: policy refusal should exit 3, not $status"
  grep -q "refused by policy: $2" out || fail "$1: not refused as $2"
  has_module cmdline_v1 && fail "$1: module loaded despite the policy"
}
refused cmdline_v1.ko unsigned
refused other_v1.ko "unknown key"
refused altered_v1.ko "bad signature"

step "run-pre check refuses a module built for other code"
if graft apply --kernel tampered.ko >out 2>&1; then fail "tampered.ko was applied"; fi
cat out
grep -q "run-pre check: cmdline_proc_show differs from the code the patch was built for" out || fail "no run-pre reason"
has_module cmdline_v1 && fail "tampered module loaded"

step "run-pre check accepts absolute addresses moved by KASLR"
graft apply --kernel quota_warning.ko 2>err || { cat err; fail "apply quota_warning"; }
cat err
grep -q "quota_send_warning at .* 3 relocated addresses" err || fail "the relocated addresses were not checked"
graft revert --kernel quota_warning || fail "revert quota_warning"
graft apply --kernel quota_warning.ko --json >out 2>err || { cat out err; fail "apply quota_warning --json"; }
cat out
grep -Eq '"kaslr_offset": -?[1-9][0-9]*,?$' out || fail "the KASLR offset is zero: the step checked no relocation"
graft revert --kernel quota_warning || fail "revert quota_warning (json)"

step "apply cmdline_v1, signed by a key the policy trusts"
graft apply --kernel signed_v1.ko --policy /tmp/policy || fail "apply cmdline_v1"
[ "$(cat /proc/cmdline)" = "graft-v1 $orig" ] || fail "v1 not visible: $(cat /proc/cmdline)"
graft apply --kernel cmdline_v1.ko >out 2>&1 && fail "applied twice"
grep -q "already applied" out || fail "second apply: $(cat out)"

step "stack cmdline_v2 on it"
graft apply --kernel cmdline_v2.ko || fail "apply cmdline_v2"
[ "$(cat /proc/cmdline)" = "graft-v2 $orig" ] || fail "v2 not visible"
graft list --kernel
[ "$(graft list --kernel | grep -c ' enabled ')" = 2 ] || fail "two patches should be listed"
graft revert --kernel cmdline_v2 || fail "revert cmdline_v2"
[ "$(cat /proc/cmdline)" = "graft-v1 $orig" ] || fail "v1 not back after reverting v2"
has_module cmdline_v2 && fail "cmdline_v2 still loaded"

step "cumulative cmdline_v3 replaces v1 and v2"
graft apply --kernel cmdline_v2.ko || fail "apply cmdline_v2 again"
graft apply --kernel cmdline_v3.ko --json >out || fail "apply cmdline_v3"
cat out
grep -q '"cmdline_v1"' out && grep -q '"cmdline_v2"' out || fail "v3 did not report replacing v1 and v2"
[ "$(cat /proc/cmdline)" = "graft-v3 $orig" ] || fail "v3 not visible"
[ "$(graft list --kernel | cut -d' ' -f1)" = cmdline_v3 ] || fail "only cmdline_v3 should be listed"
has_module cmdline_v1 && fail "replaced cmdline_v1 still loaded"
has_module cmdline_v2 && fail "replaced cmdline_v2 still loaded"
graft revert --kernel cmdline_v3 || fail "revert cmdline_v3"
[ "$(cat /proc/cmdline)" = "$orig" ] || fail "original cmdline not back"
[ -z "$(graft list --kernel)" ] || fail "patches left"

step "a task sleeping in common_nsleep holds the transition"
start_sleeper 30
t0=$(now)
graft apply --kernel nsleep.ko --report-after 1 --timeout 120 >out 2>err &
applier=$!
# graft status while the sleeper holds the transition: not all patched.
i=0
until graft status --store /tmp/no-store >status 2>&1; [ $? -eq 1 ] && grep -q "IN TRANSITION, patching" status; do
  i=$((i + 1))
  [ $i -lt 300 ] || { cat status; fail "graft status never showed nsleep in transition"; }
  sleep 0.2
done
cat status
grep -Eq "^kernel livepatch nsleep: 1 function\(s\), IN TRANSITION, patching: [1-9][0-9]* task\(s\)" status ||
  fail "graft status does not show the held transition"
wait $applier || { cat out err; fail "apply nsleep"; }
t1=$(now)
cat err out
graft status --store /tmp/no-store --json >status || { cat status; fail "graft status after the transition"; }
grep -q '"name":"nsleep"' status && grep -q '"transition":false' status || { cat status; fail "status --json: $(cat status)"; }
grep -q "pid $sleeper tid $sleeper (sleep)" err || fail "the sleeping task was not reported pending"
# graft prints each /proc/PID/stack frame indented, e.g. "      [<0>] common_nsleep+0x3d/0x50"
grep -Eq '^ +(\[<[0-9a-f]+>\] )?common_nsleep\+0x' err || fail "its stack does not show common_nsleep"
grep -q "transition completed" out || fail "transition did not complete"
echo "transition held for $(echo "$t1 - $t0" | bc 2>/dev/null || echo "$t0..$t1") s"
stop_sleeper
sleep 0.2  # runs the new common_nsleep
dmesg | grep -q "graft-nsleep: pre_patch" || fail "pre_patch callback did not run"
dmesg | grep -q "graft-nsleep: patched common_nsleep runs" || fail "the new common_nsleep did not run"
graft revert --kernel nsleep || fail "revert nsleep"
dmesg | grep -q "graft-nsleep: post_unpatch" || fail "post_unpatch callback did not run"

step "--timeout reverses a held transition"
start_sleeper 60
status=0
graft apply --kernel nsleep.ko --report-after 1 --timeout 3 >out 2>err || status=$?
cat err out
[ $status = 1 ] || fail "a timed-out apply should exit 1, not $status"
grep -q "reversing the transition" err || fail "no reversal reported"
[ -z "$(graft list --kernel)" ] || fail "the reversed patch is still listed"
has_module nsleep && fail "the reversed module is still loaded"
stop_sleeper

step "--force completes a held transition"
start_sleeper 60
graft apply --kernel nsleep.ko --report-after 1 --timeout 2 --force --json >out 2>err || { cat out err; fail "forced apply"; }
cat err out
grep -q "warning: forcing the transition of nsleep" err || fail "no warning for --force"
grep -q '"outcome": "forced"' out || fail "outcome not forced"
stop_sleeper
graft list --kernel | grep -q "^nsleep enabled" || fail "nsleep not enabled after force"
step "audit log"
cat /var/log/graft/audit.log | head -3
grep -q '"action":"apply".*"patch":"kernel:cmdline_v1".*"result":"ok".*"signer":"ops (key ' /var/log/graft/audit.log ||
  fail "no audit record of cmdline_v1 and its signer"
grep -q '"refused"' /var/log/graft/audit.log || fail "no audit record of the refusal"
grep -q '"revert"' /var/log/graft/audit.log || fail "no audit record of a revert"
echo "all kernel checks passed"
