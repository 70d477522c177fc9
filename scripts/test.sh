#!/usr/bin/env bash
# Installs what graft needs, builds it, and runs every test (unit and
# end-to-end). As root on Debian 12. Exit status is ctest's.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
ctest --test-dir build --output-on-failure -j2
