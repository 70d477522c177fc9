#!/usr/bin/env bash
# The .deb: CPack builds graft_VERSION_amd64.deb from this build; `apt-get
# install ./graft_*.deb` installs it (binary, man page, headers, libgraft-rt
# with its SONAME in the multiarch directory, pkg-config and CMake package
# files, the unit, completion, logrotate, examples); `graft --version`
# works; a program builds against libgraft-rt with pkg-config and with
# find_package(graft-rt); the unit passes `systemd-analyze verify`; its
# ExecStart (run directly: systemd is not PID 1 here) patches a process
# started afterwards with a patch from the default store; `apt-get purge`
# removes everything, the store included.
# ctest-run-serial
# ctest-timeout: 600
source "$(dirname "$0")/common.sh"

BUILD=$(cd "$(dirname "$GRAFT")" && pwd)
[[ -f $BUILD/CPackConfig.cmake ]] || fail "no CPackConfig.cmake in $BUILD"
command -v apt-get >/dev/null || { log "no apt-get: not a Debian system"; exit 77; }
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=300 -y)

if dpkg-query -W -f='${Status}' graft 2>/dev/null | grep -q "install ok installed"; then
  fail "a graft package is installed already; this test installs and purges its own"
fi
[[ ! -e /usr/bin/graft ]] || fail "/usr/bin/graft exists and belongs to no graft package"

purge_pkg() {
  if dpkg-query -W graft >/dev/null 2>&1; then
    "${APT[@]}" purge graft >"$T/purge.log" 2>&1 || true
  fi
}
trap 'rc=$?; for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; purge_pkg; cleanup $rc' EXIT

(cd "$BUILD" && cpack -G DEB -B "$T/pkg" >"$T/cpack.log" 2>&1) || { cat "$T/cpack.log"; fail "cpack failed"; }
deb=$(ls "$T"/pkg/graft_*_amd64.deb)
log "built $(basename "$deb") ($(du -h "$deb" | cut -f1))"
version=$(dpkg-deb -f "$deb" Version)
(cd "$T/pkg" && "${APT[@]}" install "./$(basename "$deb")") >"$T/install.log" 2>&1 ||
  { tail -20 "$T/install.log"; fail "apt-get install ./$(basename "$deb") failed"; }
log "installed graft $version"

[[ $(/usr/bin/graft --version) == "$version" ]] || fail "graft --version says $(/usr/bin/graft --version), not $version"
for f in /usr/share/man/man1/graft.1 /usr/include/graft/patch.h /usr/include/graft/runtime.h \
         /usr/lib/x86_64-linux-gnu/libgraft-rt.so.0 /usr/lib/x86_64-linux-gnu/pkgconfig/graft-rt.pc \
         /usr/lib/x86_64-linux-gnu/cmake/graft-rt/graft-rt-config.cmake /usr/lib/systemd/system/graft.service \
         /usr/share/bash-completion/completions/graft /etc/logrotate.d/graft \
         /usr/share/doc/graft/examples/policy.example; do
  [[ -e $f ]] || fail "the package did not install $f"
