#!/usr/bin/env bash
# ctest-timeout: 300
# A fix that changes static data no code writes: names[] and admins[] lose
# an entry (32 -> 24 bytes) and attempts_limit changes
# (programs/difftable/names.c).
# graft build --from-diff carries the new data and replaces every function
# that reads it, also those whose code did not change (admin(), limit()),
# and says so; applied live, the process answers as the fixed
# build; reverted, as before. GCC itself made names[] read-only; admins[]
# and attempts_limit, volatile, stay in writable data, and graft's own
# search for stores decides.
# A fix that changes the initial value of a static that note() writes is
# refused, naming the writer.
source "$(dirname "$0")/common.sh"

rm -rf "$T/tree" && cp -r "$PROGRAMS/difftable" "$T/tree" && mkdir -p "$T/tree/programs" &&
  cp "$PROGRAMS/serve.h" "$T/tree/programs/"
make -C "$T/tree" -s CC="$CC" || fail "names does not build"

make_fix "$T/tree" table sed -i 's|{"alice", "bob", "mallory", NULL}|{"alice", "bob", NULL}|; s|"ops", "guest", NULL|"ops", NULL|; s|attempts_limit = 3;|attempts_limit = 5;|' names.c

# check_patch: the fix applied and reverted live.
check_patch() {
  start_target n "$T/tree/names"
  pid=${TPID[n]}
  expect n "allowed mallory" 1
  expect n "admin guest" 1
  expect n listed 3
  expect n limit 3
  graft_ok apply "$T/table.graft" --pid "$pid"
  expect n "allowed mallory" 0
  expect n "allowed bob" 1
  expect n "admin guest" 0
  expect n "admin ops" 1
  expect n listed 2
  expect n limit 5
  graft_ok revert table --pid "$pid"
  expect n "allowed mallory" 1
  expect n "admin guest" 1
  expect n listed 3
  expect n limit 3
  assert_untouched "$pid"
  stop_target n
}

graft_ok build --from-diff "$T/table.patch" --clean "make clean" --source "$T/tree" --target "$T/tree/names" \
  -o "$T/table.graft"
# names[]: GCC saw no store and made it read-only.
grep -q "\`names' (names.c) changes from 32 to 24 bytes; it is read-only (section .data.rel.ro.local.names)" \
  "$T/graft.out" || fail "the build does not say it carries names[]"
# admins[] and attempts_limit stay in writable data: graft found no store.
grep -q "\`admins' (names.c) changes from 32 to 24 bytes; no code writes it" "$T/graft.out" ||
  fail "the build does not say it carries admins[]"
grep -q "\`attempts_limit' (names.c) changes; no code writes it" "$T/graft.out" ||
  fail "the build does not say it carries attempts_limit"
for f in admin limit; do
  grep -q "replaces $f: reads \`" "$T/graft.out" || fail "$f is not replaced as a reader of changed data"
done
grep -q "replaces allowed:" "$T/graft.out" || fail "allowed is not replaced"
check_patch
start_target n "$T/tree/names"

# seen is written by note(): its initial value cannot be carried.
make_fix "$T/tree" seen sed -i 's|static int seen;|static int seen = 100;|' names.c
rc=0
graft build --from-diff "$T/seen.patch" --clean "make clean" --source "$T/tree" --target "$T/tree/names" \
  -o "$T/seen.graft" || rc=$?
[[ $rc -eq 2 ]] || fail "the fix of seen should be refused (exit 2), exited $rc"
grep -q "\`seen'.*\`note' writes it at +0x" "$T/graft.err" || fail "the refusal does not name note(): $(cat "$T/graft.err")"
[[ ! -e $T/seen.graft ]] || fail "a patch file was written anyway"
expect n note 1
log "ok"
