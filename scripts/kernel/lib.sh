# Shared settings of the kernel test machine (sourced by the scripts here).
#
# Everything downloaded or prepared lives outside the clone, in
# $GRAFT_KERNEL_CACHE (default /var/cache/graft/kernel), so that CI runs and
# later builds reuse it. Each kernel release gets a directory of its own:
#
#   $GRAFT_KERNEL_CACHE/debs/                     the .deb files as downloaded
#   $GRAFT_KERNEL_CACHE/RELEASE/root/             the packages unpacked:
#       boot/vmlinuz-RELEASE, boot/System.map-RELEASE, boot/config-RELEASE
#       usr/src/linux-headers-RELEASE/            the Kbuild tree for modules
#       bin/busybox                               the guest's userland
#   $GRAFT_KERNEL_CACHE/RELEASE/vmlinux           the image, decompressed (ELF)

GRAFT_KERNEL_CACHE=${GRAFT_KERNEL_CACHE:-/var/cache/graft/kernel}
# The kernel the tests boot: Debian 12's cloud kernel 6.1.170-3 (ABI 47).
GRAFT_KERNEL_RELEASE=${GRAFT_KERNEL_RELEASE:-6.1.0-47-cloud-amd64}
GRAFT_KERNEL_VERSION=${GRAFT_KERNEL_VERSION:-6.1.170-3}

kernel_root() { echo "$GRAFT_KERNEL_CACHE/$1/root"; }
kernel_headers() { echo "$GRAFT_KERNEL_CACHE/$1/root/usr/src/linux-headers-$1"; }
kernel_vmlinux() { echo "$GRAFT_KERNEL_CACHE/$1/vmlinux"; }

kernel_die() {
  echo "${0##*/}: $*" >&2
  exit 2
}
# The kernel's source, as graft build --kernel --from-diff needs it
# (scripts/kernel/fetch-source.sh): $GRAFT_KERNEL_CACHE/src/linux-VERSION/.
kernel_source() { echo "$GRAFT_KERNEL_CACHE/src/linux-$1"; }
