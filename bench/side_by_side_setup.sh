#!/bin/sh
# bench/side_by_side_setup.sh: fetch and build libpulp (SUSE) and LibCare
# (CloudLinux) in a scratch directory outside the repository, for
# bench/side_by_side.py. Nothing of theirs is vendored in graft.
#
#   bench/side_by_side_setup.sh [--deps] [SCRATCH]
#
# SCRATCH defaults to $GRAFT_BENCH_SCRATCH or /var/cache/graft-bench. Sources
# come from, in order: $LIBPULP_GIT / $LIBCARE_GIT (a git directory or URL),
# the snapshots in /work/.mirror, or a clone from GitHub. --deps first
# installs the Debian build dependencies with apt-get.
#
# Result, under SCRATCH:
#   libpulp/inst/bin/ulp, libpulp/inst/lib/libpulp.so   (make install)
#   libcare/src/src/libcare-ctl, libcare-cc, kpatch_*    (make -C src)
#   versions.txt                                         commit of each
# Builds run under `nice` (the machine is shared). Logs: SCRATCH/*/*.log.
set -eu

deps=
if [ "${1-}" = --deps ]; then deps=1; shift; fi
SCRATCH=$(realpath -m "${1:-${GRAFT_BENCH_SCRATCH:-/var/cache/graft-bench}}")
case "$SCRATCH" in
  "$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || echo /nonexistent)"*)
    echo "side_by_side_setup: $SCRATCH is inside the repository; use a directory outside it" >&2
    exit 2 ;;
esac
mkdir -p "$SCRATCH"

if [ -n "$deps" ]; then
  # libpulp: autotools, libelf, json-c, libseccomp, python3 pexpect/psutil
  # (its configure checks them). LibCare: libelf, libunwind, elfutils'
  # eu-readelf, tput, patch (libcare-patch-make).
  apt-get install -y --no-install-recommends \
    autoconf automake libtool autoconf-archive make gcc g++ pkg-config patch \
    libelf-dev libjson-c-dev libseccomp-dev libunwind-dev elfutils ncurses-bin \
    python3 python3-pexpect python3-psutil
fi

# fetch NAME GITHUB_OWNER/REPO VAR_VALUE DEST: a clean tree of HEAD in DEST
fetch() {
  name=$1 gh=$2 src=$3 dest=$4
  if [ -z "$src" ]; then
    for d in "/work/.mirror/$(echo "$gh" | tr / +)/repo/.git" "/work/.mirror/$(echo "$gh" | tr / +)/repo"; do
      if git --git-dir="$d" rev-parse HEAD >/dev/null 2>&1; then src=$d; break; fi
    done
  fi
  rm -rf "$dest"
  mkdir -p "$dest"
  if [ -n "$src" ] && git --git-dir="$src" rev-parse HEAD >/dev/null 2>&1; then
    git --git-dir="$src" archive HEAD | tar -x -C "$dest"
    rev=$(git --git-dir="$src" log -1 --format='%H %cs')
  else
    url=${src:-https://github.com/$gh}
    tmp=$(mktemp -d)
    git clone -q --depth 1 "$url" "$tmp/repo"
    git -C "$tmp/repo" archive HEAD | tar -x -C "$dest"
    rev=$(git -C "$tmp/repo" log -1 --format='%H %cs')
    rm -rf "$tmp"
  fi
  echo "$name $gh $rev" >> "$SCRATCH/versions.txt.new"
}

rm -f "$SCRATCH/versions.txt.new"

# ---------------------------------------------------------------- libpulp
P=$SCRATCH/libpulp
fetch libpulp SUSE/libpulp "${LIBPULP_GIT-}" "$P/src"
(
  cd "$P/src"
  nice sh bootstrap > "$P/bootstrap.log" 2>&1
  # Debian's python3 (the one with pexpect and psutil), whatever is first in PATH.
  nice ./configure PYTHON=/usr/bin/python3 --prefix="$P/inst" > "$P/configure.log" 2>&1
  nice make -j2 > "$P/make.log" 2>&1
  nice make install > "$P/install.log" 2>&1
) || { echo "side_by_side_setup: libpulp failed to build; see $P/*.log" >&2; exit 1; }
test -x "$P/inst/bin/ulp" && test -e "$P/inst/lib/libpulp.so"

# ---------------------------------------------------------------- LibCare
C=$SCRATCH/libcare
fetch LibCare cloudlinux/libcare "${LIBCARE_GIT-}" "$C/src"
nice make -C "$C/src/src" -j2 > "$C/make.log" 2>&1 ||
  { echo "side_by_side_setup: LibCare failed to build; see $C/make.log" >&2; exit 1; }
for t in libcare-ctl libcare-cc libcare-patch-make kpatch_strip kpatch_make kpatch_gensrc; do
  test -x "$C/src/src/$t"
done

mv "$SCRATCH/versions.txt.new" "$SCRATCH/versions.txt"
echo "side_by_side_setup: built in $SCRATCH"
cat "$SCRATCH/versions.txt"
