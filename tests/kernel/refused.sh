#!/usr/bin/env bash
# graft build --kernel refuses what livepatch cannot patch, with the reason:
# a notrace function (no __fentry__ call), an __init function, a function
# vmlinux does not have, a non-exported symbol that does not exist.
. "$(dirname "$0")/common.sh"

refused() {  # PATCH EXPECTED-MESSAGE
  if "$GRAFT" build --kernel --from-source "$KTEST_DIR/patches/$1.c" --kernel-release "$RELEASE" \
       -o "$WORK/$1.ko" >"$WORK/$1.log" 2>&1; then
    fail "$1: built, should have been refused"
  fi
  grep -q -- "$2" "$WORK/$1.log" || { cat "$WORK/$1.log" >&2; fail "$1: refused without '$2'"; }
  [[ ! -e $WORK/$1.ko ]] || fail "$1: a module was written"
  echo "refused $1: $(grep 'error' "$WORK/$1.log")"
}

refused refused_notrace "cannot patch native_sched_clock: it has no __fentry__ call"
refused refused_init "cannot patch start_kernel: it is __init code"
cat >"$WORK/missing.c" <<'C'
#include <graft/kernel_patch.h>
static int graft_no_such(void) { return 0; }
GRAFT_REPLACE(no_such_function_in_vmlinux, graft_no_such);
C
if "$GRAFT" build --kernel --from-source "$WORK/missing.c" --kernel-release "$RELEASE" -o "$WORK/missing.ko" \
     >"$WORK/missing.log" 2>&1; then
  fail "a patch of a missing function was built"
fi
grep -q "symbol no_such_function_in_vmlinux is not in" "$WORK/missing.log" || { cat "$WORK/missing.log"; fail "missing function: wrong reason"; }
cat >"$WORK/unknown_ref.c" <<'C'
#include <linux/seq_file.h>
#include <graft/kernel_patch.h>
extern int graft_no_such_variable;
static int graft_show(struct seq_file *m, void *v) { seq_printf(m, "%d\n", graft_no_such_variable); return 0; }
GRAFT_REPLACE(cmdline_proc_show, graft_show);
C
if "$GRAFT" build --kernel --from-source "$WORK/unknown_ref.c" --kernel-release "$RELEASE" -o "$WORK/unknown_ref.ko" \
     >"$WORK/unknown_ref.log" 2>&1; then
  fail "a patch using a symbol vmlinux lacks was built"
fi
grep -q "the patch refers to graft_no_such_variable, which neither vmlinux nor any module of" \
  "$WORK/unknown_ref.log" || { cat "$WORK/unknown_ref.log"; fail "unknown symbol: wrong reason"; }
echo "PASS $TEST_NAME"
