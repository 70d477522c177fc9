#!/usr/bin/env bash
# ctest-timeout: 400
# What graft build --from-diff refuses, with the exact reason and no patch
# file: a changed initial value of an existing static, a changed struct
# layout, a removed static local, a changed function too short for the
# jump, a diff that changes no code, and a target that was not built from
# the tree with the same flags.
source "$(dirname "$0")/common.sh"

shop_tree "$T/shop"
make -C "$T/shop" -s CC="$CC" || fail "the shop does not build"

# build_fails TARGET PATCH: graft build --from-diff fails with status 2 and
# one error line (after its progress lines), left in $GRAFT_ERROR.
build_fails() {
  local rc=0
  graft build --from-diff "$2" --clean "make clean" --source "$T/shop" --target "$1" -o "${2%.patch}.graft" || rc=$?
  [[ $rc -eq 2 ]] || fail "graft build of $2 exited with $rc, expected 2"
  [[ $(grep -c '^graft: error:' "$T/graft.err") -eq 1 ]] || fail "graft build of $2 printed no single error line"
  GRAFT_ERROR=$(grep '^graft: error:' "$T/graft.err")
  [[ ! -s $T/graft.out ]] || fail "graft build of $2 printed a result on stdout"
}

# refuse NAME PATTERN...: graft build of $T/NAME.patch fails and its error
# contains every PATTERN.
refuse() {
  local name=$1
  shift
  build_fails "$T/shop/shop" "$T/$name.patch"
  for p in "$@"; do
    [[ $GRAFT_ERROR == *"$p"* ]] || fail "$name: the error does not say \`$p': $GRAFT_ERROR"
  done
  [[ ! -e $T/$name.graft ]] || fail "$name: a patch file was written anyway"
}

make_fix "$T/shop" init sed -i 's|static int discount = 10;|static int discount = 15;|' price.c
refuse init "\`discount'" "price.c" ".data.discount" "initial value differs at +0x0"

make_fix "$T/shop" layout sed -i 's|  int id;|  int id;\n  long price;|' shop.h
refuse layout "struct item changes layout" "member \`price' added at +8" "member \`count' moved from +4 to +16"

make_fix "$T/shop" nolocal "$PYTHON" -c '
s = open("stock.c").read()
s = s.replace("  static long asked; /* a static local */\n  asked++;\n", "")
open("stock.c", "w").write(s)'
refuse nolocal "static local \`asked." "stock.c" "no counterpart"

make_fix "$T/shop" short sed -i 's|int shop_flags(void) { return 0; }|int shop_flags(void) { return 1; }|' price.c
refuse short "function \`shop_flags' is 3 bytes, too short for a 5-byte jump"

make_fix "$T/shop" comment sed -i 's|/\* The bug: the discount is applied twice. \*/|/* The bug. */|' price.c
refuse comment "changes no function's code"

# A target built with other flags is not the build of this tree.
make_fix "$T/shop" fix sed -i 's|return clamp(once - once \* discount / 100);|return clamp(once);|' price.c
cp -r "$T/shop" "$T/shop-O1"
make -C "$T/shop-O1" -s -B CC="$CC" CFLAGS="-g -O1" || fail "the -O1 shop does not build"
build_fails "$T/shop-O1/shop" "$T/fix.patch"
[[ $GRAFT_ERROR == *"was not built from"*"price_after_discount"* ]] || fail "the -O1 target is not refused: $GRAFT_ERROR"
# ...while the right one builds.
graft_ok build --from-diff "$T/fix.patch" --clean "make clean" --source "$T/shop" --target "$T/shop/shop" -o "$T/fix.graft"
grep -q "replaces price_after_discount: changed directly" "$T/graft.out" ||
  fail "price_after_discount is not replaced"
