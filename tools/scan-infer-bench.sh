#!/usr/bin/env bash
# Builds tools/scan_infer_bench.cu once per variant of the inference scan
# (kernels/selective_scan_infer.cu and its -D switches; NOTES-scan.md, v6
# inference) into OUT_DIR (default build-scan-infer-bench), for sm_90:
#   tools/scan-infer-bench.sh [OUT_DIR] [NAME=FLAGS ...]
# e.g. tools/scan-infer-bench.sh b tile8=-DMD_SCAN_INFER_TILE=8
# KERNEL=path builds the variants from another copy of the kernel (e.g. an
# older commit's, `git show REV:kernels/selective_scan_infer.cu`).
# Then, on the GPU machine: VARIANT=NAME OUT_DIR/NAME [bf16|f32] [B L E N REPS].
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-scan-infer-bench}
shift || true
kernel=${KERNEL:-kernels/selective_scan_infer.cu}
mkdir -p "$out"
[[ $# -gt 0 ]] || set -- default=
for v in "$@"; do
    name=${v%%=*}
    flags=${v#*=}
    # shellcheck disable=SC2086
    nvcc -O3 -std=c++17 -gencode=arch=compute_90,code=sm_90 -lineinfo $flags -Ikernels \
        -o "$out/$name" tools/scan_infer_bench.cu "$kernel"
done
