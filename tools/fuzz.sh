#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan) and
# runs each for a fixed time; fails on any crash, sanitizer report, leak,
# breach of a target's oracle, timeout or outsized allocation.
#
# Environment:
#   MD_FUZZ_SECONDS  seconds per target [20; CI uses the default]
#   MD_FUZZ_TARGETS  space-separated target names (fuzz_reads ...) [all]
#   MD_FUZZ_BUILD    build folder [build-fuzz]
#   JOBS             build jobs [nproc]
# New inputs that raise coverage accumulate in $MD_FUZZ_BUILD/fuzz-corpus/NAME
# (seeded from tests/fuzz/corpus), so longer runs by hand build on earlier
# ones; a failing input is saved in $MD_FUZZ_BUILD/fuzz-artifacts/NAME/. To
# keep one as a regression test, copy it into tests/fuzz/regress/NAME/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${MD_FUZZ_SECONDS:-20}
build=${MD_FUZZ_BUILD:-build-fuzz}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

if ! command -v clang >/dev/null; then
    echo "[E::fuzz] clang is not installed (tools/install-deps.sh installs it)" >&2
    exit 1
fi
echo "[M::fuzz] building the fuzz targets in $build"
mkdir -p "$build"
if ! { CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAMBADNA_FUZZ=ON &&
       cmake --build "$build" -j"$jobs" --target fuzz; } >"$build/build.log" 2>&1; then
    tail -n 40 "$build/build.log" >&2
    echo "[E::fuzz] the fuzz build failed (log: $build/build.log)" >&2
    exit 1
fi

targets=${MD_FUZZ_TARGETS:-$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMP_NUM_THREADS=1
failed=0
total=0
for t in $targets; do
    word=$(echo "$t" | sed -E 's/^fuzz_([a-z0-9]+).*/\1/')
    work=$build/fuzz-corpus/$t
    artifacts=$build/fuzz-artifacts/$t
    mkdir -p "$work" "$artifacts"
    log=$build/fuzz-$t.log
    # -malloc_limit_mb: a parser must not allocate blindly from a size it
    # read; no legitimate allocation for inputs of -max_len bytes comes near.
    if "$build/tests/fuzz/$t" "$work" "tests/fuzz/corpus/$word" -max_total_time="$seconds" -timeout=20 \
            -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=16384 -print_final_stats=1 \
            -artifact_prefix="$artifacts/" >"$log" 2>&1; then
        status="0 crashes"
    else
        status="FAILED (see $log and $artifacts)"
        failed=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    execs=${execs:-0}
    total=$((total + execs))
    echo "[M::fuzz] $t: $execs executions in $seconds s, corpus $(ls "$work" | wc -l) inputs: $status"
    if [ $failed -ne 0 ] && [ "$status" != "0 crashes" ]; then
        grep -E "ERROR|SUMMARY|fuzz oracle|fails$|==[0-9]+==" "$log" | head -n 20 >&2 || tail -n 30 "$log" >&2
    fi
done
echo "[M::fuzz] $total executions in all"
exit $failed
