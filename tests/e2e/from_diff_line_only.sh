#!/usr/bin/env bash
# graft build --from-diff leaves out functions whose only change is a
# __LINE__ moved by lines added above them (programs/difflines): fixed()
# grows two lines, so checked()'s __LINE__ moves by two and checked() keeps
# its code (said in the output); where() returns the number of its own line,
# and the fix changes that number on the same line: a real change, replaced
# even though the new value is where the diff moves its old one. A diff
# that only moves lines is refused as such, and one whose changed lines are
# inside an #ifdef the build leaves out is refused naming the conditional.
# The patch applies and reverts.
# ctest-timeout: 300
source "$(dirname "$0")/common.sh"

tree=$T/lines
cp -r "$PROGRAMS/difflines" "$tree"
mkdir -p "$tree/programs"
cp "$PROGRAMS/serve.h" "$tree/programs/"
make -C "$tree" -s CC="$CC" || fail "difflines does not build"
[[ $(sed -n 26p "$tree/lines.c") == *"return 26;"* ]] || fail "where() is not on line 26"

fix_edit() {
  "$PYTHON" - <<'PY'
s = open('lines.c').read()
s = s.replace('  return x + 1;\n', '  if (x > 1000)\n    return 1000;\n  return x + 100;\n')
s = s.replace('return 26; /*', 'return 28; /*')
open('lines.c', 'w').write(s)
PY
}
make_fix "$tree" fix fix_edit

start_target s "$tree/lines"
expect s fixed 6
expect s checked 10
expect s where 26

graft_ok build --from-diff "$T/fix.patch" --clean "make clean" --source "$tree" --target "$tree/lines" -o "$T/fix.graft" --json
no_ipa_ra_warning
replaced=$(json_get 'sorted(f["symbol"] for f in j["functions"])' <"$T/graft.out")
[[ $replaced == '["fixed", "where"]' ]] || fail "replaced $replaced, expected fixed and where"
json_get 'j["notes"]' <"$T/graft.out" | grep -q "left out \`checked' (lines.c): only __LINE__ values moved (19 -> 21)" ||
  fail "the build does not say that checked() was left out"

apply_ok "$T/fix.graft" "${TPID[s]}"
expect s fixed 105
expect s checked 10
expect s where 28
graft_ok revert fix --pid "${TPID[s]}"
expect s fixed 6
expect s where 26
assert_untouched "${TPID[s]}"

# Only lines moved (a comment added above checked()): nothing to patch.
make_fix "$tree" moved sed -i 's|^volatile int input = 5;|/* the input */\nvolatile int input = 5;|' lines.c
rc=0
graft build --from-diff "$T/moved.patch" --clean "make clean" --source "$tree" --target "$tree/lines" -o "$T/moved.graft" || rc=$?
[[ $rc -ne 0 ]] || fail "a diff that only moves lines built a patch"
grep -q "changes only __LINE__ values in 1 function(s) (\`checked')" "$T/graft.err" ||
  fail "the refusal does not say that only __LINE__ values changed"
[[ ! -e $T/moved.graft ]] || fail "a patch file was written anyway"

# A change inside `#ifdef LINES_TRACE', which this build does not define.
make_fix "$tree" traced sed -i 's|^  return 7;$|  return 8;|' lines.c
rc=0
graft build --from-diff "$T/traced.patch" --clean "make clean" --source "$tree" --target "$tree/lines" -o "$T/traced.graft" || rc=$?
[[ $rc -ne 0 ]] || fail "a change the build does not compile built a patch"
line=$(grep -n '^#ifdef LINES_TRACE' "$tree/lines.c" | cut -d: -f1)
grep -q "its changed lines are not compiled in this configuration (lines.c line $((line + 2)) inside \`#ifdef LINES_TRACE' (lines.c:$line))" "$T/graft.err" ||
  fail "the refusal does not name the #ifdef"