done
soname=$(LC_ALL=C readelf -d /usr/lib/x86_64-linux-gnu/libgraft-rt.so.0 | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[[ $soname == libgraft-rt.so.0 ]] || fail "libgraft-rt's SONAME is \`$soname'"
[[ -d /var/lib/graft/patches ]] || fail "postinst did not create the store"
man -l /usr/share/man/man1/graft.1 >/dev/null 2>&1 || log "note: man could not render graft.1"
bash -c 'source /usr/share/bash-completion/bash_completion 2>/dev/null; source /usr/share/bash-completion/completions/graft; complete -p graft' |
  grep -q _graft || fail "the bash completion does not define graft's"

# libgraft-rt from the package: pkg-config and CMake.
cat >"$T/rt.c" <<'C'
#include <graft/runtime.h>
#include <stdio.h>
int main(void) { graft_quiescent(); puts("runtime ok"); return 0; }
C
# shellcheck disable=SC2046
gcc "$T/rt.c" -o "$T/rt-pc" $(pkg-config --cflags --libs graft-rt) || fail "pkg-config graft-rt: cannot build"
[[ $("$T/rt-pc") == "runtime ok" ]] || fail "a program linked with pkg-config's flags does not run"
# (Read whole first: `grep -q' stops reading at its match, and under
# pipefail ldd's SIGPIPE on its next line would fail the check.)
deps=$(ldd "$T/rt-pc")
[[ $deps =~ libgraft-rt\.so\.0\ =\>\ [^[:space:]]*/x86_64-linux-gnu/libgraft-rt\.so\.0 ]] ||
  fail "the program does not load libgraft-rt.so.0 from the multiarch directory: $deps"
mkdir "$T/cm"
cat >"$T/cm/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.20)
project(rt C)
find_package(graft-rt 0.1 REQUIRED)
add_executable(rt $T/rt.c)
target_link_libraries(rt PRIVATE graft::rt)
CM
(cmake -S "$T/cm" -B "$T/cm/build" -G Ninja && ninja -C "$T/cm/build") >"$T/cmake.log" 2>&1 ||
  { cat "$T/cmake.log"; fail "find_package(graft-rt) failed"; }
[[ $("$T/cm/build/rt") == "runtime ok" ]] || fail "the CMake-built program does not run"

if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /usr/lib/systemd/system/graft.service >"$T/verify.log" 2>&1 ||
    { cat "$T/verify.log"; fail "systemd-analyze verify graft.service failed"; }
  log "systemd-analyze verify graft.service: ok"
fi

# The service: its ExecStart, run here directly (systemd is not PID 1 in
# this test environment), with the default store and policy.
tag="e2e-$$-$RANDOM-$(date +%s%N)"
cc -shared -fPIC -DFOO_TAG="\"$tag\"" "$PROGRAMS/libfoo.c" -o "$T/libfoo.so"
cc -pthread "$PROGRAMS/libmain.c" -L"$T" -lfoo -Wl,-rpath,"$T" -o "$T/libmain"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
extern int foo_calls;
int foo_scale(int x);
static int new_foo_compute(int x) {
  __atomic_add_fetch(&foo_calls, 1, __ATOMIC_RELAXED);
  return foo_scale(x) * 50;
}
GRAFT_REPLACE(foo_compute, new_foo_compute);
C
unset GRAFT_INCLUDE_DIR
GRAFT=/usr/bin/graft
graft_ok build --from-source "$T/fix.c" --target "$T/libfoo.so" -o "$T/fix.graft"
graft_ok store add "$T/fix.graft"
[[ -n $(ls /var/lib/graft/patches/*.graft) ]] || fail "store add did not use /var/lib/graft/patches"
exec_start=$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/graft.service)
log "running the unit's ExecStart: $exec_start"
$exec_start 2>"$T/service.log" &
service=$!
bg_track $service
wait_until 10 grep -q "sync (start)" "$T/service.log" || { cat "$T/service.log"; fail "the service did not start"; }
start_target late "$T/libmain"
wait_until 3 eval '[[ $(ask late call) == "300 "* ]]' || fail "a process started after the service was not patched"
log "the process started after the service runs the stored patch"
graft_ok status
kill -TERM $service
wait_bounded $service 10 || fail "the service did not stop on SIGTERM"
sed 's/^/    service| /' "$T/service.log"
stop_target late

"${APT[@]}" purge graft >"$T/purge.log" 2>&1 || { cat "$T/purge.log"; fail "apt-get purge graft failed"; }
[[ ! -e /usr/bin/graft && ! -e /usr/lib/x86_64-linux-gnu/libgraft-rt.so.0 && ! -e /var/lib/graft && ! -e /etc/logrotate.d/graft ]] ||
  fail "apt-get purge left files behind"
log "purged"
