# The corpus packages (shared/corpus/README.md): which Debian source, which
# fixes, and how to build only what the tests run. Sourced by prepare.sh;
# BUILD is a shell command run in the tree, with $JOBS set. Optional:
# CONFIGURE_CACHE, autoconf cache variables given to configure, and
# CONFIGURE_CACHE_CHECK, C declarations that must compile for them to hold.
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
#
# Its configure finds the argument types of recv, send, recvfrom and
# getnameinfo by trying every combination until one compiles: over 2 of its
# 3 minutes on 2 cores (recvfrom alone, 100 s). CONFIGURE_CACHE gives it
# glibc's answers (exactly what that search finds on Debian 12), and
# prepare.sh first checks them against the system's headers with one
# compilation, CONFIGURE_CACHE_CHECK: a wrong type is a conflicting
# declaration, and the preparation fails.
package_c_ares() {
  VERSION_PREFIX=1.18.1-
  FIXES=(CVE-2022-4904.diff CVE-2023-31130.diff CVE-2023-32067.diff)
  BUILD_DEPS=()
  CONFIGURE="--enable-shared --disable-static --enable-symbol-hiding --disable-tests"
  CONFIGURE_CACHE=(
    "curl_cv_func_recv_args=int,void *,size_t,int,ssize_t"
    "curl_cv_func_send_args=int,const void *,size_t,int,ssize_t"
    "curl_cv_func_recvfrom_args=int,void *,size_t,int,struct sockaddr *,socklen_t *,ssize_t"
    "curl_cv_func_getnameinfo_args=const struct sockaddr *,socklen_t,socklen_t,int"
  )
  CONFIGURE_CACHE_CHECK='
#include <sys/types.h>
#include <sys/socket.h>
#include <netdb.h>
extern ssize_t recv(int, void *, size_t, int);
extern ssize_t send(int, const void *, size_t, int);
extern ssize_t recvfrom(int, void *, size_t, int, struct sockaddr *, socklen_t *);
extern int getnameinfo(const struct sockaddr *, socklen_t, char *, socklen_t, char *, socklen_t, int);
'
  BUILD='make -j$JOBS -C src/lib'
  ARTIFACT=src/lib/.libs/libcares.so.2
}
