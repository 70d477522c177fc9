#!/usr/bin/env bash
# graft build --from-diff on a unit built with -O2 (-fipa-ra on), whose fix
# makes small() call snprintf(): caller() keeps values in registers small()
# never touched. The patch is built with an entry thunk for small() (the
# differ may replace caller() too, whose code changes with small()'s
# register use; the target's caller() is what the check reads), applies
# live while threads call it, and gives the right value.
# ctest-timeout: 300
source "$(dirname "$0")/common.sh"

rm -rf "$T/tree"
mkdir -p "$T/tree/programs"
cp "$PROGRAMS/serve.h" "$T/tree/programs/"
cp "$PROGRAMS/ipara_thunk.c" "$T/tree/ipara.c"
cat >"$T/tree/Makefile" <<'MK'
CFLAGS ?= -g -O2
ipara: ipara.o
	$(CC) $(CFLAGS) -pthread -Wl,--build-id -o $@ ipara.o
%.o: %.c
	$(CC) $(CFLAGS) -pthread -Iprograms -c $< -o $@
clean:
	rm -f ipara ipara.o
MK
make -C "$T/tree" -s CC="$CC" || fail "the tree does not build"

fix_edit() {
  "$PYTHON" - <<'PY'
s = open('ipara.c').read()
old = '__attribute__((noinline)) int small(int x) { return x * k + 1; }'
assert old in s
s = s.replace(old, '''__attribute__((noinline)) int small(int x) {
  char buf[32];
  snprintf(buf, sizeof buf, "%d", x);
  return x * k + 2 + (buf[0] == '#');
}''')
open('ipara.c', 'w').write(s)
PY
}
make_fix "$T/tree" fix fix_edit

start_target p "$T/tree/ipara"
expect p call 41
expect p "load 2" started
graft_ok build --from-diff "$T/fix.patch" --clean "make clean" --source "$T/tree" --target "$T/tree/ipara" \
  -o "$T/fix.graft" --json
json=$(cat "$T/graft.out")
replaced=$(json_get '" ".join(sorted(f["symbol"] for f in j["functions"]))' <<<"$json")
log "replaced: $replaced"
thunked=$(json_get '" ".join(n for n in j["notes"] if "entry thunk" in n)' <<<"$json")
[[ $thunked == *"\`small' gets an entry thunk that keeps rdx, rsi, rdi"* ]] ||
  fail "small() has no thunk keeping caller()'s registers: $json"
log "small() gets a thunk: $thunked"
apply_ok "$T/fix.graft" "${TPID[p]}" --timeout 30
expect p call 42
graft_ok revert fix --pid "${TPID[p]}" --timeout 30
expect p call 41
errors=$(ask p errors)
[[ $errors == "0 of "* ]] || fail "the threads computed wrong values: $errors"
assert_untouched "${TPID[p]}"
