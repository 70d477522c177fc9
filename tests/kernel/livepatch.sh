#!/usr/bin/env bash
# Kernel live patching end to end, in a QEMU guest booting Debian's 6.1.170
# cloud kernel (KASLR on): graft builds the modules of tests/kernel/patches
# on the host, then inside the guest (guest_livepatch.sh)
#  - a policy requiring signatures refuses an unsigned module, one signed by
#    an untrusted key and one altered after signing, and applies the module
#    signed by the trusted key (graft sign); a module whose recorded
#    code was altered is refused by the run-pre check; quota_warning's
#    absolute addresses are accepted moved by the KASLR offset;
#  - cmdline_v1 changes /proc/cmdline live; cmdline_v2 stacks on it and is
#    reverted (v1 shows again); the cumulative cmdline_v3 replaces both
#    (their modules are unloaded) and is reverted (the original shows);
#  - nsleep's transition is held by a `sleep` task inside common_nsleep:
#    graft reports it with its stack, graft status shows the transition in
#    progress (exit 1), and the transition completes when the task wakes;
#    the new code runs; callbacks run; revert;
#  - a transition held past --timeout is reversed; with --force it completes.
. "$(dirname "$0")/common.sh"

start=$SECONDS
for p in cmdline_v1 cmdline_v2 cmdline_v3 nsleep quota_warning; do kbuild "$p"; done
echo "built 5 modules in $((SECONDS - start)) s"

# The run-pre check's byte comparison.
tamper_manifest "$WORK/cmdline_v1.ko" "$WORK/tampered.ko"

run_guest "$KTEST_DIR/guest_livepatch.sh" \
  --file "$WORK/cmdline_v1.ko" --file "$WORK/cmdline_v2.ko" --file "$WORK/cmdline_v3.ko" \
  --file "$WORK/nsleep.ko" --file "$WORK/quota_warning.ko" --file "$WORK/tampered.ko"
echo "PASS $TEST_NAME"
