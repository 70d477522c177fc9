# The corpus packages (shared/corpus/README.md): which Debian source, which
# fixes, and how to build only what the tests run. Sourced by prepare.sh;
# BUILD is a shell command run in the tree, with $JOBS set.
# shellcheck shell=bash disable=SC2034

# memcached: a multi-threaded server. The proxy (two of the fixes) needs
# --enable-proxy, which builds the Lua 5.4 vendored in the tarball
# (vendor/lua); the SASL password-database fix needs --enable-sasl-pwdb.
package_memcached() {
  VERSION_PREFIX=1.6.18-
  FIXES=(0008-CVE-2026-47783-CVE-2026-47784.patch 0009-CVE-2023-46852.patch CVE-2023-46853.patch)
  BUILD_DEPS=(libevent-dev libsasl2-dev libsasl2-modules pkg-config)
  CONFIGURE="--enable-sasl --enable-sasl-pwdb --enable-proxy"
  # vendor/: Lua and mcmc, linked into memcached (the default `make` would
  # also build memcached-debug and the test programs).
  BUILD='make -j$JOBS -C vendor && make -j$JOBS memcached'
  ARTIFACT=memcached
}

# c-ares: a shared library, patched in every process that maps it. The flags
# of Debian's debian/rules; only the library is built.
package_c_ares() {
  VERSION_PREFIX=1.18.1-
  FIXES=(CVE-2022-4904.diff CVE-2023-31130.diff CVE-2023-32067.diff)
  BUILD_DEPS=()
  CONFIGURE="--enable-shared --disable-static --enable-symbol-hiding --disable-tests"
  BUILD='make -j$JOBS -C src/lib'
  ARTIFACT=src/lib/.libs/libcares.so.2
}
