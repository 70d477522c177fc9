#!/usr/bin/env bash
# One target (programs/matrix.c: a tail call, a jump table, recursion, a
# 4-byte function; worker threads check every result) built the ways real
# programs are: PIE, glibc -static, musl (dynamic and -static),
# -fcf-protection (endbr64), frame pointers forced off at -O3, LTO. musl
# has no unwind tables: graft refuses, and says why. Each other
# build: the patch is applied and reverted in the three models (the
# workers never see a wrong result, the main thread sees the patched and
# then the original code), the 4-byte function is patched or refused with
# its name, then MATRIX_CYCLES apply/revert cycles leave nothing behind: no
# growth of the target's mappings, open files or resident memory.
# ctest-timeout: 900
source "$(dirname "$0")/common.sh"

CYCLES=${MATRIX_CYCLES:-15}
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
extern int fixed_calls;
int leaf(int x);
int recurse(int n);
static int new_tail(int x) { return leaf(x + 1) + 1000000; }
static int new_table(int x) {
  int r;
  switch (x & 15) {
    case 0: r = x * 3; break;
    case 1: r = x + 7; break;
    case 2: r = x ^ 5; break;
    case 3: r = x - 9; break;
    case 4: r = x << 2; break;
    case 5: r = x >> 1; break;
    case 6: r = x * x; break;
    case 7: r = ~x; break;
    case 8: r = x | 8; break;
    case 9: r = x & 12; break;
    case 10: r = 100 - x; break;
    case 11: r = x * 7 + 1; break;
    case 12: r = x / 3; break;
    case 13: r = x % 5; break;
    case 14: r = x * 11; break;
    default: r = x + x / 2; break;
  }
  return r + 1000000;
}
static int new_recurse(int n) {
  __atomic_add_fetch(&fixed_calls, 1, __ATOMIC_RELAXED);
  return n < 2 ? n : recurse(n - 1) + recurse(n - 2);
}
GRAFT_REPLACE(tail, new_tail);
GRAFT_REPLACE(table, new_table);
GRAFT_REPLACE(recurse, new_recurse);
C
cat >"$T/small.c" <<'C'
#include <graft/patch.h>
static int new_small(int x) { return x + 2; }
GRAFT_REPLACE(small, new_small);
C

# footprint PID: mappings, open files, resident KiB.
footprint() {
  echo "$(wc -l <"/proc/$1/maps") $(ls "/proc/$1/fd" | wc -l) $(awk '/^VmRSS/ {print $2}' "/proc/$1/status")"
}

check_probe() {
  local name=$1 want=$2 got
  got=$(ask "$name" probe)
  [[ ${got% *} == "$want" ]] || fail "$name: probe answered \`$got', expected \`$want FIXED_CALLS'"
  printf '%s\n' "${got##* }"
}

