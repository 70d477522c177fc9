#!/usr/bin/env bash
# A C++ virtual method, called through a base pointer, replaced by a function
# named with its demangled signature: GRAFT_REPLACE("Circle::area() const", ...).
# The other override (Square::area) is left alone.
source "$(dirname "$0")/common.sh"

cxx "$PROGRAMS/shapes.cc" -o "$T/shapes"
nm -C "$T/shapes" | grep 'Circle::area() const' >/dev/null || fail "no Circle::area() const in the target"

cat >"$T/fix.cc" <<'CXX'
#include <graft/patch.h>
struct CircleLayout {  // the layout of the target's Circle
  const void *vptr;
  double r;
};
extern "C" double fixed_area(const void *self) {
  const CircleLayout *c = static_cast<const CircleLayout *>(self);
  return 3.14 * c->r * c->r;
}
GRAFT_REPLACE("Circle::area() const", fixed_area);
CXX
build_patch "$T/fix.cc" "$T/shapes" "$T/fix.graft"
graft_ok info "$T/fix.graft" --json
[[ $(json_get 'j["functions"][0]["symbol"]' <"$T/graft.out") == _ZNK6Circle4areaEv ]] ||
  fail "the patch does not replace _ZNK6Circle4areaEv"

start_target s "$T/shapes"
expect s call "12.00 4.00"
apply_ok "$T/fix.graft" "${TPID[s]}"
expect s call "12.56 4.00"
graft_ok list --pid "${TPID[s]}"
grep -q 'Circle::area() const' "$T/graft.out" || fail "graft list does not show Circle::area() const"
graft_ok revert fix --pid "${TPID[s]}"
expect s call "12.00 4.00"
assert_untouched "${TPID[s]}"

# The mangled name works too.
sed 's/"Circle::area() const"/_ZNK6Circle4areaEv/' "$T/fix.cc" >"$T/mangled.cc"
build_patch "$T/mangled.cc" "$T/shapes" "$T/mangled.graft"
apply_ok "$T/mangled.graft" "${TPID[s]}"
expect s call "12.56 4.00"
graft_ok revert mangled --pid "${TPID[s]}"
expect s call "12.00 4.00"
assert_untouched "${TPID[s]}"
