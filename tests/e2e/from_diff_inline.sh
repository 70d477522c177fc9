#!/usr/bin/env bash
# ctest-timeout: 300
# graft build --from-diff with a change to a static inline function of a
# header (shop.h's scale), inlined into price.c and stock.c. The Makefile
# has no header dependencies, so make rebuilds nothing: graft must see that
# both units include shop.h, recompile them, and replace both callers
# ("inlined change"), never scale itself (it has no copy of its own).
source "$(dirname "$0")/common.sh"

shop_tree "$T/shop"
make -C "$T/shop" -s CC="$CC" || fail "the shop does not build"
nm "$T/shop/shop" | grep -q ' scale$' && fail "scale was not inlined; the test needs it inlined"

make_fix "$T/shop" round sed -i 's|return v \* percent / 100;|return (v * percent + 50) / 100;|' shop.h

start_target s "$T/shop/shop"
expect s "tax 999" 1198
expect s "value 3" 7
expect s "price 1000" 810

graft_ok build --from-diff "$T/round.patch" --clean "make clean" --source "$T/shop" --target "$T/shop/shop" -o "$T/round.graft"
no_ipa_ra_warning
grep -q "recompiling price.c" "$T/graft.err" || fail "graft did not recompile price.c itself"
grep -q "replaces price_with_tax: inlined change (inlines \`scale' (shop.h:" "$T/graft.out" ||
  fail "price_with_tax is not reported as an inlined change of scale"
grep -q "replaces stock_value: inlined change (inlines \`scale' (shop.h:" "$T/graft.out" ||
  fail "stock_value is not reported as an inlined change of scale"
n=$(grep -c "^  replaces" "$T/graft.out")
[[ $n -eq 2 ]] || fail "expected 2 replaced functions, got $n"

apply_ok "$T/round.graft" "${TPID[s]}"
expect s "tax 999" 1199
expect s "value 3" 8
expect s "price 1000" 810
graft_ok revert round --pid "${TPID[s]}"
expect s "tax 999" 1198
assert_untouched "${TPID[s]}"
