/* Embedding forward and a deterministic backward (backend_kernels.h).
 *
 * The backward sorts nothing and uses no atomics: the vocabulary is tiny
 * (16 tokens), so a block owns a 32-channel tile and a slice of rows, and
 * each of its 8 warps keeps one accumulator per (token, channel) in shared
 * memory for the rows w, w+8, ... of the slice; the warps' sums are added
 * in warp order, the slices' by mdk_colsum_add in slice order. */
#include "backend_kernels.h"

enum { EW = 8 };   /* warps per block */

/* One warp per row (grid-stride), lanes over the columns, V = 4 (float4)
 * where out's rows and the table allow it: no division per element, and
 * at d = 128 one 16-byte copy a lane per row */
template <int V>
__global__ void __launch_bounds__(EW * 32) embedding_fwd_kernel(float *out, int64_t ldo, const uint8_t *tok,
                                                              const float *w, int64_t rows, int64_t dim)
{
    int lane = threadIdx.x & 31;
    for (int64_t r = (int64_t)blockIdx.x * EW + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * EW) {
        const float *wr = w + (int64_t)tok[r] * dim;
        float *o = out + r * ldo;
        for (int64_t c = lane * V; c < dim; c += 32 * V) {
            if (V == 4) *(float4 *)(o + c) = *(const float4 *)(wr + c);
            else o[c] = wr[c];
        }
    }
}

extern "C" cudaError_t mdk_embedding_fwd(float *out, int64_t ldo, const uint8_t *tok, const float *w, int64_t rows,
                                         int64_t dim, cudaStream_t s)
{
    if (rows * dim == 0) return cudaSuccess;
    int64_t g = (rows + EW - 1) / EW;
    unsigned grid = (unsigned)(g > 65536 ? 65536 : g);
    if (dim % 4 == 0 && ldo % 4 == 0 && (uintptr_t)out % 16 == 0 && (uintptr_t)w % 16 == 0)
        embedding_fwd_kernel<4><<<grid, EW * 32, 0, s>>>(out, ldo, tok, w, rows, dim);
    else
        embedding_fwd_kernel<1><<<grid, EW * 32, 0, s>>>(out, ldo, tok, w, rows, dim);
    return cudaGetLastError();
}

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
