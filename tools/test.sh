#!/usr/bin/env bash
# Installs the dependencies, builds mambadna twice (optimised, and with
# AddressSanitizer + UBSan) and runs the whole ctest suite on each build,
# then fuzzes every parser for a short fixed time (tools/fuzz.sh;
# MD_FUZZ_SECONDS per target, 20 by default).
# This is the README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

bash tools/install-deps.sh

echo "[M::test] release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 600

echo "[M::test] AddressSanitizer + UBSan build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAMBADNA_SANITIZE=ON -DMAMBADNA_CUDA=OFF >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 900

echo "[M::test] fuzzing every parser for ${MD_FUZZ_SECONDS:-20} s each"
JOBS=$jobs bash tools/fuzz.sh
