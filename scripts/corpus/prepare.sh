#!/usr/bin/env bash
# Fetches a Debian source package of the real-world patch corpus
# (shared/corpus/README.md), rolls its quilt series back to the tree before
# its first security fix, extracts the fixes, and builds that tree: the build
# a test runs and then patches live with `graft build --from-diff`.
#
#   scripts/corpus/prepare.sh memcached|c-ares      as root on Debian 12
#
# Everything is cached under $GRAFT_CORPUS_DIR (default
# /var/cache/graft-corpus), so a rerun only checks stamps. The result, in
# $GRAFT_CORPUS_DIR/PACKAGE/:
#   src/       the package's tree before its first fix, configured and built
#   fixes/     each fix as Debian ships it (debian/patches/NAME), in series order
#   env        shell variables for tests: VERSION, TREE, ARTIFACT, FIXES_DIR,
#              FIXES, BUILD (the build command), BUILD_CFLAGS
#
# Each fix of a package touches other files than the others (checked here
# with `patch --dry-run`), so each applies to the tree before the first one;
# one running build then takes them all, one after the other, as an operator's
# running version N would.
#
#   GRAFT_CORPUS_DIR     cache directory
#   GRAFT_CORPUS_JOBS    make -j (default 2)
set -euo pipefail

PKG=${1:?usage: prepare.sh memcached|c-ares}
CACHE=${GRAFT_CORPUS_DIR:-/var/cache/graft-corpus}
JOBS=${GRAFT_CORPUS_JOBS:-2}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=packages.sh
source "$HERE/packages.sh"
CONFIGURE_CACHE=() CONFIGURE_CACHE_CHECK=""
package_"${PKG//-/_}"   # sets VERSION_PREFIX FIXES BUILD_DEPS CONFIGURE BUILD ARTIFACT
                        # and maybe CONFIGURE_CACHE CONFIGURE_CACHE_CHECK

DIR=$CACHE/$PKG
LOG=$DIR/prepare.log
mkdir -p "$DIR"
say() { echo "corpus[$PKG]: $*"; }
die() { echo "corpus[$PKG]: FAILED: $* (log: $LOG)" >&2; tail -n 20 "$LOG" >&2 || true; exit 1; }

# The flags of Debian's own build (dpkg-buildflags, hardening) plus one
# section per function and per variable, as `graft build --from-diff` builds
# the original and patched trees: the running build must be that same build.
CFLAGS=${GRAFT_CORPUS_CFLAGS:-"-g -O2 -fstack-protector-strong -Wformat -Werror=format-security -ffunction-sections -fdata-sections"}
CPPFLAGS="-D_FORTIFY_SOURCE=2"
LDFLAGS="-Wl,-z,relro -Wl,-z,now"
STAMP_KEY="$VERSION_PREFIX|${FIXES[*]}|$CONFIGURE|${CONFIGURE_CACHE[*]}|$BUILD|$CFLAGS|$CPPFLAGS|$LDFLAGS|$(gcc -dumpfullversion)"

# The variables a test sources. Not CFLAGS: tests have their own.
write_env() {
  local version
  version=$(basename "$(ls "$DIR"/downloads/*.dsc | sort -V | tail -n 1)" .dsc)
  cat >"$DIR/env" <<ENV
# Written by scripts/corpus/prepare.sh $PKG
PACKAGE=$PKG
VERSION=${version#*_}
TREE=$DIR/src
ARTIFACT=$DIR/src/$ARTIFACT
FIXES_DIR=$DIR/fixes
FIXES=(${FIXES[*]})
BUILD='${BUILD//\$JOBS/$JOBS}'
BUILD_CFLAGS="$CFLAGS"
ENV
}

if [[ -f $DIR/built.stamp && $(cat "$DIR/built.stamp") == "$STAMP_KEY" && -f $DIR/src/$ARTIFACT ]]; then
  write_env
  say "cached: $DIR/src/$ARTIFACT"
  exit 0
fi
: >"$LOG"

# One preparation at a time per package (two tests may start together).
exec 9>"$DIR/.lock"
flock 9
if [[ -f $DIR/built.stamp && $(cat "$DIR/built.stamp") == "$STAMP_KEY" && -f $DIR/src/$ARTIFACT ]]; then
  write_env
  say "cached (prepared meanwhile): $DIR/src/$ARTIFACT"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=600 -y)
# apt (sources, lists, installs) one package at a time: the tests of two
# packages may prepare them together on a fresh machine.
exec 8>"$CACHE/.apt.lock"
flock 8

# 1. deb-src: a fresh Debian 12 lists only binary packages.
if ! apt-cache showsrc "$PKG" 2>/dev/null | grep -q "^Version: $VERSION_PREFIX"; then
  if [[ ! -f /etc/apt/sources.list.d/debian-src.sources ]]; then
    say "enabling deb-src"
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
      >/etc/apt/sources.list.d/debian-src.sources
  fi
  "${APT[@]}" update </dev/null >>"$LOG" 2>&1 || die "apt-get update"
