#!/usr/bin/env bash
# Builds graft's libFuzzer targets (fuzz/, clang, ASan + UBSan) in a build
# directory of their own and runs each for a bounded time from the seed
# corpus in fuzz/corpus/. Prints, and writes as JSON lines, per fuzzer: the
# inputs executed, the seconds run, the corpus size and the outcome. Exit
# status 1 if any fuzzer found a crash, a leak, a timeout or a violated
# property (the input is kept and its reproduction command printed).
#
#   scripts/fuzz.sh [options] [FUZZER...]     FUZZER: patch_file patch_record maps unwind_table eh_frame
#     --seconds N      per fuzzer (default 60)
#     --build-dir DIR  (default build-fuzz; CTest passes BUILD/fuzz)
#     --jobs N         ninja jobs (default 2)
#     --report FILE    JSON lines report (default BUILD_DIR/fuzz-report.jsonl)
#     --merge          add the new inputs that raise coverage to fuzz/corpus/
#
# The repository's corpus is never changed without --merge: each run works
# on a copy.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_EACH=60
BUILD_DIR=$ROOT/build-fuzz
JOBS=2
REPORT=
MERGE=0
FUZZERS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --report) REPORT=$2; shift 2 ;;
    --merge) MERGE=1; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) FUZZERS+=("$1"); shift ;;
  esac
done
[[ ${#FUZZERS[@]} -gt 0 ]] || FUZZERS=(patch_file patch_record maps unwind_table eh_frame)
[[ $BUILD_DIR = /* ]] || BUILD_DIR=$PWD/$BUILD_DIR
REPORT=${REPORT:-$BUILD_DIR/fuzz-report.jsonl}

command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (scripts/install-deps.sh installs it)" >&2; exit 1; }

mkdir -p "$BUILD_DIR"
start=$SECONDS
if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DGRAFT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >"$BUILD_DIR/configure.log" 2>&1 ||
    { tail -n 30 "$BUILD_DIR/configure.log" >&2; echo "fuzz: configure failed" >&2; exit 1; }
fi
nice ninja -C "$BUILD_DIR" -j "$JOBS" >"$BUILD_DIR/build.log" 2>&1 ||
  { tail -n 40 "$BUILD_DIR/build.log" >&2; echo "fuzz: build failed" >&2; exit 1; }
echo "fuzz: fuzzers built in $BUILD_DIR ($((SECONDS - start)) s)"

ARTIFACTS=$BUILD_DIR/artifacts
mkdir -p "$ARTIFACTS"
: >"$REPORT"
status=0
printf '%-14s %10s %8s %10s %8s  %s\n' fuzzer inputs seconds inputs/s corpus result
for name in "${FUZZERS[@]}"; do
  bin=$BUILD_DIR/fuzz/${name}_fuzzer
  [[ -x $bin ]] || { echo "fuzz: no fuzzer $name" >&2; exit 2; }
  seeds=$ROOT/fuzz/corpus/$name
  work=$(mktemp -d "${TMPDIR:-/tmp}/graft-fuzz-$name.XXXXXX")
  dict=()
  [[ -f $ROOT/fuzz/$name.dict ]] && dict=(-dict="$ROOT/fuzz/$name.dict")
  log=$BUILD_DIR/$name.log
  t0=$(date +%s.%N)
  rc=0
  # A timeout of 10 s per input and 2 GiB of memory: the parsers must refuse
  # huge inputs quickly, never hang or allocate without bound.
  "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$ARTIFACTS/$name-" "${dict[@]}" "$work" "$seeds" >"$log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  execs=${execs:-0}
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  corpus=$(find "$work" -type f | wc -l)
  result=ok
  if [[ $rc -ne 0 ]]; then
    result=FAILED
    status=1
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
  fi
  printf '%-14s %10s %8s %10s %8s  %s\n' "$name" "$execs" "$secs" \
    "$(awk -v e="$execs" -v s="$secs" 'BEGIN { printf "%d", (s > 0 ? e / s : 0) }')" "$corpus" "$result"
  printf '{"fuzzer":"%s","inputs":%s,"seconds":%s,"corpus":%s,"ok":%s}\n' \
    "$name" "$execs" "$secs" "$corpus" "$([[ $result == ok ]] && echo true || echo false)" >>"$REPORT"
  if [[ $rc -ne 0 ]]; then
    echo "--- $name: last lines of $log" >&2
    grep -E 'ERROR|SUMMARY|property violated|#0 |#1 |#2 |#3 ' "$log" | head -n 20 >&2 || tail -n 30 "$log" >&2
    echo "--- reproduce: $bin ${artifact:-<see $log>}" >&2
  fi
  if [[ $MERGE == 1 && $rc -eq 0 ]]; then
    "$bin" -merge=1 "$seeds" "$work" >"$BUILD_DIR/$name-merge.log" 2>&1 ||
      echo "fuzz: merge into $seeds failed (see $BUILD_DIR/$name-merge.log)" >&2
  fi
  rm -rf "$work"
done
echo "fuzz: report in $REPORT"
exit $status
