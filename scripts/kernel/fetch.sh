#!/usr/bin/env bash
# Fetch and unpack what the kernel test machine needs, once: a Debian kernel
# image with its headers and Kbuild scripts, busybox-static for the guest, and
# qemu-system-x86 on the host. Cached in $GRAFT_KERNEL_CACHE (scripts/kernel/lib.sh);
# a second run only checks. Prints the unpacked root on success.
#
#   scripts/kernel/fetch.sh [RELEASE VERSION]
#     RELEASE  kernel release, e.g. 6.1.0-47-cloud-amd64 (default: lib.sh)
#     VERSION  its Debian package version, e.g. 6.1.170-3
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
release=${1:-$GRAFT_KERNEL_RELEASE}
version=${2:-$GRAFT_KERNEL_VERSION}
[[ $release =~ ^[0-9]+\.[0-9]+\.[0-9]+-[0-9]+-[a-z0-9-]+$ ]] || kernel_die "bad release: $release"
flavour_common=${release%%-[a-z]*}-common   # 6.1.0-47-common
series=${release%%.[0-9]-*}                  # 6.1
root=$(kernel_root "$release")
log=$GRAFT_KERNEL_CACHE/fetch.log
mkdir -p "$GRAFT_KERNEL_CACHE/debs"
export DEBIAN_FRONTEND=noninteractive

if [[ -f $root/.ready && -f $(kernel_vmlinux "$release") ]] && command -v qemu-system-x86_64 >/dev/null; then
  echo "$root"
  exit 0
fi

if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "fetch: installing qemu-system-x86" >&2
  apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends qemu-system-x86 \
    </dev/null >>"$log" 2>&1 || kernel_die "apt-get install qemu-system-x86 failed (see $log)"
fi

# apt-get download, retried once after refreshing the package lists.
download() {
  (cd "$GRAFT_KERNEL_CACHE/debs" && apt-get download "$@" </dev/null >>"$log" 2>&1) && return 0
  apt-get update </dev/null >>"$log" 2>&1 || true
  (cd "$GRAFT_KERNEL_CACHE/debs" && apt-get download "$@" </dev/null >>"$log" 2>&1)
}
have_deb() { compgen -G "$GRAFT_KERNEL_CACHE/debs/${1}_*.deb" >/dev/null; }

for p in "linux-image-$release-unsigned" "linux-image-$release-dbg" "linux-headers-$release" \
         "linux-headers-$flavour_common"; do
  if ! compgen -G "$GRAFT_KERNEL_CACHE/debs/${p}_${version}_*.deb" >/dev/null; then
    echo "fetch: downloading $p=$version" >&2
    download "$p=$version" || kernel_die "cannot download $p=$version (see $log)"
  fi
done
# The archive keeps only the newest linux-kbuild of a series; any of them
# builds modules for every kernel of the series.
if ! have_deb "linux-kbuild-$series"; then
  echo "fetch: downloading linux-kbuild-$series" >&2
  download "linux-kbuild-$series" || kernel_die "cannot download linux-kbuild-$series (see $log)"
fi
if ! have_deb busybox-static; then
  echo "fetch: downloading busybox-static" >&2
  download busybox-static || kernel_die "cannot download busybox-static (see $log)"
fi

tmp=$root.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
for deb in "$GRAFT_KERNEL_CACHE"/debs/linux-image-"$release"-unsigned_"$version"_*.deb \
           "$GRAFT_KERNEL_CACHE"/debs/linux-headers-"$release"_"$version"_*.deb \
           "$GRAFT_KERNEL_CACHE"/debs/linux-headers-"$flavour_common"_"$version"_*.deb \
           "$(ls -1 "$GRAFT_KERNEL_CACHE"/debs/linux-kbuild-"$series"_*.deb | sort -V | tail -n1)" \
           "$(ls -1 "$GRAFT_KERNEL_CACHE"/debs/busybox-static_*.deb | sort -V | tail -n1)"; do
  dpkg-deb -x "$deb" "$tmp"
done
# /boot/System.map of the image package is a placeholder; the real one (the
# addresses graft builds and checks patches against) is in the -dbg package,
# the only file taken from it.
map=./usr/lib/debug/boot/System.map-$release
dpkg-deb --fsys-tarfile "$GRAFT_KERNEL_CACHE"/debs/linux-image-"$release"-dbg_"$version"_*.deb |
  tar -x -C "$tmp" "$map" || kernel_die "no $map in linux-image-$release-dbg"
mv "$tmp/$map" "$tmp/boot/System.map-$release"
rm -rf "$tmp/usr/lib/debug"
# The flavour's Makefile includes the common one by its absolute /usr/src
# path; point it at the unpacked copy instead.
headers=$tmp/usr/src/linux-headers-$release
[[ -f $headers/Makefile ]] || kernel_die "no $headers/Makefile in the headers package"
echo "include $root/usr/src/linux-headers-$flavour_common/Makefile" >"$headers/Makefile"
rm -rf "$root"
mv "$tmp" "$root"

# The decompressed image: graft reads the patched functions' original bytes
# from it (the run-pre check). The bzImage payload is one compressed stream;
# try each offset where a known compressor's magic appears until one yields
# an ELF file (as the kernel's scripts/extract-vmlinux does).
vmlinux=$(kernel_vmlinux "$release")
vmlinuz=$root/boot/vmlinuz-$release
extracted=0
for pair in "02214c18:lz4 -dc" "fd377a585a00:xz -dc" "1f8b0800:gzip -dc" "28b52ffd:zstd -dc"; do
  magic=${pair%%:*}
  for pos in $(od -An -v -tx1 "$vmlinuz" | tr -d ' \n' | grep -ob "$magic" | cut -d: -f1); do
    (( pos % 2 == 0 )) || continue
    tail -c +$((pos / 2 + 1)) "$vmlinuz" | ${pair#*:} >"$vmlinux.tmp" 2>/dev/null || true
    if [[ $(head -c4 "$vmlinux.tmp" | od -An -tx1 | tr -d ' ') == 7f454c46 ]]; then
      mv "$vmlinux.tmp" "$vmlinux"
      extracted=1
      break 2
    fi
  done
done
rm -f "$vmlinux.tmp"
(( extracted )) || kernel_die "cannot decompress $vmlinuz"
touch "$root/.ready"
echo "$root"
