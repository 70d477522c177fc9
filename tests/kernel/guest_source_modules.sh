# Runs inside the guest (see source_modules.sh), as root, from /test.
PATCH=af_alg_assoclen_src
. /test/guest_af_alg.sh

step "af_alg loaded before the hand-written patch"
load_af_alg
expect bug
if graft apply --kernel af_alg_src_tampered.ko >out 2>&1; then fail "the tampered module was applied"; fi
cat out
grep -q "run-pre check: af_alg_sendmsg (module af_alg) differs from the code the patch was built for" out ||
  fail "no run-pre reason for the loaded module"
graft apply --kernel af_alg_assoclen_src.ko 2>err || { cat err; fail "apply"; }
cat err
grep -q "run-pre check: af_alg_sendmsg \[af_alg\] at .* matches the shipped module" err || fail "not checked in memory"
listed patched
expect fixed
graft revert --kernel af_alg_assoclen_src || fail "revert"
expect bug

step "af_alg loaded after the hand-written patch"
unload_af_alg
mkdir -p $modules/kernel/crypto
cp /test/af_alg.ko $modules/kernel/crypto/af_alg.ko
graft apply --kernel af_alg_assoclen_src.ko 2>err || { cat err; fail "apply without af_alg"; }
cat err
grep -q "module af_alg is not loaded; its file matches" err || fail "the module file was not checked"
listed not-loaded
load_af_alg
listed patched
expect fixed
graft revert --kernel af_alg_assoclen_src || fail "revert"
expect bug
echo GUEST-OK
