# Runs inside the guest (see modules.sh), as root, from /test.
PATCH=af_alg_assoclen
. /test/guest_af_alg.sh
has_module() { grep -q "^$1 " /proc/modules; }

step "af_alg loaded before the patch"
load_af_alg
expect bug
if graft apply --kernel af_alg_tampered.ko >out 2>&1; then fail "the tampered module was applied"; fi
cat out
grep -q "run-pre check: af_alg_sendmsg (module af_alg) differs from the code the patch was built for" out ||
  fail "no run-pre reason for the loaded module"
graft apply --kernel af_alg_assoclen.ko 2>err || { cat err; fail "apply"; }
cat err
grep -q "run-pre check: af_alg_sendmsg \[af_alg\] at .* matches the shipped module" err || fail "not checked in memory"
listed patched
expect fixed
graft revert --kernel af_alg_assoclen || fail "revert"
expect bug

step "af_alg loaded after the patch"
unload_af_alg
mkdir -p $modules/kernel/crypto
cp /test/af_alg.ko $modules/kernel/crypto/af_alg.ko
if graft apply --kernel af_alg_tampered.ko >out 2>&1; then fail "the tampered module was applied"; fi
cat out
grep -q "run-pre check: af_alg_sendmsg (module af_alg) in $modules/kernel/crypto/af_alg.ko is not the code" out ||
  fail "no run-pre reason for the module file"
graft apply --kernel af_alg_assoclen.ko 2>err || { cat err; fail "apply without af_alg"; }
cat err
grep -q "module af_alg is not loaded; its file matches" err || fail "the module file was not checked"
listed not-loaded
load_af_alg
dmesg | grep -i "livepatch.*af_alg" | tail -3
listed patched
expect fixed
step "af_alg unloaded while patched, then loaded again"
unload_af_alg
listed not-loaded
# Linux 6.1 leaves the patch's relocations into the module that went
# filled, and its x86 relocation code refuses to write them again: the
# module cannot load while the patch is applied (Linux 6.3 clears them when
# the module goes). Revert, and the module loads.
if insmod /test/af_alg.ko 2>err; then
  echo "this kernel reloads a patched module"
  insmod /test/algif_skcipher.ko || fail "insmod algif_skcipher"
  listed patched
  expect fixed
  graft revert --kernel af_alg_assoclen || fail "revert"
else
  cat err
  dmesg | grep "Skipping invalid relocation target" | tail -1
  dmesg | grep -q "Skipping invalid relocation target" || fail "af_alg failed to load for another reason"
  graft revert --kernel af_alg_assoclen || fail "revert"
  load_af_alg
fi
expect bug
has_module af_alg_assoclen && fail "the patch module is still loaded"
n=$(grep -c '"result":"ok"' /var/log/graft/audit.log)
[ "$n" -eq 4 ] || fail "expected 4 audit records of applies and reverts, found $n"
echo GUEST-OK
