#!/usr/bin/env bash
# Hand-written replacements of module functions (docs/kernel.md, "Patching
# modules"): tests/kernel/patches/af_alg_assoclen_src.c replaces
# af_alg_sendmsg of module af_alg with GRAFT_REPLACE_IN, the AF_ALG
# associated-data fix of diffs/6.1.176/af_alg_assoclen.patch written by
# hand; its reference to af_alg's static alg_proto goes through livepatch
# (.klp.sym.af_alg.alg_proto,0), and the patch does not depend on af_alg.
# GRAFT_REPLACE of a name only af_alg defines finds the module. Refused on
# the host, each with its reason: a GRAFT_REPLACE of a name
# three modules define (gre_rcv), a function module af_alg does not have,
# and a static of another module (algif_skcipher). In the guest
# (guest_source_modules.sh): applied with af_alg loaded and before it loads,
# the reproducer showing the new code running; the run-pre check refusing a
# patch whose recorded af_alg code differs in one byte.
. "$(dirname "$0")/common.sh"
MODULES=$(kernel_root "$RELEASE")/lib/modules/$RELEASE

start=$SECONDS
kbuild af_alg_assoclen_src
cat "$WORK/af_alg_assoclen_src.build.log"
echo "built af_alg_assoclen_src.ko in $((SECONDS - start)) s"
grep -q "af_alg:af_alg_sendmsg -> fixed_af_alg_sendmsg" "$WORK/af_alg_assoclen_src.build.log" ||
  fail "af_alg_sendmsg was not taken from module af_alg"
readelf -sW "$WORK/af_alg_assoclen_src.ko" | grep -q '\.klp\.sym\.af_alg\.alg_proto,0' ||
  fail "alg_proto is not .klp.sym.af_alg.alg_proto,0"
readelf -SW "$WORK/af_alg_assoclen_src.ko" | grep -q '\.klp\.rela\.af_alg\.' || fail "no .klp.rela.af_alg.* section"
depends=$(strings "$WORK/af_alg_assoclen_src.ko" | grep '^depends=' || true)
[[ $depends != *af_alg* ]] || fail "the patch depends on module af_alg ($depends)"

# GRAFT_REPLACE of a name only module af_alg defines: that module's.
cat >"$WORK/unique.c" <<'C'
#include <net/sock.h>
#include <graft/kernel_patch.h>
static void graft_wmem_wakeup(struct sock *sk) { }
GRAFT_REPLACE(af_alg_wmem_wakeup, graft_wmem_wakeup);
C
"$GRAFT" build --kernel --from-source "$WORK/unique.c" --kernel-release "$RELEASE" -o "$WORK/unique.ko" \
  >"$WORK/unique.log" 2>&1 || { cat "$WORK/unique.log" >&2; fail "GRAFT_REPLACE(af_alg_wmem_wakeup) was refused"; }
grep -q "af_alg:af_alg_wmem_wakeup -> graft_wmem_wakeup" "$WORK/unique.log" ||
  { cat "$WORK/unique.log" >&2; fail "af_alg_wmem_wakeup was not found in module af_alg"; }

refused() {  # NAME EXPECTED-MESSAGE (the patch is $WORK/NAME.c)
  if "$GRAFT" build --kernel --from-source "$WORK/$1.c" --kernel-release "$RELEASE" -o "$WORK/$1.ko" \
       >"$WORK/$1.log" 2>&1; then
    fail "$1: built, should have been refused"
  fi
  grep -qF -- "$2" "$WORK/$1.log" || { cat "$WORK/$1.log" >&2; fail "$1: refused without '$2'"; }
  [[ ! -e $WORK/$1.ko ]] || fail "$1: a module was written"
  echo "refused $1: $(grep 'error' "$WORK/$1.log")"
}
cat >"$WORK/ambiguous.c" <<'C'
#include <linux/skbuff.h>
#include <graft/kernel_patch.h>
static int graft_gre_rcv(struct sk_buff *skb) { return 0; }
GRAFT_REPLACE(gre_rcv, graft_gre_rcv);
C
refused ambiguous "GRAFT_REPLACE(gre_rcv): vmlinux does not define it and 3 modules do: "
grep -qF "gre (kernel/net/ipv4/gre.ko)" "$WORK/ambiguous.log" || fail "ambiguous: candidates not listed"
grep -qF "GRAFT_REPLACE_IN(MODULE, gre_rcv, graft_gre_rcv)" "$WORK/ambiguous.log" || fail "ambiguous: no hint"
cat >"$WORK/missing.c" <<'C'
#include <graft/kernel_patch.h>
static int graft_no_such(void) { return 0; }
GRAFT_REPLACE_IN(af_alg, af_alg_no_such_function, graft_no_such);
C
refused missing "symbol af_alg_no_such_function is not in module af_alg"
cat >"$WORK/other_static.c" <<'C'
#include <net/sock.h>
#include <graft/kernel_patch.h>
extern struct proto_ops algif_skcipher_ops; /* static in crypto/algif_skcipher.c */
static void graft_wmem_wakeup(struct sock *sk)
{
	if (sk->sk_socket && sk->sk_socket->ops == &algif_skcipher_ops)
		sk->sk_write_space(sk);
}
GRAFT_REPLACE_IN(af_alg, af_alg_wmem_wakeup, graft_wmem_wakeup);
C
refused other_static "the patch refers to algif_skcipher_ops, a symbol of module algif_skcipher that it does not export"

# The run-pre check's byte comparison: the recorded af_alg_sendmsg differs
# in its 6th byte (after the masked ftrace site).
tamper_manifest "$WORK/af_alg_assoclen_src.ko" "$WORK/af_alg_src_tampered.ko"

build_reproducers

run_guest "$KTEST_DIR/guest_source_modules.sh" \
  --file "$WORK/fix_check" --file "$WORK/af_alg_assoclen_src.ko" --file "$WORK/af_alg_src_tampered.ko" \
  --file "$MODULES/kernel/crypto/af_alg.ko" --file "$MODULES/kernel/crypto/algif_skcipher.ko" \
  --file "$KTEST_DIR/guest_af_alg.sh"
echo "PASS $TEST_NAME"
