#!/usr/bin/env bash
# A diff that changes a header: graft build --kernel --from-diff finds the C
# files including include/crypto/if_alg.h (through other headers too),
# keeps those Kbuild builds in this configuration, compiles them before and
# after, and replaces the functions that inline the changed af_alg_sndbuf,
# in module af_alg. In the guest, the reproducer shows the new code run
# (a send takes two pages, not one) and go with the revert. A change to a
# header that include/linux/kernel.h pulls in is refused before anything is
# compiled: it reaches far more objects than a live patch should rebuild.
. "$(dirname "$0")/common.sh"
SOURCE=$("$REPO_ROOT/scripts/kernel/fetch-source.sh" "$GRAFT_KERNEL_VERSION") || fail "fetch-source.sh failed"

build() {
  "$GRAFT" build --kernel --from-diff "$KTEST_DIR/diffs/$1.patch" --source "$SOURCE" --kernel-release "$RELEASE" \
    -o "$WORK/$1.ko" >"$WORK/$1.build.log" 2>&1
}

start=$SECONDS
build header_af_alg_sndbuf || { cat "$WORK/header_af_alg_sndbuf.build.log" >&2; fail "build header_af_alg_sndbuf"; }
cat "$WORK/header_af_alg_sndbuf.build.log"
echo "built header_af_alg_sndbuf.ko in $((SECONDS - start)) s"
log=$WORK/header_af_alg_sndbuf.build.log
grep -q "include/crypto/if_alg.h reaches 5 object(s) of this configuration" "$log" || fail "not the 5 objects of if_alg.h"
grep -q "compiling 5 object(s) as they are: crypto/af_alg.o, crypto/algif_aead.o" "$log" || fail "the includers were not compiled"
for f in af_alg_sendmsg af_alg_poll af_alg_wmem_wakeup; do
  grep -Eq "^  $f \(crypto/af_alg.c\): (inlined change|changed)" "$log" || fail "$f is not reported as replaced"
done
readelf -sW "$WORK/header_af_alg_sndbuf.ko" | grep -q '\.klp\.sym\.af_alg\.' || fail "no .klp.sym.af_alg.* symbol"

if build header_too_wide; then fail "a change to a header of every object was built"; fi
cat "$WORK/header_too_wide.build.log"
grep -Eq "include/linux/kstrtox.h is included by [0-9]+ C files .*graft rebuilds at most 16 objects" \
  "$WORK/header_too_wide.build.log" || fail "no reason for refusing the wide header"
grep -q "compiling" "$WORK/header_too_wide.build.log" && fail "objects were compiled for a refused header"

build_reproducers
cat >"$WORK/guest.sh" <<'T'
set -e
mkdir -p /var/log/graft
insmod /test/af_alg.ko
insmod /test/algif_skcipher.ko
expect() {  # expect fixed|bug: the patched behaviour, or the original
  out=$(/test/fix_check af_alg_sndbuf) && got=fixed || { [ $? -eq 1 ] && got=bug || got=error; }
  echo "  reproducer ($1 expected): $out"
  [ "$got" = "$1" ] || { echo "expected $1, got $got"; exit 1; }
}
expect bug
graft apply --kernel /test/header_af_alg_sndbuf.ko
graft list --kernel
expect fixed
graft revert --kernel header_af_alg_sndbuf
expect bug
echo GUEST-OK
T
MODULES=$(kernel_root "$RELEASE")/lib/modules/$RELEASE
run_guest "$WORK/guest.sh" --file "$WORK/fix_check" --file "$WORK/header_af_alg_sndbuf.ko" \
  --file "$MODULES/kernel/crypto/af_alg.ko" --file "$MODULES/kernel/crypto/algif_skcipher.ko"
echo "PASS $TEST_NAME"
