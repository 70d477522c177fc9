# Sourced inside the guest by guest_modules.sh and guest_source_modules.sh
# (from /test): what both check of an af_alg patch named $PATCH.
fail() {
  echo "GUEST FAIL: $*"
  graft list --kernel
  exit 1
}
step() { echo "=== $*"; }
expect() {  # expect fixed|bug
  out=$(/test/fix_check af_alg_assoclen) && got=fixed || { [ $? -eq 1 ] && got=bug || got=error; }
  echo "  reproducer ($1 expected): $out"
  [ "$got" = "$1" ] || fail "expected $1, got $got"
}
load_af_alg() { insmod /test/af_alg.ko && insmod /test/algif_skcipher.ko || fail "insmod"; }
unload_af_alg() { rmmod algif_skcipher && rmmod af_alg || fail "rmmod"; }
listed() {  # listed OBJECT-STATE: graft list --kernel shows it for $PATCH
  graft list --kernel >list || fail "graft list"
  cat list
  grep -q "^$PATCH enabled .*af_alg:af_alg_sendmsg.*\[af_alg=$1\]" list || fail "af_alg should be $1"
}
mkdir -p /var/log/graft
modules=/lib/modules/$(uname -r)
