#!/usr/bin/env bash
# Builds a Debian source package as Debian does (dpkg-buildpackage -b), with
# its quilt series rolled back to before one of its patches: the packages a
# server runs before that fix. For the tests of `graft build --debian-source`.
#
#   scripts/corpus/debian_build.sh SOURCE VERSION PATCH      as root on Debian 12
#
# Cached under $GRAFT_CORPUS_DIR (default /var/cache/graft-corpus)/debian/,
# in SOURCE_VERSION_before-PATCH/:
#   tree/      the unpacked source before PATCH, never built (graft's input)
#   build/     the copy dpkg-buildpackage built (seen at Debian's build path)
#   root/      every binary package it made, unpacked (dpkg -x)
#   fixes/     PATCH and the patches after it, as Debian ships them
#   env        TREE ROOT FIXES_DIR for tests
set -euo pipefail

SRC=${1:?usage: debian_build.sh SOURCE VERSION PATCH}
VERSION=${2:?usage: debian_build.sh SOURCE VERSION PATCH}
PATCH=${3:?usage: debian_build.sh SOURCE VERSION PATCH}
CACHE=${GRAFT_CORPUS_DIR:-/var/cache/graft-corpus}/debian
DIR=$CACHE/${SRC}_${VERSION}_before-${PATCH%.*}
LOG=$DIR.log
say() { echo "debian_build[$SRC]: $*"; }
die() { echo "debian_build[$SRC]: FAILED: $* (log: $LOG)" >&2; tail -n 20 "$LOG" >&2 || true; exit 1; }

# The installed versions of a tree's build dependencies (Build-Depends and
# Build-Depends-Arch of the Source stanza) and of the toolchain, hashed: a
# build made with other versions (say a newer libssl-dev) is not the one
# graft's rebuild reproduces, and is made again.
deps_key() {
  local names
  names=$(awk '/^#/ {next} /^[ \t]*$/ {if (seen) exit; next} {seen = 1}
               /^[^ \t]/ {f = tolower($0) ~ /^build-depends(-arch)?:/; sub(/^[^:]*:/, "")}
               f' "$1/debian/control" |
            tr ',|' '\n\n' | sed 's/^[ \t]*//; s/[ \t(:[<].*//' | grep -v '^\$' | grep . | sort -u)
  # shellcheck disable=SC2086
  dpkg-query -W -f '${Package}=${Version}\n' $names libc6-dev binutils dpkg-dev make gcc-12 g++-12 debhelper 2>/dev/null |
    sort -u | sha256sum | cut -c1-16
}

# An env without BUILD_PATH was made before the tree was built at Debian's
# build path; one with another DEPS_KEY with other build dependencies.
if [[ -f $DIR/env ]] && grep -q '^BUILD_PATH=' "$DIR/env" &&
   grep -qx "DEPS_KEY=$(deps_key "$DIR/tree")" "$DIR/env"; then
  say "cached: $DIR"
  exit 0
fi
mkdir -p "$CACHE"
: >"$LOG"
# Wait for another apt (the test suite's own installs) instead of failing.
APT=(apt-get -o DPkg::Lock::Timeout=600)

# Source archive, build tools and the package's build dependencies.
if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    >/etc/apt/sources.list.d/debian-src.sources
  "${APT[@]}" update >>"$LOG" 2>&1 || die "apt-get update"
fi
if ! command -v dpkg-buildpackage >/dev/null || ! command -v quilt >/dev/null; then
  DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y dpkg-dev quilt >>"$LOG" 2>&1 || die "installing dpkg-dev quilt"
fi
say "build dependencies of $SRC $VERSION"
DEBIAN_FRONTEND=noninteractive "${APT[@]}" build-dep -y "$SRC=$VERSION" >>"$LOG" 2>&1 || die "apt-get build-dep"

rm -rf "$DIR" "$DIR.tmp"
mkdir -p "$DIR.tmp/fetch" "$DIR.tmp/fixes"
say "fetching $SRC $VERSION"
(cd "$DIR.tmp/fetch" && apt-get source --only-source "$SRC=$VERSION") >>"$LOG" 2>&1 || die "apt-get source"
unpacked=$(find "$DIR.tmp/fetch" -mindepth 1 -maxdepth 1 -type d | head -n 1)
[[ -f $unpacked/debian/patches/series ]] || die "no debian/patches/series in $unpacked"
grep -qx "$PATCH" "$unpacked/debian/patches/series" || die "$PATCH is not in the series"

# The fix and everything after it, then the tree without them.
sed -n "/^$(printf '%s' "$PATCH" | sed 's/[.]/[.]/g')\$/,\$p" "$unpacked/debian/patches/series" |
  while read -r p; do cp "$unpacked/debian/patches/$p" "$DIR.tmp/fixes/"; done
before=$(grep -B1 -x "$PATCH" "$unpacked/debian/patches/series" | head -n 1)
(
  cd "$unpacked"
  export QUILT_PATCHES=debian/patches
  if [[ $before == "$PATCH" ]]; then quilt pop -a; else quilt pop "$before"; fi
  # dpkg-source --before-build would apply the rest of the series again.
  sed -i "/^$(printf '%s' "$PATCH" | sed 's/[.]/[.]/g')\$/,\$d" debian/patches/series
) >>"$LOG" 2>&1 || die "quilt pop"
mv "$unpacked" "$DIR.tmp/tree"

# Debian's buildds build at /build/reproducible-path/SOURCE-UPSTREAM, and
# packages that record their build path (nginx) differ when built elsewhere:
# the tree is seen there from a private mount namespace, as graft does.
upstream=${VERSION#*:}
upstream=${upstream%-*}
BUILD_PATH=/build/reproducible-path/$SRC-$upstream
say "building it as Debian does (dpkg-buildpackage -b at $BUILD_PATH)"
cp -a "$DIR.tmp/tree" "$DIR.tmp/build"
mkdir -p "${BUILD_PATH%/*}"
# Its symbols file names what the later patches add. The packages land
# beside the build path (in the namespace's tmpfs): copied out.
# shellcheck disable=SC2016
unshare --mount --propagation private -- sh -c '
  set -e
  mount -t tmpfs -o mode=0755 graft-corpus "${1%/*}"
  mkdir -p "$1"
  mount --bind "$2" "$1"
  cd "$1"
  DPKG_GENSYMBOLS_CHECK_LEVEL=0 DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -b -uc -us
  cp ../*.deb ../*.buildinfo ../*.changes "$3/"' sh "$BUILD_PATH" "$DIR.tmp/build" "$DIR.tmp" \
  >>"$LOG" 2>&1 || die "dpkg-buildpackage"
mkdir -p "$DIR.tmp/root"
for deb in "$DIR.tmp"/*.deb; do dpkg -x "$deb" "$DIR.tmp/root"; done
rm -rf "$DIR.tmp/fetch"
cat >"$DIR.tmp/env" <<ENV
# Written by scripts/corpus/debian_build.sh $SRC $VERSION $PATCH
TREE=$DIR/tree
ROOT=$DIR/root
FIXES_DIR=$DIR/fixes
BUILD_PATH=$BUILD_PATH
DEPS_KEY=$(deps_key "$DIR.tmp/tree")
ENV
mv "$DIR.tmp" "$DIR"
say "built: $DIR"
