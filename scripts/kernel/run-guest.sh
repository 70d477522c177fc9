#!/usr/bin/env bash
# Boot a Debian kernel in QEMU (TCG) with a busybox initramfs, run one test
# script inside it, power off, and exit with the script's exit status.
#
#   scripts/kernel/run-guest.sh [options] TEST.sh [-- ARGS...]
#     --graft BIN        put this graft binary (and the shared libraries ldd
#                        finds for it) into the guest as /bin/graft
#     --file SRC[:DEST]  copy a file into the guest (DEST defaults to
#                        /test/BASENAME); repeatable
#     --release R        kernel release (default: scripts/kernel/lib.sh)
#     --smp N            virtual CPUs (default 1)
#     --memory MB        guest memory (default 512)
#     --append ARGS      more kernel command-line arguments (e.g. nokaslr)
#     --timeout S        give up after S seconds (default 600): exit 124
#     --log FILE         keep the serial console output here
#     --quiet            do not echo the console while the guest runs
#
# Inside the guest TEST.sh runs as root from /test, with /proc, /sys, /dev
# and /tmp mounted and busybox's applets in PATH. Its exit status is printed
# on the serial console as GRAFT-GUEST-EXIT=N and becomes this script's.
# A guest that never reports (panic, hang) makes this script exit 125, or 124
# on the time-out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

graft=""
files=()
release=$GRAFT_KERNEL_RELEASE
smp=1
memory=512
append=""
timeout_s=600
log=""
quiet=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --graft) graft=$2; shift 2 ;;
    --file) files+=("$2"); shift 2 ;;
    --release) release=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --memory) memory=$2; shift 2 ;;
    --append) append=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --quiet) quiet=1; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    -*) kernel_die "unknown option $1" ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || kernel_die "usage: run-guest.sh [options] TEST.sh [-- ARGS...]"
test_script=$1
shift
[[ ${1:-} == -- ]] && shift
[[ -f $test_script ]] || kernel_die "no test script $test_script"

root=$("$here/fetch.sh" "$release")
vmlinuz=$root/boot/vmlinuz-$release
busybox=$root/bin/busybox

work=$(mktemp -d /tmp/graft-guest.XXXXXX)
qemu_pid=""
cleanup() {
  if [[ -n $qemu_pid ]]; then kill "$qemu_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
img=$work/initramfs
mkdir -p "$img"/{bin,dev,proc,sys,tmp,test,etc,lib64}

cp "$busybox" "$img/bin/busybox"
add_with_libs() {   # BINARY DEST
  cp "$1" "$img$2"
  local lib
  # ldd prints "name => /path (addr)" and "/lib64/ld-linux-x86-64.so.2 (addr)".
  for lib in $(ldd "$1" | grep -o '/[^ ]*'); do
    [[ -f $lib ]] || continue
    mkdir -p "$img$(dirname "$lib")"
    cp -L "$lib" "$img$lib"
  done
}
if [[ -n $graft ]]; then
  [[ -x $graft ]] || kernel_die "no graft binary $graft"
  add_with_libs "$graft" /bin/graft
fi
for f in "${files[@]}"; do
  src=${f%%:*}
  dest=/test/$(basename "$src")
  [[ $f == *:* ]] && dest=${f#*:}
  [[ -e $src ]] || kernel_die "no file $src"
  mkdir -p "$img$(dirname "$dest")"
  cp -r "$src" "$img$dest"
done
cp "$test_script" "$img/test/run.sh"
printf '%s\n' "$@" >"$img/test/args"

cat >"$img/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "GRAFT-GUEST-START $(uname -r) $(cat /proc/sys/kernel/tainted)"
cd /test
set --
while IFS= read -r a; do [ -n "$a" ] && set -- "$@" "$a"; done </test/args
sh /test/run.sh "$@" </dev/null
rc=$?
echo "GRAFT-GUEST-EXIT=$rc"
sync
poweroff -f
INIT
chmod +x "$img/init"
(cd "$img" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initramfs.cpio.gz"

out=${log:-$work/console.log}
: >"$out"
start=$(date +%s.%N)
# panic=-1 with -no-reboot: a kernel panic ends QEMU at once.
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu max -smp "$smp" -m "$memory" \
  -display none -monitor none -serial stdio -no-reboot \
  -kernel "$vmlinuz" -initrd "$work/initramfs.cpio.gz" \
  -append "console=ttyS0 panic=-1 oops=panic loglevel=4 $append" </dev/null >"$out" 2>&1 &
qemu_pid=$!
if (( ! quiet )); then
  tail -n +1 -f "$out" --pid="$qemu_pid" &
fi
status=0
wait "$qemu_pid" || status=$?
qemu_pid=""
wait 2>/dev/null || true
end=$(date +%s.%N)
elapsed=$(echo "$end - $start" | bc 2>/dev/null || echo "?")
if [[ $status -eq 124 || $status -eq 137 ]]; then
  echo "run-guest: timed out after ${timeout_s}s" >&2
  exit 124
fi
rc=$(tr -d '\r' <"$out" | sed -n 's/^GRAFT-GUEST-EXIT=\([0-9]*\)$/\1/p' | tail -n1)
if [[ -z $rc ]]; then
  echo "run-guest: the guest ended without reporting (qemu status $status); console:" >&2
  tail -n 40 "$out" >&2
  exit 125
fi
echo "run-guest: guest exit status $rc after ${elapsed}s" >&2
exit "$rc"
