#!/usr/bin/env bash
# graft build --from-diff on a make project of three C units (programs/diffshop),
# built by its own Makefile before graft sees it: the fix changes functions
# in two units, adds a string literal and a static variable, and changes a
# static function whose name exists in both units (only stock.c's is
# replaced). The patch applies live and reverts.
# ctest-timeout: 300
source "$(dirname "$0")/common.sh"

shop_tree "$T/shop"
make -C "$T/shop" -s CC="$CC" || fail "the shop does not build"

fix_edit() {
  "$PYTHON" - <<'PY'
import re
s = open('price.c').read()
s = s.replace('static int discount = 10; /* percent */',
              'static int discount = 10; /* percent */\nstatic long fixed_calls; /* new */')
s = s.replace('  long once = cents - cents * discount / 100;\n  return clamp(once - once * discount / 100);',
              '  fixed_calls++;\n  return clamp(cents - cents * discount / 100);')
s = s.replace('return "EUR";', 'return "EUR (fixed)";')
s = s.replace('long audit(void) { return -1; }', 'long audit(void) { return fixed_calls; }')
open('price.c', 'w').write(s)
t = open('stock.c').read()
t = t.replace('return v > 100 ? 100 : v;', 'return v < 0 ? 0 : v > 100 ? 100 : v;')
open('stock.c', 'w').write(t)
PY
}
make_fix "$T/shop" fix fix_edit

start_target s "$T/shop/shop"
expect s "price 1000" 810
expect s currency EUR
expect s audit -1
expect s "level 1" -3
expect s "level 0" 5

graft_ok build --from-diff "$T/fix.patch" --clean "make clean" --source "$T/shop" --target "$T/shop/shop" \
  -o "$T/fix.graft" --json
no_ipa_ra_warning
json=$(cat "$T/graft.out")
replaced=$(json_get '" ".join(sorted(f["symbol"] + ("@" + f["file"] if f["file"] else "") + ":" + f["reason"] for f in j["functions"]))' <<<"$json")
[[ $replaced == "audit:changed directly clamp@stock.c:changed directly currency:changed directly price_after_discount:changed directly" ]] ||
  fail "unexpected functions: $replaced"
[[ $(json_get 'j["new_variables"]' <<<"$json") == '["fixed_calls"]' ]] || fail "fixed_calls is not a new variable"
[[ $(json_get 'j["notes"][0]' <<<"$json") == *"matches the original build"* ]] || fail "no target check note"

# The patch is an ordinary patch: info, apply, revert.
graft_ok info "$T/fix.graft" --json
[[ $(json_get '[e["file"] for e in j["externals"] if e["name"] == "clamp"]' <"$T/graft.out") == '["price.c"]' ]] ||
  fail "price.c's clamp is not referred to as the target's static"
apply_ok "$T/fix.graft" "${TPID[s]}"
expect s "price 1000" 900
expect s currency "EUR (fixed)"
expect s audit 1
expect s "price 10" 9
expect s audit 2
expect s "level 1" 0
expect s "level 0" 5
expect s "tax 100" 120
graft_ok revert fix --pid "${TPID[s]}"
expect s "price 1000" 810
expect s "level 1" -3
assert_untouched "${TPID[s]}"

# The source tree itself is left as it was: built, unpatched.
grep -q 'once \* discount' "$T/shop/price.c" || fail "graft changed the source tree"
