#!/usr/bin/env bash
# Fetch and unpack the source of a Debian kernel version once, with Debian's
# own patches applied (dpkg-source -x applies debian/patches/series), for
# graft build --kernel --from-diff. Cached in $GRAFT_KERNEL_CACHE/src/
# (scripts/kernel/lib.sh), outside any clone; a second run only checks.
# Installs what building kernel objects needs (flex, bison, dwarves, bc,
# libelf-dev, libssl-dev) and enables the archive's deb-src entries if
# apt has none. Prints the source tree on success.
#
#   scripts/kernel/fetch-source.sh [VERSION]
#     VERSION  Debian package version of linux, e.g. 6.1.170-3 (default: lib.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
version=${1:-$GRAFT_KERNEL_VERSION}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+-[0-9]+$ ]] || kernel_die "bad version: $version"
dir=$(kernel_source "$version")
src=$GRAFT_KERNEL_CACHE/src
log=$src/fetch-source.log
mkdir -p "$src"
export DEBIAN_FRONTEND=noninteractive

need=()
for t in flex:flex bison:bison pahole:dwarves bc:bc dpkg-source:dpkg-dev xz:xz-utils patch:patch make:make; do
  command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
[[ -f /usr/include/libelf.h ]] || need+=(libelf-dev)
[[ -f /usr/include/openssl/ssl.h ]] || need+=(libssl-dev)
if (( ${#need[@]} )); then
  echo "fetch-source: installing ${need[*]}" >&2
  apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need[@]}" </dev/null >>"$log" 2>&1 ||
    kernel_die "apt-get install ${need[*]} failed (see $log)"
fi

if [[ -f $dir/.ready ]]; then
  echo "$dir"
  exit 0
fi

upstream=${version%-*}
if ! [[ -f $src/linux_$version.dsc && -f $src/linux_$upstream.orig.tar.xz ]]; then
  if ! apt-get source --print-uris "linux=$version" </dev/null >/dev/null 2>&1; then
    # No deb-src entry: add the archive's (the same mirrors as the deb entries).
    list=/etc/apt/sources.list.d/graft-deb-src.sources
    echo "fetch-source: adding deb-src entries in $list" >&2
    cat >"$list" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update </dev/null >>"$log" 2>&1 || true
  fi
  echo "fetch-source: downloading linux=$version (about 140 MB)" >&2
  (cd "$src" && apt-get source --download-only "linux=$version" </dev/null >>"$log" 2>&1) ||
    kernel_die "cannot download the source of linux=$version (see $log)"
fi

echo "fetch-source: unpacking linux=$version with Debian's patches" >&2
rm -rf "$dir" "$dir.tmp"
dpkg-source --no-check -x "$src/linux_$version.dsc" "$dir.tmp" >>"$log" 2>&1 ||
  kernel_die "dpkg-source -x linux_$version.dsc failed (see $log)"
# The source as dpkg-source leaves it, plus its quilt bookkeeping, which a
# kernel build ignores; the debian/ directory stays for reference.
mv "$dir.tmp" "$dir"
touch "$dir/.ready"
echo "$dir"
