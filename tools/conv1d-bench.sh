#!/usr/bin/env bash
# Builds tools/conv1d_bench.cu once per variant of kernels/conv1d.cu (its
# -D switches: MD_CONV_STAGED, MD_CONV_FWD_TILE_ROWS, MD_CONV_BWD_TILE_ROWS,
# MD_CONV_BWD_MIN_BLOCKS; NOTES-backend.md, conv7) into OUT_DIR (default
# build-conv1d-bench), for sm_90:
#   tools/conv1d-bench.sh [OUT_DIR] [NAME=FLAGS ...]
# e.g. tools/conv1d-bench.sh b rows=-DMD_CONV_STAGED=0
# KERNEL=path builds the variants from another copy of the kernel (e.g. an
# older commit's, `git show REV:kernels/conv1d.cu`).
# Then, on the GPU machine: VARIANT=NAME OUT_DIR/NAME [bf16|f32] [B L E REPS].
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-conv1d-bench}
shift || true
kernel=${KERNEL:-kernels/conv1d.cu}
mkdir -p "$out"
[[ $# -gt 0 ]] || set -- default=
for v in "$@"; do
    name=${v%%=*}
    flags=${v#*=}
    # shellcheck disable=SC2086
    nvcc -O3 -std=c++17 -gencode=arch=compute_90,code=sm_90 -lineinfo $flags -Ikernels \
        -o "$out/$name" tools/conv1d_bench.cu "$kernel" kernels/elementwise.cu
done