fi
# The newest Debian revision of the upstream version, e.g. 1.6.18-1+deb12u1.
VERSION=$(apt-cache showsrc "$PKG" | sed -n "s/^Version: \($VERSION_PREFIX.*\)/\1/p" |
          sort -V | tail -n 1)
[[ -n $VERSION ]] || die "no source version $VERSION_PREFIX* of $PKG in the apt lists"

# 2. Tools and the build dependencies this build uses (configure, make, gcc).
need=()
for p in dpkg-dev quilt patch make gcc "${BUILD_DEPS[@]}"; do
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || need+=("$p")
done
if [[ ${#need[@]} -gt 0 ]]; then
  say "installing ${need[*]}"
  "${APT[@]}" install --no-install-recommends "${need[@]}" </dev/null >>"$LOG" 2>&1 ||
    { "${APT[@]}" update </dev/null >>"$LOG" 2>&1 &&
      "${APT[@]}" install --no-install-recommends "${need[@]}" </dev/null >>"$LOG" 2>&1; } ||
    die "apt-get install ${need[*]}"
fi
exec 8>&-

# 3. The source package (downloads kept; the tree is extracted anew).
mkdir -p "$DIR/downloads"
dsc=$DIR/downloads/${PKG}_${VERSION#*:}.dsc
if [[ ! -f $dsc ]]; then
  say "apt-get source $PKG=$VERSION"
  (cd "$DIR/downloads" && apt-get source --download-only "$PKG=$VERSION" </dev/null) >>"$LOG" 2>&1 ||
    die "apt-get source $PKG=$VERSION"
fi
rm -rf "$DIR/src" "$DIR/src.tmp" "$DIR/fixes" "$DIR/built.stamp"
dpkg-source --no-check -x "$dsc" "$DIR/src.tmp" >>"$LOG" 2>&1 || die "dpkg-source -x $dsc"

# 4. Back to the tree before the first fix: quilt pop to the patch before it.
mkdir -p "$DIR/fixes"
series=$DIR/src.tmp/debian/patches/series
first=""
for fix in "${FIXES[@]}"; do
  grep -qx "$fix" "$series" || die "$fix is not in the series of $PKG $VERSION"
  cp "$DIR/src.tmp/debian/patches/$fix" "$DIR/fixes/$fix"
  [[ -n $first ]] || first=$fix
done
before=$(grep -v '^#' "$series" | grep -B1 -x "$first" | head -n 1)
(
  cd "$DIR/src.tmp"
  export QUILT_PATCHES=debian/patches QUILT_PC=.pc
  if [[ $before == "$first" ]]; then quilt pop -a; else quilt pop "$before"; fi
) >>"$LOG" 2>&1 || die "quilt pop to before $first"
for fix in "${FIXES[@]}"; do
  patch -d "$DIR/src.tmp" -p1 --dry-run -s <"$DIR/fixes/$fix" >>"$LOG" 2>&1 ||
    die "$fix does not apply to the tree before $first"
done
say "$VERSION, tree before $first (top patch: $before)"

# 5. Configure and build only what the tests run. Cached configure answers
# are checked against the system's headers first.
cd "$DIR/src.tmp"
if [[ -n $CONFIGURE_CACHE_CHECK ]]; then
  echo "+ checking the configure cache: ${CONFIGURE_CACHE[*]}" >>"$LOG"
  # shellcheck disable=SC2086
  gcc $CPPFLAGS $CFLAGS -x c -c -o /dev/null - <<<"$CONFIGURE_CACHE_CHECK" >>"$LOG" 2>&1 ||
    die "the configure answers in scripts/corpus/packages.sh do not match this system's headers"
fi
say "configure $CONFIGURE${CONFIGURE_CACHE:+ (${#CONFIGURE_CACHE[@]} answers cached)}"
# shellcheck disable=SC2086
env "${CONFIGURE_CACHE[@]}" ./configure $CONFIGURE CC=gcc CFLAGS="$CFLAGS" CPPFLAGS="$CPPFLAGS" \
  LDFLAGS="$LDFLAGS" >>"$LOG" 2>&1 || die "configure"
say "build: $BUILD (JOBS=$JOBS)"
JOBS=$JOBS nice bash -c "$BUILD" >>"$LOG" 2>&1 || die "build: $BUILD"
[[ -f $ARTIFACT ]] || die "the build made no $ARTIFACT"
cd /
mv "$DIR/src.tmp" "$DIR/src"
rm -f "$DIR"/*.orig.tar.* "$DIR"/*.debian.tar.* "$DIR"/*.dsc   # dpkg-source -x copies them beside the tree

write_env
echo "$STAMP_KEY" >"$DIR/built.stamp"
say "built $DIR/src/$ARTIFACT"
