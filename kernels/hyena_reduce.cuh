/* Deterministic column sums for the Hyena kernels (hyena.cu, fftconv.cu):
 * dst_k[c] += sum over rows r of term_k(r, c), k < nout, without atomics.
 * The rows are cut into slices by mdk_reduce_slices (sizes only); a block
 * owns 32 columns x one slice, its 8 row lanes are added in lane order, the
 * slices' partials go to the backend's scratch and mdk_colsum_add adds them
 * in slice order. So the result depends on the sizes alone. */
#ifndef MD_KERNELS_HYENA_REDUCE_CUH
#define MD_KERNELS_HYENA_REDUCE_CUH

#include "backend_kernels.h"

/* Term: a functor with `__device__ void operator()(int64_t r, int64_t c,
 * float *acc) const` adding its nout values into acc[0..nout). */
template <int NMAX, class Term>
__global__ void __launch_bounds__(256) hyena_colsum_part_kernel(float *part, int64_t rows, int64_t cols, int nout,
                                                              int64_t rows_per_slice, Term term)
{
    __shared__ float sh[NMAX][8][33];
    int64_t c = (int64_t)blockIdx.x * 32 + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * rows_per_slice;
    int64_t r1 = r0 + rows_per_slice < rows ? r0 + rows_per_slice : rows;
    float acc[NMAX];
#pragma unroll
    for (int k = 0; k < NMAX; k++) acc[k] = 0;
    if (c < cols)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) term(r, c, acc);
#pragma unroll
    for (int k = 0; k < NMAX; k++) sh[k][threadIdx.y][threadIdx.x] = acc[k];
    __syncthreads();
    if (c >= cols) return;
    for (int k = threadIdx.y; k < nout; k += 8) {
        float s = 0;
        for (int j = 0; j < 8; j++) s += sh[k][j][threadIdx.x];
        part[(int64_t)blockIdx.y * nout * cols + k * cols + c] = s;
    }
}

/* dst[k][c] += the column sums of term's k-th value, k < nout <= NMAX */
template <int NMAX, class Term>
static cudaError_t hyena_colsum_add(float *const *dst, int nout, int64_t rows, int64_t cols, Term term,
                                    float *scratch, size_t scratch_floats, cudaStream_t s)
{
    if (cols == 0 || nout < 1 || nout > NMAX) return cols == 0 ? cudaSuccess : cudaErrorInvalidValue;
    int64_t width = (int64_t)nout * cols;
    int64_t slices = mdk_reduce_slices(rows, width, scratch_floats);
    int64_t per = (rows + slices - 1) / slices;
    if (per < 1) per = 1;
    hyena_colsum_part_kernel<NMAX><<<dim3((unsigned)((cols + 31) / 32), (unsigned)slices), dim3(32, 8), 0, s>>>(
        scratch, rows, cols, nout, per, term);
    cudaError_t e = cudaGetLastError();
    for (int k = 0; k < nout && e == cudaSuccess; k++)
        e = mdk_colsum_add(dst[k], scratch + (int64_t)k * cols, slices, width, cols, s);
    return e;
}

/* Grid for a grid-stride loop over n elements, 256 threads a block. */
static inline unsigned hyena_grid(int64_t n)
{
    int64_t g = (n + 255) / 256;
    return (unsigned)(g > 1048576 ? 1048576 : (g < 1 ? 1 : g));
}

#endif
