#!/usr/bin/env bash
# A patch of a shared library calls strlen() and memcpy(), IFUNCs of glibc
# that the library never imported. The dynamic symbol table gives the
# address of their *resolvers*; calling that would return a pointer, not a
# length. graft resolves them in each process (symbol_resolver.h, ifunc.h):
#   none  the program imports neither: graft runs each resolver inside the
#         process (kill-safe, as a callback) and takes what it returns;
#   now   the program imports both, bound at startup (-z now): graft takes
#         the implementation from the program's GOT;
#   lazy  the program imports both lazily and has not called them yet: its
#         GOT still points into its own PLT, so graft runs the resolvers.
# In every case the address must be the implementation the dynamic linker
# picks (dlsym in the process), and the patched functions must answer right.
# Last, graft is killed while a resolver runs: the target lives on, `graft
# recover' rolls the apply back, and the patch then applies.
source "$(dirname "$0")/common.sh"

# No call to strlen or memcpy that GCC makes up (builtins, loop idioms).
NOSTR=(-fno-builtin -fno-tree-loop-distribute-patterns)
tag="e2e-$$-$RANDOM-$(date +%s%N)"
cc -shared -fPIC "${NOSTR[@]}" -DIFN_TAG="\"$tag\"" "$PROGRAMS/libifn.c" -o "$T/libifn.so"
LINK=(-L"$T" -lifn -Wl,-rpath,"$T")
cc "${NOSTR[@]}" "$PROGRAMS/ifnmain.c" "${LINK[@]}" -o "$T/none"
cc "${NOSTR[@]}" -DIMPORT_STRING "$PROGRAMS/ifnmain.c" "${LINK[@]}" -Wl,-z,now -o "$T/now"
cc "${NOSTR[@]}" -DIMPORT_STRING "$PROGRAMS/ifnmain.c" "${LINK[@]}" -Wl,-z,lazy -o "$T/lazy"

imports() {  # FILE: the names its dynamic relocations bind (JUMP_SLOT, GLOB_DAT)
  LC_ALL=C readelf -rW "$1" | awk '/JUMP_SLOT|GLOB_DAT/ {sub(/@.*/, "", $5); print $5}' | sort -u
}
for f in libifn.so none; do
  if grep -qxE 'strlen|memcpy' <<<"$(imports "$T/$f")"; then
    fail "$f imports strlen or memcpy; the test would not test anything: $(imports "$T/$f" | paste -sd' ')"
  fi
done
for f in now lazy; do
  [[ $(imports "$T/$f" | grep -cxE 'strlen|memcpy') -eq 2 ]] || fail "$f does not import strlen and memcpy"
done
LIBC=$(ldd "$T/none" | awk '/libc\.so/ {print $3}')
libc_syms=$(LC_ALL=C readelf -sW --dyn-syms "$LIBC")
for sym in strlen memcpy; do
  grep -qE "IFUNC +GLOBAL +DEFAULT +[0-9]+ $sym@@" <<<"$libc_syms" ||
    fail "$sym is not an IFUNC of $LIBC; this test needs one"
done

cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
#include <string.h>
static int new_length(const char *s) { return (int)strlen(s); }
static int new_copy(char *dst, const char *src, int n) {
  memcpy(dst, src, (size_t)n);
  dst[n] = 0;
  return n;
}
GRAFT_REPLACE(ifn_length, new_length);
GRAFT_REPLACE(ifn_copy, new_copy);
C
build_patch "$T/fix.c" "$T/libifn.so" "$T/fix.graft"
graft_ok info "$T/fix.graft" --json
[[ $(json_get "sorted(e['name'] for e in j['externals'] if e['where'] == 'library')" <"$T/graft.out") == '["memcpy", "strlen"]' ]] ||
  fail "the patch does not refer to strlen and memcpy as library symbols"

WORD=abcdefghijklmnopqrstuvwxyz0123456789
for p in none now lazy; do
  start_target $p "$T/$p"
  expect $p "length $WORD" 4
  expect $p "copy hello" "2 he"
done
# The program's own calls work, and under -z now its GOT is already bound.
expect now "own xyz" "3 xyz"

# ifn_length branches back into its first bytes: the per-thread models
# cannot move its entry. Asked for, hybrid is refused with that reason;
# by default the apply gives way to the stop model and says so.
graft_fails 1 apply "$T/fix.graft" --pid "${TPID[none]}" --model hybrid
[[ $GRAFT_ERROR == *"ifn_length"*"the per-thread models cannot patch it"* ]] ||
  fail "the refusal of --model hybrid does not say why: $GRAFT_ERROR"
assert_untouched "${TPID[none]}"
for p in none now lazy; do
  graft_ok apply "$T/fix.graft" --pid "${TPID[$p]}" --json
  assert_no_wx "${TPID[$p]}"
  [[ $(json_get 'j["results"][0]["model"]' <"$T/graft.out") == stop ]] || fail "$p: not applied under stop"
  json_get 'j["results"][0]["notes"]' <"$T/graft.out" | grep -q "applied under the stop model, not the default hybrid: function .ifn_length'" ||
    fail "$p: no note says why the stop model was used"
  for sym in strlen memcpy; do
    want=$(ask $p "addr $sym")
    note=$(json_get "([n for n in j['results'][0]['notes'] if n.startswith('\`$sym\\'')] + [''])[0]" <"$T/graft.out")
    [[ $note == *"IFUNC of "*"/${LIBC##*/}): $want,"* ]] ||
      fail "$p: graft bound $sym otherwise than the dynamic linker ($want): $note"
    case $p in
      none|lazy) want_how="from its resolver run in the process" ;;
      now) want_how="as bound in the GOT of $T/now" ;;
    esac
    [[ $note == *"$want_how"* ]] || fail "$p: $sym not resolved $want_how: $note"
    log "$p: $sym -> $want, $want_how"
  done
  expect $p "length $WORD" ${#WORD}
  expect $p "length x" 1
  expect $p "copy hello" "5 hello"
  expect $p "copy $WORD" "${#WORD} $WORD"
done
expect lazy "own xyz" "3 xyz"

# graft killed while the resolver runs in the target (fault point
# call-running: the remote call is under way). The borrowed thread returns
# through the thunk and rt_sigreturn; the target answers as before.
start_target k "$T/none"
pid=${TPID[k]}
rc=0
GRAFT_FAULT=call-running "$GRAFT" apply "$T/fix.graft" --pid "$pid" >"$T/graft.out" 2>&1 || rc=$?
[[ $rc -eq 137 ]] || fail "graft was not killed during the resolver call (exit $rc): $(cat "$T/graft.out")"
expect k "length $WORD" 4
graft_ok recover --pid "$pid"
grep -q "rolled back the interrupted apply" "$T/graft.out" || fail "recover did not roll back the apply"
assert_untouched "$pid"
apply_ok "$T/fix.graft" "$pid"
expect k "length $WORD" ${#WORD}
expect k "copy hello" "5 hello"
graft_ok revert fix --pid "$pid"
expect k "length $WORD" 4
assert_untouched "$pid"
