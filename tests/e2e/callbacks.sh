#!/usr/bin/env bash
# Callbacks run inside the target at their moments, in order: pre_patch,
# (switch), post_patch; pre_unpatch, (switch back), post_unpatch. A
# pre_patch that vetoes, crashes or hangs fails the apply and leaves the
# process exactly as it was (the veto patch also uses shadow variables:
# the runtime graft injected for it is removed too); the error names the
# callback and its return value or fault. A post_patch that hangs leaves
# the patch applied, the thread restored, and a note.
source "$(dirname "$0")/common.sh"

cc -pthread -fno-ipa-ra "$PROGRAMS/ledger.c" -o "$T/ledger"

# patch NAME PRE_PATCH_BODY [POST_PATCH_BODY]: a patch of version() that
# returns 2 and logs its callbacks in the target's callback_log.
patch() {
  cat >"$T/$1.c" <<C
#include <graft/patch.h>
#include <graft/runtime.h>
extern char callback_log[256];
/* By hand: libc's string functions are IFUNCs the target may not import. */
static void note(const char *s) {
  char *p = callback_log;
  while (*p) p++;
  while (*s) *p++ = *s++;
  *p++ = ',';
  *p = 0;
}
static int version_2(void) { return 2; }
GRAFT_REPLACE(version, version_2);
static int pre(void) { note("pre_patch"); $2 }
static void post(void) { note("post_patch"); ${3:-} }
static void pre_un(void) { note("pre_unpatch"); }
static void post_un(void) { note("post_unpatch"); }
GRAFT_PRE_PATCH(pre);
GRAFT_POST_PATCH(post);
GRAFT_PRE_UNPATCH(pre_un);
GRAFT_POST_UNPATCH(post_un);
C
  build_patch "$T/$1.c" "$T/ledger" "$T/$1.graft"
}

patch ok 'return 0;'
patch veto 'graft_shadow_alloc(callback_log, 5, 8, 0, 0); return -7;'
patch crash 'return *(volatile int *)8;'
patch hang 'for (;;) {}'
patch slow_post 'return 0;' 'for (;;) {}'
# The worker threads never leave worker(): the switch times out after
# pre_patch succeeded, and post_unpatch undoes what pre_patch did.
cat "$T/ok.c" - >"$T/stuck.c" <<'C'
static void *worker_2(void *arg) { return arg; }
GRAFT_REPLACE(worker, worker_2);
C
build_patch "$T/stuck.c" "$T/ledger" "$T/stuck.graft"
graft_ok info "$T/ok.graft"
grep -q 'pre_patch pre' "$T/graft.out" || fail "graft info does not list the callbacks"

start_target L "$T/ledger"
pid=${TPID[L]}

# The order of the four moments.
expect L log "-"
apply_ok "$T/ok.graft" "$pid"
expect L version 2
expect L log "pre_patch,post_patch,"
graft_ok revert ok --pid "$pid"
expect L version 1
expect L log "pre_patch,post_patch,pre_unpatch,post_unpatch,"
assert_untouched "$pid"

# A veto: nothing applied, nothing left; post_unpatch is not run (as in the
# kernel, a failed pre_patch has nothing to undo).
graft_fails 1 apply "$T/veto.graft" --pid "$pid"
[[ $GRAFT_ERROR == *"pre_patch callback \`pre' of patch veto"*"returned -7"*"veto"* ]] ||
  fail "the veto is not explained: $GRAFT_ERROR"
expect L version 1
expect L log "pre_patch,post_patch,pre_unpatch,post_unpatch,pre_patch,"
assert_untouched "$pid"

# A crash in pre_patch: reported with its signal; the thread goes on.
graft_fails 1 apply "$T/crash.graft" --pid "$pid"
[[ $GRAFT_ERROR == *"pre_patch callback \`pre' of patch crash"*"crashed with SIGSEGV"*"fault address 0x8"* ]] ||
  fail "the crash is not explained: $GRAFT_ERROR"
assert_untouched "$pid"
expect L version 1
[[ $(ask L total) -gt 0 ]] || fail "the target does not work after the crashed callback"

# A pre_patch that never returns: interrupted at the timeout, restored.
graft_fails 1 apply "$T/hang.graft" --pid "$pid" --timeout 1
[[ $GRAFT_ERROR == *"pre_patch callback \`pre' of patch hang"*"did not return in time"* ]] ||
  fail "the hang is not explained: $GRAFT_ERROR"
assert_untouched "$pid"
expect L version 1

# The switch fails after pre_patch: post_unpatch runs, nothing is left.
ask L clear >/dev/null
graft_fails 1 apply "$T/stuck.graft" --pid "$pid" --timeout 1
[[ $GRAFT_ERROR == *"inside function \`worker"* ]] || fail "the timeout is not explained: $GRAFT_ERROR"
expect L log "pre_patch,post_unpatch,"
assert_untouched "$pid"

# A post_patch that never returns: the patch is in, with a note.
graft_ok apply "$T/slow_post.graft" --pid "$pid" --timeout 1
grep -q "note: post_patch callback \`post' of patch slow_post.*did not return in time" "$T/graft.out" ||
  fail "no note about the post_patch that hung"
expect L version 2
graft_ok revert slow_post --pid "$pid"
expect L version 1
assert_untouched "$pid"
expect L tid "$pid"
stop_target L
