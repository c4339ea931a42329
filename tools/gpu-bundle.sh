#!/usr/bin/env bash
# Builds mambadna for the H200 (sm_90) and bundles it with the shared
# libraries the GPU machine lacks (htslib, jansson, OpenBLAS, FFTW, ...),
# so the bundle runs there without installing anything.
#
#   tools/gpu-bundle.sh            -> gpu-bundle/{bin,lib}  (git-ignored)
#   MD_GPU_BUILD=build-cuda tools/gpu-bundle.sh   builds in another folder
#   JOBS=N                         parallel compile jobs [2]
#   MD_GPU_OUT=DIR                 bundle folder [gpu-bundle]; an absolute path
#                                  lets a worktree bundle into the main checkout
#
# On the GPU machine, from the repository root:
#   export LD_LIBRARY_PATH=$PWD/gpu-bundle/lib:/usr/local/cuda/lib64
#   gpu-bundle/bin/mambadna version
#
# The CUDA runtime, cuBLAS, the driver and the C/C++ runtimes are NOT
# bundled: the GPU machine's own must be used, matching its driver.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${MD_GPU_BUILD:-build-gpu}
out=${MD_GPU_OUT:-gpu-bundle}
jobs=${JOBS:-2}

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMAMBADNA_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_FLAGS="-gencode=arch=compute_90,code=sm_90" >/dev/null
cmake --build "$build" -j"$jobs"

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
cp "$build/mambadna" "$out/bin/"
# The unit tests travel too, so kernels can be checked against the CPU there.
find "$build/tests" -maxdepth 1 -type f -name 'test_*' -perm -u+x -exec cp {} "$out/bin/" \;

skip='^(linux-vdso|ld-linux|libc\.|libm\.|libstdc\+\+|libgcc_s|libcuda\.|libcudart|libcublas|libcufft|libdl\.|libpthread\.|librt\.)'
for exe in "$out"/bin/*; do
    ldd "$exe" | awk '$3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
    if [[ ! $name =~ $skip ]]; then
        cp -L "$path" "$out/lib/$name"
    fi
done
echo "[M::gpu-bundle] $(ls "$out/bin" | wc -l) executables, libraries: $(ls "$out/lib" | tr '\n' ' ')"
du -sh "$out"
