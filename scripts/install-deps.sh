#!/usr/bin/env bash
# Install the Debian 12 packages graft needs to build, test and benchmark.
#
# Idempotent: packages that are already installed are not touched, and
# `apt-get update` runs only when the package lists are missing or a package
# cannot be found (or downloaded) with the lists at hand. Runs unattended
# (CI=true, no stdin). Full apt output goes to a log file; one line is printed.
#
#   GRAFT_DEPS_LOG   log file (default: /tmp/graft-install-deps.log)
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libelf-dev libdw-dev libzydis-dev libcli11-dev libfmt-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libunwind-dev libbenchmark-dev libsodium-dev
  python3 python3-matplotlib curl ca-certificates
  clang libclang-rt-14-dev  # libFuzzer, for scripts/fuzz.sh (the fuzz tests)
)

LOG=${GRAFT_DEPS_LOG:-/tmp/graft-install-deps.log}
export DEBIAN_FRONTEND=noninteractive

# Wait for another apt/dpkg (e.g. a parallel installer) instead of failing.
APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef
          -o Dpkg::Options::=--force-confold)

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n DEBIAN_FRONTEND=noninteractive)
  else
    echo "install-deps: must run as root (or with password-less sudo)" >&2
    exit 1
  fi
fi

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
      echo "$p"
    fi
  done
}

have_lists() {
  compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

# True when every package named has an installation candidate in the lists.
all_candidates() {
  local p policy
  for p in "$@"; do
    policy=$(apt-cache policy "$p" 2>/dev/null) || return 1
    [[ $policy =~ Candidate:\ [^\(] ]] || return 1
  done
}

apt_update() {
  echo "+ apt-get update" >>"$LOG"
  "${SUDO[@]}" apt-get "${APT_OPTS[@]}" update </dev/null >>"$LOG" 2>&1
}

apt_install() {
  echo "+ apt-get install $*" >>"$LOG"
  "${SUDO[@]}" apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "$@" \
    </dev/null >>"$LOG" 2>&1
}

fail() {
  echo "install-deps: FAILED: $1 (last lines of $LOG follow)" >&2
  tail -n 25 "$LOG" >&2 || true
  exit 1
}

mapfile -t MISSING < <(missing_packages)
if [[ ${#MISSING[@]} -eq 0 ]]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

: >"$LOG"
updated=0
if ! have_lists || ! all_candidates "${MISSING[@]}"; then
  apt_update || fail "apt-get update"
  updated=1
fi

if ! apt_install "${MISSING[@]}"; then
  # An interrupted dpkg run, or stale lists pointing at removed .debs.
  if grep -q 'dpkg --configure -a' "$LOG"; then
    "${SUDO[@]}" dpkg --configure -a </dev/null >>"$LOG" 2>&1 || true
  fi
  if [[ $updated -eq 0 ]]; then
    apt_update || fail "apt-get update"
  fi
  apt_install "${MISSING[@]}" || fail "apt-get install"
fi

mapfile -t STILL < <(missing_packages)
if [[ ${#STILL[@]} -ne 0 ]]; then
  fail "still not installed: ${STILL[*]}"
fi
echo "install-deps: installed ${#MISSING[@]} package(s): ${MISSING[*]} (log: $LOG)"
