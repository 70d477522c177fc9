#!/usr/bin/env bash
# Code mapped while graft waits: a thread is inside the function being
# replaced when graft first stops the process, then leaves it, dlopens a
# library and runs in it. graft's retries must unwind through the new
# library (its unwind tables were not mapped at the first stop) and apply,
# in the stop and the hybrid model; neither may call the stack uncheckable.
# (A process patched by the daemon just after its exec meets this: the
# dynamic loader maps libc after graft's first look.)
source "$(dirname "$0")/common.sh"

cat >"$T/slow.c" <<'C'
#include <time.h>
int slow(int ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&t, &t) != 0) {
  }
  return 1;
}
C
cat >"$T/late.c" <<'C'
#include <time.h>
/* Sleeps in a loop, called from its own frames: a stack through late.so. */
__attribute__((noinline)) static void nap(void) {
  struct timespec t = {0, 200000};
  nanosleep(&t, 0);
}
void late_loop(void) {
  for (;;) nap();
}
C
cat >"$T/main.c" <<'C'
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>
int slow(int ms);
int main(int argc, char **argv) {
  printf("inside slow %d\n", (int)getpid());
  fflush(stdout);
  slow(1500);
  void *h = dlopen(argv[1], RTLD_NOW);
  if (!h) return 2;
  void (*loop)(void) = (void (*)(void))dlsym(h, "late_loop");
  if (!loop) return 3;
  loop();
  return 0;
}
C
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_slow(int ms) { return ms * 0 + 2; }
GRAFT_REPLACE(slow, new_slow);
C
cc -shared -fPIC "$T/slow.c" -o "$T/libslow.so"
cc -shared -fPIC "$T/late.c" -o "$T/late.so"
cc "$T/main.c" -L"$T" -lslow -Wl,-rpath,"$T" -ldl -o "$T/main"
build_patch "$T/fix.c" "$T/libslow.so" "$T/fix.graft"

for model in stop hybrid; do
  "$T/main" "$T/late.so" >"$T/main.$model.out" &
  pid=$!
  bg_track $pid
  wait_until 10 grep -q "^inside slow" "$T/main.$model.out" || fail "the target did not start"
  grep -q "late.so" "/proc/$pid/maps" && fail "late.so is mapped before the apply"
  start=$SECONDS
  graft apply "$T/fix.graft" --pid "$pid" --model $model --timeout 20 ||
    fail "$model: graft apply failed while the thread moved into newly mapped code: $(cat "$T/graft.err")"
  grep -q "late.so" "/proc/$pid/maps" || fail "$model: late.so was never mapped: the case was not tested"
  grep -q "no unwind information" "$T/graft.out" "$T/graft.err" &&
    fail "$model: graft reported code it could not unwind"
  log "$model: applied after $((SECONDS - start)) s"
  graft_ok revert fix --pid "$pid" --model $model
  kill "$pid"
done
log "ok"
