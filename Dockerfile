# mambadna on Debian 12, CPU only (OpenMP + OpenBLAS). The image the
# pipelines' container directives name:
#   docker build -t mambadna:0.1.0 -f Dockerfile .
#   docker run --rm mambadna:0.1.0 mambadna --version
# The GPU build is Dockerfile.cuda.

FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config zlib1g-dev libhts-dev libjansson-dev \
        libopenblas-dev libfftw3-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY src/ src/
COPY kernels/ kernels/
COPY tests/ tests/
# Portable x86-64 code: the AVX-512 paths are chosen at run time.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DMAMBADNA_CUDA=OFF \
 && cmake --build /build -j"$(nproc)" --target mambadna \
 && install -m 755 /build/mambadna /usr/local/bin/mambadna

FROM debian:12-slim
# procps: Nextflow reads task metrics with ps
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libhts3 libjansson4 libopenblas0-pthread libfftw3-single3 libgomp1 zlib1g procps \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/mambadna /usr/local/bin/mambadna
RUN mambadna --version
CMD ["mambadna"]
