#!/usr/bin/env bash
# ctest-timeout: 300
# graft build --from-diff on a C++ make project (programs/diffcxx): the fix
# changes a function template instantiated in two units (one weak copy in
# the target: replaced once), a member function, a lambda (its body is
# inlined into std::function's invoker, a local symbol) and a function of an
# anonymous namespace. The patch applies live and reverts.
source "$(dirname "$0")/common.sh"

rm -rf "$T/geo"
cp -r "$PROGRAMS/diffcxx" "$T/geo"
mkdir -p "$T/geo/programs"
cp "$PROGRAMS/serve.h" "$T/geo/programs/"
make -C "$T/geo" -s CXX="$CXX" || fail "the C++ project does not build"

cxx_edit() {
  sed -i 's/return v \* factor;/return v * factor + 1;/' geometry.h
  sed -i 's/total_ += step_;/total_ += 2 * step_;/' meter.cc
  sed -i 's/return x + n;/return x + 2 * n;/; s/return v < 0 ? 0 : v;/return v < 1 ? 1 : v;/' geometry.cc
}
make_fix "$T/geo" cxx cxx_edit

start_target g "$T/geo/geo"
expect g "area 3 4" 12
expect g "area -1 4" 0
expect g "perimeter 3 4" 14
expect g "apply 10" 33
expect g next 5

graft_ok build --from-diff "$T/cxx.patch" --clean "make clean" --source "$T/geo" --target "$T/geo/geo" -o "$T/cxx.graft" --json
no_ipa_ra_warning
json=$(cat "$T/graft.out")
got=$(json_get '"\n".join(sorted(f["demangled"] + " | " + f["file"] + " | " + f["reason"] for f in j["functions"]))' <<<"$json")
want="(anonymous namespace)::clamp_side(int) | geometry.cc | changed directly
Meter::next() |  | changed directly
long scaled<long>(long, long) |  | changed directly
std::_Function_handler<int (int), apply_all(int)::{lambda(int)#1}>::_M_invoke(std::_Any_data const&, int&&) | geometry.cc | inlined change"
[[ $got == "$want" ]] || fail "unexpected functions:
$got"

apply_ok "$T/cxx.graft" "${TPID[g]}"
expect g "area 3 4" 13
expect g "area -1 4" 5
expect g "perimeter 3 4" 15
expect g "apply 10" 63
expect g next 15
graft_ok revert cxx --pid "${TPID[g]}"
expect g "area 3 4" 12
expect g "apply 10" 33
expect g next 20
assert_untouched "${TPID[g]}"
