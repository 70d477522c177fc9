#!/usr/bin/env bash
# Patching a loadable module (docs/kernel.md, "Patching modules"): a real fix
# to module af_alg (crypto/af_alg.c), taken unchanged from the difference
# between linux 6.1.170 and 6.1.176, built with graft build --kernel
# --from-diff against Debian's 6.1.170 source; a diff that makes af_alg
# refer to a static of another module (algif_skcipher) is refused with the
# reason. In the guest (guest_modules.sh), with the shipped af_alg.ko and
# algif_skcipher.ko: the reproducer shows the bug, the fix applied to the
# loaded module removes it, revert brings it back; applied while af_alg is
# not loaded, the fix waits (graft list: not-loaded) and livepatch patches
# af_alg when it loads, again after an unload and reload; the run-pre check
# refuses a module whose recorded af_alg code differs in one byte, loaded or
# compared with the module's file.
. "$(dirname "$0")/common.sh"
SOURCE=$("$REPO_ROOT/scripts/kernel/fetch-source.sh" "$GRAFT_KERNEL_VERSION") || fail "fetch-source.sh failed"
MODULES=$(kernel_root "$RELEASE")/lib/modules/$RELEASE

# build NAME DIFF: DIFF into $WORK/NAME.ko, its output in $WORK/NAME.build.log.
build() {
  "$GRAFT" build --kernel --from-diff "$2" --source "$SOURCE" --kernel-release "$RELEASE" \
    -o "$WORK/$1.ko" >"$WORK/$1.build.log" 2>&1
}

start=$SECONDS
build af_alg_assoclen "$KTEST_DIR/diffs/6.1.176/af_alg_assoclen.patch" ||
  { cat "$WORK/af_alg_assoclen.build.log" >&2; fail "build af_alg_assoclen"; }
cat "$WORK/af_alg_assoclen.build.log"
echo "built af_alg_assoclen.ko in $((SECONDS - start)) s"
grep -q "crypto/af_alg.o is part of module af_alg (kernel/crypto/af_alg.ko)" "$WORK/af_alg_assoclen.build.log" ||
  fail "af_alg.o was not found to be part of module af_alg"
grep -Eq "^  af_alg_sendmsg \(crypto/af_alg.c\): (changed|inlined change)" "$WORK/af_alg_assoclen.build.log" ||
  fail "af_alg_sendmsg is not reported as replaced"
# The module's own symbols go through livepatch, in af_alg's object.
readelf -SW "$WORK/af_alg_assoclen.ko" | grep -q '\.klp\.rela\.af_alg\.' || fail "no .klp.rela.af_alg.* section"
readelf -sW "$WORK/af_alg_assoclen.ko" | grep -q '\.klp\.sym\.af_alg\.' || fail "no .klp.sym.af_alg.* symbol"
# No dependency on af_alg: the patch must load while af_alg is not loaded.
depends=$(strings "$WORK/af_alg_assoclen.ko" | grep '^depends=' || true)
[[ $depends != *af_alg* ]] || fail "the patch depends on module af_alg ($depends)"

if build other_static "$KTEST_DIR/diffs/module_other_static.patch"; then fail "a reference to another module's static was built"; fi
cat "$WORK/other_static.build.log"
grep -q "the patch refers to algif_skcipher_ops, a symbol of module algif_skcipher that it does not export" \
  "$WORK/other_static.build.log" || fail "no reason for the refusal of another module's static"
[[ ! -e $WORK/other_static.ko ]] || fail "a refused build wrote a module"

# The run-pre check's byte comparison: the recorded af_alg_sendmsg differs
# in its 6th byte (after the masked ftrace site).
tamper_manifest "$WORK/af_alg_assoclen.ko" "$WORK/af_alg_tampered.ko"

build_reproducers

run_guest "$KTEST_DIR/guest_modules.sh" \
  --file "$WORK/fix_check" --file "$WORK/af_alg_assoclen.ko" --file "$WORK/af_alg_tampered.ko" \
  --file "$MODULES/kernel/crypto/af_alg.ko" --file "$MODULES/kernel/crypto/algif_skcipher.ko" \
  --file "$KTEST_DIR/guest_af_alg.sh"
echo "PASS $TEST_NAME"
