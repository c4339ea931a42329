/* Embedding forward and a deterministic backward (backend_kernels.h).
 *
 * The backward sorts nothing and uses no atomics: the vocabulary is tiny
 * (16 tokens), so a block owns a 32-channel tile and a slice of rows, and
 * each of its 8 warps keeps one accumulator per (token, channel) in shared
 * memory for the rows w, w+8, ... of the slice; the warps' sums are added
 * in warp order, the slices' by mdk_colsum_add in slice order. */
#include "backend_kernels.h"

__global__ void embedding_fwd_kernel(float *out, int64_t ldo, const uint8_t *tok, const float *w, int64_t rows,
                                     int64_t dim)
{
    int64_t n = rows * dim;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / dim, c = i - r * dim;
        out[r * ldo + c] = w[(int64_t)tok[r] * dim + c];
    }
}

extern "C" cudaError_t mdk_embedding_fwd(float *out, int64_t ldo, const uint8_t *tok, const float *w, int64_t rows,
                                         int64_t dim, cudaStream_t s)
{
    int64_t n = rows * dim;
    if (n == 0) return cudaSuccess;
    int64_t g = (n + 255) / 256;
    embedding_fwd_kernel<<<(unsigned)(g > 1048576 ? 1048576 : g), 256, 0, s>>>(out, ldo, tok, w, rows, dim);
    return cudaGetLastError();
}

enum { EW = 8 };   /* warps per block */

__global__ void __launch_bounds__(EW * 32) embedding_bwd_kernel(float *part, const float *dout, int64_t ldd,
                                                              const uint8_t *tok, int64_t rows, int64_t dim,
                                                              int vocab, int64_t rows_per_slice)
{
    __shared__ float acc[EW][MDK_EMB_MAX_VOCAB][32];
    int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    for (int v = 0; v < vocab; v++) acc[wp][v][lane] = 0;
    int64_t c = (int64_t)blockIdx.x * 32 + lane;
    int64_t r0 = (int64_t)blockIdx.y * rows_per_slice, r1 = r0 + rows_per_slice < rows ? r0 + rows_per_slice : rows;
    if (c < dim)
        for (int64_t r = r0 + wp; r < r1; r += EW) {
            int t = tok[r];
            if (t < vocab) acc[wp][t][lane] += dout[r * ldd + c];
        }
    __syncthreads();
    for (int i = threadIdx.x; i < vocab * 32; i += EW * 32) {
        int v = i >> 5, l = i & 31;
        int64_t col = (int64_t)blockIdx.x * 32 + l;
        if (col >= dim) continue;
        float s = 0;
        for (int k = 0; k < EW; k++) s += acc[k][v][l];
        part[((int64_t)blockIdx.y * vocab + v) * dim + col] = s;
    }
}

extern "C" cudaError_t mdk_embedding_bwd(float *dw, const float *dout, int64_t ldd, const uint8_t *tok,
                                         int64_t rows, int64_t dim, int64_t vocab, float *scratch,
                                         size_t scratch_floats, cudaStream_t s)
{
    if (rows == 0 || dim == 0) return cudaSuccess;
    if (vocab > MDK_EMB_MAX_VOCAB) return cudaErrorInvalidValue;
    int64_t slices = mdk_reduce_slices(rows, vocab * dim, scratch_floats);
    int64_t per = (rows + slices - 1) / slices;
    dim3 grid((unsigned)((dim + 31) / 32), (unsigned)slices);
    embedding_bwd_kernel<<<grid, EW * 32, 0, s>>>(scratch, dout, ldd, tok, rows, dim, (int)vocab, per);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    return mdk_colsum_add(dw, scratch, slices, vocab * dim, vocab * dim, s);
}
