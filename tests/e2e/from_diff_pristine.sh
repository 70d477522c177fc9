#!/usr/bin/env bash
# graft build --from-diff starts from the pristine tree the target was
# built from: a tree holding an earlier build's objects is refused with the
# advice (no guessing which outputs to delete: a stamp file survives the
# objects it stands for), a git work tree is copied without its ignored
# build outputs (local edits kept), --clean cleans a plain copy, and a diff
# that does not apply is refused before anything is built.
# ctest-timeout: 300
source "$(dirname "$0")/common.sh"

tree=$T/loop
cp -r "$PROGRAMS/diffloop" "$tree"
mkdir -p "$tree/programs"
cp "$PROGRAMS/serve.h" "$tree/programs/"
make -C "$tree" -s CC="$CC" || fail "diffloop does not build"
make_fix "$tree" fix sed -i 's|s += i \* input;|s += i * input + 1;|' loop.c

# A built tree and no way to clean it: refused, nothing built.
rc=0
graft build --from-diff "$T/fix.patch" --source "$tree" --target "$tree/loop" -o "$T/fix.graft" || rc=$?
[[ $rc -ne 0 ]] || fail "a built tree was accepted without --clean"
grep -q "holds the outputs of an earlier build (1 files, e.g. loop.o); .*--clean \"make distclean\"" "$T/graft.err" ||
  fail "the refusal does not give the advice"
grep -q "building the original tree" "$T/graft.err" && fail "graft built before refusing"
[[ ! -e $T/fix.graft ]] || fail "a patch file was written anyway"

# --clean on a plain copy.
graft_ok build --from-diff "$T/fix.patch" --clean "make clean" --source "$tree" --target "$tree/loop" -o "$T/fix.graft"
grep -q "cleaning the copy: make clean" "$T/graft.err" || fail "graft did not run the clean command"

# A git work tree with its build outputs ignored and a local edit (the
# target was built from the edited tree): no --clean needed.
git -C "$tree" init -q
printf '*.o\nloop\n' >"$tree/.gitignore"
git -C "$tree" add -A
git -C "$tree" -c user.name=t -c user.email=t@t commit -qm tree
sed -i 's|volatile int input = 4;|volatile int input = 5;|' "$tree/loop.c"
make -C "$tree" -s CC="$CC" || fail "the edited tree does not build"
make_fix "$tree" gitfix sed -i 's|s += i \* input;|s += i * input + 1;|' loop.c
graft_ok build --from-diff "$T/gitfix.patch" --source "$tree" --target "$tree/loop" -o "$T/gitfix.graft"
grep -q "copied the .* files git keeps of" "$T/graft.err" || fail "graft did not copy the git files"
start_target s "$tree/loop"
expect s total 50
apply_ok "$T/gitfix.graft" "${TPID[s]}"
expect s total 55
graft_ok revert gitfix --pid "${TPID[s]}"
expect s total 50

# A diff that does not apply: refused before any build.
printf -- '--- a/loop.c\n+++ b/loop.c\n@@ -1,1 +1,1 @@\n-no such line\n+other\n' >"$T/bad.patch"
rc=0
graft build --from-diff "$T/bad.patch" --source "$tree" --target "$tree/loop" -o "$T/bad.graft" || rc=$?
[[ $rc -ne 0 ]] || fail "a diff that does not apply was accepted"
grep -q "does not apply to .*(nothing was built)" "$T/graft.err" || fail "the refusal does not say it"
grep -q "building the original tree" "$T/graft.err" && fail "graft built before checking the diff"
true
