#!/usr/bin/env bash
# The Ansible collection (ansible/ansible_collections/graft/fleet) against
# three inventory hosts on this machine (local connection; each "host" has
# its own store, its own target library and its own two processes):
# check mode changes nothing; stage canary stores the signed patches on
# every host pinned to tag canary and applies them on the canary host only;
# the fleet report lists the two other hosts as vulnerable; stage all
# applies everywhere; re-running a stage reports changed=0 on every host.
# ctest-timeout: 400
source "$(dirname "$0")/common.sh"

command -v ansible-playbook >/dev/null || fail "ansible-playbook is not installed (scripts/test.sh installs ansible-core)"
export ANSIBLE_COLLECTIONS_PATH=$REPO_ROOT/ansible ANSIBLE_HOME=$T/ansible-home ANSIBLE_LOCAL_TEMP=$T/ansible-tmp \
  ANSIBLE_NOCOLOR=1 ANSIBLE_FORKS=3 ANSIBLE_HOST_KEY_CHECKING=0 ANSIBLE_RETRY_FILES_ENABLED=0

cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
extern int foo_calls;
int foo_scale(int x);
static int new_foo_compute(int x) {
  __atomic_add_fetch(&foo_calls, 1, __ATOMIC_RELAXED);
  return foo_scale(x) * 50;
}
GRAFT_REPLACE(foo_compute, new_foo_compute);
C
graft_ok keygen -o "$T/release" --name release
printf '{"require_signature": true, "trusted_keys": ["%s"], "audit_log": "%s"}\n' "$T/release.pub" "$T/audit.log" >"$T/policy"
mkdir "$T/patches"
hosts=(h1 h2 h3)
for h in "${hosts[@]}"; do
  mkdir "$T/$h"
  cc -shared -fPIC -DFOO_TAG="\"$h-$$-$RANDOM-$(date +%s%N)\"" "$PROGRAMS/libfoo.c" -o "$T/$h/libfoo.so"
  cc -pthread "$PROGRAMS/libmain.c" -L"$T/$h" -lfoo -Wl,-rpath,"$T/$h" -o "$T/$h/libmain"
  build_patch "$T/fix.c" "$T/$h/libfoo.so" "$T/patches/fix-$h.graft" --name "fix-$h"
  graft_ok sign "$T/patches/fix-$h.graft" --key "$T/release.key"
  start_target "${h}a" "$T/$h/libmain"
  start_target "${h}b" "$T/$h/libmain"
done

host_line() {
  echo "$1 graft_store_dir=$T/$1/store graft_incoming=$T/$1/incoming graft_patches='[\"$T/patches/fix-$1.graft\"]'"
}
{
  echo "[canary]"; host_line h1
  echo "[rest]"; host_line h2; host_line h3
  echo "[all:vars]"
  echo "ansible_connection=local"
  echo "ansible_python_interpreter=/usr/bin/python3"
  echo "graft_binary=$(readlink -f "$GRAFT")"
  echo "graft_policy=$T/policy"
  echo "graft_report=$T/report.json"
} >"$T/inventory"

# play STAGE [ansible-playbook options]: runs the collection's playbook; the
# PLAY RECAP is left in $T/recap.
play() {
  local stage=$1 rc=0
  shift
  log "\$ ansible-playbook graft.fleet.rollout -e graft_stage=$stage $*"
  ansible-playbook -i "$T/inventory" graft.fleet.rollout -e "graft_stage=$stage" "$@" >"$T/play.log" 2>&1 || rc=$?
  sed -n '/PLAY RECAP/,$p' "$T/play.log" | tee "$T/recap" | sed 's/^/    | /'
  if [[ $rc -ne 0 ]]; then
    tail -40 "$T/play.log"
    fail "ansible-playbook (stage $stage) failed (exit $rc)"
  fi
}
changed_on() { awk -v h="$1" '$1 == h { for (i = 1; i <= NF; i++) if ($i ~ /^changed=/) { sub("changed=", "", $i); print $i } }' "$T/recap"; }
answers() { for t in "$@"; do ask "$t" call | cut -d' ' -f1; done | sort -u | paste -sd' '; }

# Check mode: would change, changes nothing.
play canary --check
[[ $(changed_on h1) -gt 0 ]] || fail "check mode reports no change for h1"
for h in "${hosts[@]}"; do
  [[ ! -d $T/$h/store || -z $(ls "$T/$h/store") ]] || fail "check mode stored a patch on $h"
done
[[ $(answers h1a h1b h2a h2b h3a h3b) == 7 ]] || fail "check mode patched a process"

# Stage canary: the canary host only.
play canary
[[ $(answers h1a h1b) == 300 ]] || fail "the canary's processes are not patched"
[[ $(answers h2a h2b h3a h3b) == 7 ]] || fail "a host outside the canary group was patched"
for h in "${hosts[@]}"; do
  "$GRAFT" store list --store "$T/$h/store" --json >"$T/list.json"
  [[ $(json_get '[[p["name"], p["tag"]] for p in j["patches"]]' <"$T/list.json") == "[[\"fix-$h\", \"canary\"]]" ]] ||
    fail "$h's store: $(cat "$T/list.json")"
done
cat "$T/report.json"
[[ $(json_get 'j["vulnerable_hosts"]' <"$T/report.json") == '["h2", "h3"]' ]] || fail "the fleet report's vulnerable hosts"
[[ $(json_get 'len(j["hosts"]["h2"]["vulnerable"])' <"$T/report.json") == 2 ]] || fail "h2's vulnerable processes"
play canary
for h in "${hosts[@]}"; do [[ $(changed_on $h) == 0 ]] || fail "re-running stage canary changed $h"; done

# Stage all: every host.
play all
[[ $(answers h1a h1b h2a h2b h3a h3b) == 300 ]] || fail "stage all did not patch every process"
[[ $(json_get 'j["vulnerable_hosts"]' <"$T/report.json") == '[]' ]] || fail "the fleet report still lists vulnerable hosts"
play all
for h in "${hosts[@]}"; do [[ $(changed_on $h) == 0 ]] || fail "re-running stage all changed $h"; done

# A patch the policy refuses fails the play, with the reason.
cp "$T/patches/fix-h2.graft" "$T/patches/unsigned.graft"
build_patch "$T/fix.c" "$T/h2/libfoo.so" "$T/patches/unsigned.graft" --name unsigned
sed -i "s|^h2 .*|$(host_line h2 | sed "s|fix-h2.graft|unsigned.graft|")|" "$T/inventory"
rc=0; ansible-playbook -i "$T/inventory" graft.fleet.rollout -e graft_stage=all --limit h2 >"$T/play.log" 2>&1 || rc=$?
[[ $rc -ne 0 ]] || fail "an unsigned patch did not fail the play"
grep -q "refused.*unsigned" "$T/play.log" || { tail -20 "$T/play.log"; fail "the failure does not say the patch is unsigned"; }
log "an unsigned patch is refused: $(grep -o 'refused[^"]*' "$T/play.log" | head -1)"
