#!/usr/bin/env bash
# Stacking: patch A, then patch B, replace the same function; B is active.
# Reverting A then B, and (in a second process) B then A: at every step the
# newest patch still applied is the code that runs, and at the end the
# original.
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
for p in a:1000 b:2000; do
  name=${p%%:*} add=${p#*:}
  cat >"$T/patch_$name.c" <<C
#include <graft/patch.h>
extern int counter;
static int compute_$name(int x) { counter++; return $add + x; }
GRAFT_REPLACE(compute, compute_$name);
C
  build_patch "$T/patch_$name.c" "$T/basic" "$T/patch_$name.graft"
done

# order LABEL FIRST SECOND: apply a then b, then revert FIRST, then SECOND.
order() {
  local label=$1 first=$2 second=$3 pid
  start_target $label "$T/basic"
  pid=${TPID[$label]}
  [[ $(ask $label call) == "7 "* ]] || fail "$label: not the original compute"

  apply_ok "$T/patch_a.graft" "$pid"
  [[ $(ask $label call) == "1003 "* ]] || fail "$label: patch a is not active"
  apply_ok "$T/patch_b.graft" "$pid"
  [[ $(ask $label call) == "2003 "* ]] || fail "$label: patch b is not active on top of a"
  graft_ok list --pid "$pid" --json
  [[ $(json_get '[(p["name"], p["seq"], p["state"]) for p in j["processes"][0]["patches"]]' <"$T/graft.out") == \
     '[["patch_a", 1, "applied"], ["patch_b", 2, "applied"]]' ]] || fail "$label: unexpected stack"

  # Applying the same patch twice is refused.
  graft_fails 1 apply "$T/patch_b.graft" --pid "$pid"
  [[ $GRAFT_ERROR == *"already applied"* ]] || fail "$label: no \`already applied': $GRAFT_ERROR"
  [[ $(ask $label call) == "2003 "* ]] || fail "$label: patch b is not active any more"

  graft_ok revert patch_$first --pid "$pid"
  assert_no_wx "$pid"
  local left=b
  [[ $first == b ]] && left=a
  local want=$([[ $left == a ]] && echo 1003 || echo 2003)
  [[ $(ask $label call) == "$want "* ]] ||
    fail "$label: after reverting $first, patch $left should be active: $(ask $label call)"
  [[ $(patch_count "$pid") -eq 1 ]] || fail "$label: graft list should show one patch"
  log "$label: reverted $first, $left active"

  graft_ok revert patch_$second --pid "$pid"
  [[ $(ask $label call) == "7 "* ]] || fail "$label: not the original compute at the end"
  assert_untouched "$pid"
  log "$label: reverted $second, original active"
  # The patches counted their calls; the original code does not.
  local c1 c2
  c1=$(ask $label call)
  sleep 0.05
  c2=$(ask $label call)
  [[ $c1 == "$c2" && ${c1#7 } -ge 4 ]] || fail "$label: counter: $c1 then $c2"
  stop_target $label
}

order a_then_b a b
order b_then_a b a
