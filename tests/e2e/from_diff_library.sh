#!/usr/bin/env bash
# ctest-timeout: 300
# graft build --from-diff on a shared library built by make (programs/difflib):
# the fix uses a hidden global and a hidden constant table of another unit
# (local symbols of libcalc.so once linked), a static function and a new
# string literal; the patch is applied with --all to the two processes that
# map the library, and reverted. The library is built with
# -fno-semantic-interposition: calls to its exported functions go through
# GCC's local aliases (`calc_scale.localalias'), one function with two names.
source "$(dirname "$0")/common.sh"

tag="e2e-$$-$RANDOM-$(date +%s%N)"
rm -rf "$T/lib"
cp -r "$PROGRAMS/difflib" "$T/lib"
mkdir -p "$T/lib/programs"
cp "$PROGRAMS/serve.h" "$T/lib/programs/"
make -C "$T/lib" -s CC="$CC" TAG="$tag" || fail "libcalc does not build"
[[ $(nm "$T/lib/libcalc.so" | grep -c ' [bBdr] calc_\(calls\|table\)$') -eq 2 ]] ||
  fail "calc_calls and calc_table are not local symbols of libcalc.so"
nm "$T/lib/libcalc.so" | grep -q ' calc_scale[.]localalias$' || fail "libcalc.so has no calc_scale.localalias"

lib_edit() {
  sed -i 's|return calc_scale(x) \* weight(x);|return calc_scale(x) * weight(x) + calc_table[0] * 1000;|; s|return "calc";|return "calc (fixed)";|' calc.c
}
make_fix "$T/lib" fix lib_edit

start_target a "$T/lib/calcmain"
start_target b "$T/lib/calcmain"
for t in a b; do
  expect $t "calc 3" 12
  expect $t name calc
done

graft_ok build --from-diff "$T/fix.patch" --clean "make clean" --source "$T/lib" --target "$T/lib/libcalc.so" \
  --build "make TAG=$tag libcalc.so" -o "$T/fix.graft"
no_ipa_ra_warning
grep -q "replaces calc: changed directly" "$T/graft.out" || fail "calc is not replaced"
grep -q "replaces calc_name: changed directly" "$T/graft.out" || fail "calc_name is not replaced"
graft_ok info "$T/fix.graft" --json
[[ $(json_get 'sorted(e["name"] + ":" + e["where"] for e in j["externals"])' <"$T/graft.out") == \
   '["calc_calls:target", "calc_scale:target", "calc_table:target", "weight:target"]' ]] ||
  fail "the patch does not use the library's own symbols: $(cat "$T/graft.out")"

graft_ok apply "$T/fix.graft" --all --json
cp "$T/graft.out" "$T/apply.json"
[[ $(json_get 'sorted(r["pid"] for r in j["results"])' <"$T/graft.out") == \
   "$(printf '[%s, %s]' $(printf '%s\n' "${TPID[a]}" "${TPID[b]}" | sort -n))" ]] ||
  fail "apply --all did not patch exactly the two processes"
for t in a b; do
  assert_no_wx "${TPID[$t]}"
  expect $t "calc 3" 1012
  expect $t "calc 1" 1002
  expect $t name "calc (fixed)"
  expect $t count 3
done
# By id: a patch named `fix' may be applied to other processes on this
# machine (other tests run in parallel).
id=$(json_get 'j["patch_id"]' <"$T/apply.json")
graft_ok revert "$id" --all
for t in a b; do
  expect $t "calc 3" 12
  assert_untouched "${TPID[$t]}"
done
