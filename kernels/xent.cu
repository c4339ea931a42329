/* Fused softmax + cross-entropy with ignored targets (backend_kernels.h):
 * a thread per row (the vocabulary is 16), in double as the CPU does; the
 * loss sum and count over rows by fixed ranges, then one block. */
#include "backend_kernels.h"

#include <math.h>

#include "seq/tokenizer.h"

enum { XB = 256, XPARTS = 1024 };

__global__ void xent_rows_kernel(float *dl, int64_t ldd, const float *logits, int64_t ldl, const uint8_t *targets,
                                 int64_t rows, int64_t vocab, double gs, double *loss)
{
    int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float *l = logits + r * ldl;
    uint8_t t = targets[r];
    if (t < MD_TOK_A || t > MD_TOK_T || t >= vocab) {   /* md_tok_is_base, which is host-only */
        loss[r] = -1;
        if (dl)
            for (int64_t v = 0; v < vocab; v++) dl[r * ldd + v] = 0;
        return;
    }
    double mx = l[0];
    for (int64_t v = 1; v < vocab; v++) mx = l[v] > mx ? l[v] : mx;
    double se = 0;
    for (int64_t v = 0; v < vocab; v++) se += exp((double)l[v] - mx);
    double lse = mx + log(se);
    loss[r] = lse - (double)l[t];
    if (dl)
        for (int64_t v = 0; v < vocab; v++) dl[r * ldd + v] = (float)(gs * (exp((double)l[v] - lse) - (v == t ? 1.0 : 0.0)));
}

__device__ static void block_sum2(double *a, double *b)
{
    __shared__ double sa[XB], sb[XB];
    sa[threadIdx.x] = *a;
    sb[threadIdx.x] = *b;
    __syncthreads();
    for (int w = XB / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) sa[threadIdx.x] += sa[threadIdx.x + w], sb[threadIdx.x] += sb[threadIdx.x + w];
        __syncthreads();
    }
    *a = sa[0];
    *b = sb[0];
}

/* part[2 blk] = loss sum, part[2 blk + 1] = count over rows [blk per, ...) */
__global__ void __launch_bounds__(XB) xent_part_kernel(const double *loss, int64_t rows, int64_t per, double *part)
{
    int64_t r0 = blockIdx.x * per, r1 = r0 + per < rows ? r0 + per : rows;
    double s = 0, n = 0;
    for (int64_t r = r0 + threadIdx.x; r < r1; r += XB)
        if (loss[r] >= 0) s += loss[r], n += 1;
    block_sum2(&s, &n);
    if (threadIdx.x == 0) part[2 * blockIdx.x] = s, part[2 * blockIdx.x + 1] = n;
}

/* result = the totals, or (accumulate) result += them */
__global__ void __launch_bounds__(XB) xent_total_kernel(const double *part, int nb, double *result, int accumulate)
{
    double s = 0, n = 0;
    for (int i = threadIdx.x; i < nb; i += XB) s += part[2 * i], n += part[2 * i + 1];
    block_sum2(&s, &n);
    if (threadIdx.x == 0) {
        if (accumulate) s += result[0], n += result[1];
        result[0] = s, result[1] = n;
    }
}

extern "C" size_t mdk_xent_workspace(int64_t rows)
{
    return ((size_t)(rows > 0 ? rows : 1) * sizeof(double) + 255) / 256 * 256 + 2 * XPARTS * sizeof(double);
}

static cudaError_t xent(float *dl, int64_t ldd, const float *logits, int64_t ldl, const uint8_t *targets, int64_t rows,
                        int64_t vocab, double grad_scale, void *workspace, double *result, int accumulate,
                        cudaStream_t s)
{
    double *loss = (double *)workspace;
    double *part = (double *)((char *)workspace + ((size_t)(rows > 0 ? rows : 1) * sizeof(double) + 255) / 256 * 256);
    if (rows > 0)
        xent_rows_kernel<<<(unsigned)((rows + 127) / 128), 128, 0, s>>>(dl, ldd, logits, ldl, targets, rows, vocab,
                                                                         grad_scale, loss);
    int64_t per = (rows + XPARTS - 1) / XPARTS;
    if (per < 4096) per = 4096;
    int nb = (int)((rows + per - 1) / per);
    if (nb < 1) nb = 1;
    xent_part_kernel<<<nb, XB, 0, s>>>(loss, rows, per, part);
    xent_total_kernel<<<1, XB, 0, s>>>(part, nb, result, accumulate);
    return cudaGetLastError();
}

extern "C" cudaError_t mdk_xent(float *dl, int64_t ldd, const float *logits, int64_t ldl, const uint8_t *targets,
                                int64_t rows, int64_t vocab, double grad_scale, void *workspace, double *result,
                                cudaStream_t s)
{
    return xent(dl, ldd, logits, ldl, targets, rows, vocab, grad_scale, workspace, result, 0, s);
}

extern "C" cudaError_t mdk_xent_acc(float *dl, int64_t ldd, const float *logits, int64_t ldl, const uint8_t *targets,
                                    int64_t rows, int64_t vocab, double grad_scale, void *workspace, double *acc,
                                    cudaStream_t s)
{
    return xent(dl, ldd, logits, ldl, targets, rows, vocab, grad_scale, workspace, acc, 1, s);
}
