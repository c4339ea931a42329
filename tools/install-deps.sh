#!/usr/bin/env bash
# Installs every build and test dependency of mambadna from Debian 12 packages.
# Safe to run repeatedly; does nothing when everything is already present.
set -euo pipefail

packages=(build-essential cmake pkg-config zlib1g-dev libhts-dev libjansson-dev
          libopenblas-dev libfftw3-dev libomp-dev python3 tabix
          snakemake python3-yaml)   # the workflow test and tools/nf-check.py
# OpenMPI: data-parallel training on several processes (optional in the build;
# the distributed tests run under mpirun)
packages+=(libopenmpi-dev openmpi-bin)
# clang and its sanitizer/libFuzzer runtimes, for tools/fuzz.sh
packages+=(clang libclang-rt-dev)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "[M::install-deps] all packages present"
    exit 0
fi
echo "[M::install-deps] installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