variants=(${MATRIX_VARIANTS:-pie glibc-static musl musl-static cet nofp-o3 lto})
have_musl=1
command -v musl-gcc >/dev/null || { have_musl=0; log "musl-gcc is missing (apt-get install musl-tools)"; }
for v in "${variants[@]}"; do
  log "=== $v"
  compiler=$CC
  flags=(-pthread)
  case $v in
    glibc-static) flags+=(-static) ;;
    musl) compiler=musl-gcc ;;
    musl-static) compiler=musl-gcc flags+=(-static) ;;
    cet) flags+=(-fcf-protection=full) ;;
    nofp-o3) flags+=(-O3 -fomit-frame-pointer) ;;
    lto) flags+=(-flto=auto) ;;
  esac
  if [[ $compiler == musl-gcc && $have_musl == 0 ]]; then
    fail "$v: musl-gcc is not installed (scripts/test.sh installs musl-tools)"
  fi
  "$compiler" "${CFLAGS[@]}" "${flags[@]}" "$PROGRAMS/matrix.c" -o "$T/matrix-$v" || fail "$v: cannot build the target"
  # The shapes are really there.
  objdump -d --no-show-raw-insn "$T/matrix-$v" | awk '/<table(\.[a-z_]+\.[0-9]+)?>:/,/^$/' | grep -q 'jmp *\*' ||
    fail "$v: table() has no jump table"
  objdump -d --no-show-raw-insn "$T/matrix-$v" | awk '/<tail(\.[a-z_]+\.[0-9]+)?>:/,/^$/' | grep -q 'jmp .*<leaf' ||
    fail "$v: tail() is no tail call"
  build_patch "$T/fix.c" "$T/matrix-$v" "$T/fix-$v.graft"
  start_target $v "$T/matrix-$v"
  pid=${TPID[$v]}
  check_probe $v "19 -6 144 6" >/dev/null

  if [[ $compiler == musl-gcc ]]; then
    # musl is built without unwind tables: a thread in its code (every
    # worker, in nanosleep) has a stack graft cannot check. The stop model
    # refuses, naming musl's code, the process untouched. The per-thread
    # models refuse too; their gates were in place, and graft keeps the
    # patch region mapped, saying so, since it cannot prove that no
    # interrupted frame returns into it.
    graft_fails 1 apply "$T/fix-$v.graft" --pid "$pid" --model stop --timeout 1
    [[ $GRAFT_ERROR == *"no unwind information"* && $GRAFT_ERROR == *musl* ]] ||
      fail "$v: the refusal does not say that musl's code has no unwind information: $GRAFT_ERROR"
    assert_untouched "$pid"
    log "$v: refused, as it must be: $GRAFT_ERROR"
    "$GRAFT" apply "$T/fix-$v.graft" --pid "$pid" --model hybrid --timeout 1 >"$T/hybrid.out" 2>&1 &&
      fail "$v: hybrid applied without checking the threads' stacks"
    grep -q "no unwind information.*musl" "$T/hybrid.out" ||
      fail "$v: hybrid does not say why it cannot: $(cat "$T/hybrid.out")"
    check_probe $v "19 -6 144 6" >/dev/null
    wrong=$(ask $v wrong)
    [[ $wrong -eq 0 ]] || fail "$v: the workers saw $wrong wrong results"
    stop_target $v
    continue
  fi

  for model in stop hybrid lazy; do
    graft_ok apply "$T/fix-$v.graft" --pid "$pid" --model $model
    assert_no_wx "$pid"
    c1=$(check_probe $v "1000019 999994 144 6")
    c2=$(check_probe $v "1000019 999994 144 6")
    [[ $c2 -gt $c1 ]] || fail "$v/$model: the patched recurse does not count its calls ($c1, $c2)"
    graft_ok revert "fix-$v" --pid "$pid" --model $model
    c1=$(check_probe $v "19 -6 144 6")
    c2=$(check_probe $v "19 -6 144 6")
    [[ $c2 -eq $c1 ]] || fail "$v/$model: the patched recurse still runs after the revert"
    assert_untouched "$pid"
  done

  # The 4-byte function (8 with endbr64): patched, or refused with its name.
  if graft build --from-source "$T/small.c" --target "$T/matrix-$v" -o "$T/small-$v.graft"; then
    if graft apply "$T/small-$v.graft" --pid "$pid"; then
      check_probe $v "19 -6 144 7" >/dev/null
      graft_ok revert "small-$v" --pid "$pid"
      check_probe $v "19 -6 144 6" >/dev/null
      log "$v: small() patched and reverted"
    else
      msg=$(cat "$T/graft.out" "$T/graft.err")
      [[ $msg == *small* ]] || fail "$v: refusing small(), graft does not name it: $msg"
      log "$v: small() refused at apply: $msg"
      assert_untouched "$pid"
    fi
  else
    msg=$(cat "$T/graft.out" "$T/graft.err")
    [[ $msg == *small* && $msg == *bytes* ]] || fail "$v: refusing to build small(), graft does not say why: $msg"
    log "$v: small() refused: $msg"
  fi

  # Cycles: nothing left behind. The first cycle may fault pages in.
  graft_ok apply "$T/fix-$v.graft" --pid "$pid"
  graft_ok revert "fix-$v" --pid "$pid"
  read -r maps0 fds0 rss0 < <(footprint "$pid")
  for ((i = 0; i < CYCLES; i++)); do
    "$GRAFT" apply "$T/fix-$v.graft" --pid "$pid" >"$T/cycle.out" 2>&1 || fail "$v: cycle $i: apply failed: $(cat "$T/cycle.out")"
    "$GRAFT" revert "fix-$v" --pid "$pid" >"$T/cycle.out" 2>&1 || fail "$v: cycle $i: revert failed: $(cat "$T/cycle.out")"
  done
  read -r maps1 fds1 rss1 < <(footprint "$pid")
  log "$v: $CYCLES cycles: mappings $maps0 -> $maps1, fds $fds0 -> $fds1, RSS $rss0 -> $rss1 KiB"
  [[ $maps1 -le $maps0 ]] || fail "$v: the target's mappings grew from $maps0 to $maps1: $(cat "/proc/$pid/maps")"
  [[ $fds1 -le $fds0 ]] || fail "$v: the target's open files grew from $fds0 to $fds1"
  # Resident memory: the workers' stacks and malloc arenas settle in the
  # first cycles; graft must not add a page per cycle.
  [[ $rss1 -le $((rss0 + 64)) ]] || fail "$v: the target's RSS grew from $rss0 to $rss1 KiB"
  assert_untouched "$pid"
  wrong=$(ask $v wrong)
  [[ $wrong -eq 0 ]] || fail "$v: the workers saw $wrong wrong results"
  loops=$(ask $v loops)
  log "$v: ok ($loops worker calls, 0 wrong)"
  stop_target $v
done
log "ok"
