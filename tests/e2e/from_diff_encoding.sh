#!/usr/bin/env bash
# The target is checked against the original build instruction by
# instruction, not byte by byte: here it is built with every branch inside
# total() encoded near (`{disp32}', as an assembler run with other flags may
# do) where graft's build of the same tree gets short ones, so every later
# offset and the alignment padding differ. graft build --from-diff accepts
# it; a target whose total() really differs is still refused, naming it.
# ctest-timeout: 300
source "$(dirname "$0")/common.sh"

tree=$T/loop
cp -r "$PROGRAMS/diffloop" "$tree"
mkdir -p "$tree/programs"
cp "$PROGRAMS/serve.h" "$tree/programs/"
make -C "$tree" -s CC="$CC" || fail "diffloop does not build"

# The running target: the same source, with near branches.
"$CC" -g -O2 -I"$tree/programs" -S "$tree/loop.c" -o "$T/loop.s"
sed -i 's/^\t\(j[a-z]*\)\t\.L/\t{disp32} \1\t.L/' "$T/loop.s"
grep -q '{disp32}' "$T/loop.s" || fail "no branch to force near in loop.s"
"$CC" -g -O2 -Wl,--build-id "$T/loop.s" -o "$T/near"
cmp -s <(objdump -d --no-show-raw-insn "$tree/loop") <(objdump -d --no-show-raw-insn "$T/near") &&
  fail "the near build is the same as the short one"

make_fix "$tree" fix sed -i 's|s += i \* input;|s += i * input + 1;|' loop.c
start_target s "$T/near"
expect s total 24
graft_ok build --from-diff "$T/fix.patch" --clean "make clean" --source "$tree" --target "$T/near" -o "$T/fix.graft"
no_ipa_ra_warning
apply_ok "$T/fix.graft" "${TPID[s]}"
expect s total 28
graft_ok revert fix --pid "${TPID[s]}"
expect s total 24
assert_untouched "${TPID[s]}"

# A target whose loop really differs (adds instead of multiplying): refused.
sed 's/s += i \* input;/s += i + input;/' "$tree/loop.c" >"$T/other.c"
"$CC" -g -O2 -I"$tree/programs" -Wl,--build-id "$T/other.c" -o "$T/other"
rc=0
graft build --from-diff "$T/fix.patch" --clean "make clean" --source "$tree" --target "$T/other" -o "$T/other.graft" || rc=$?
[[ $rc -ne 0 ]] || fail "a target built from other code was accepted"
grep -q "was not built from .* function \`total' differs" "$T/graft.err" ||
  fail "the refusal does not name total()"
