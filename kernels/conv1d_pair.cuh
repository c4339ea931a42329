/* One row of the width-K causal conv1d + SiLU forward over a channel
 * pair, from its window of x (rows t - K + 1 .. t, the taps before a
 * sequence's start already zero): the forward's arithmetic (the same FMAs
 * in the same order, md_sigmoid), shared by conv1d.cu's staged forward
 * and mamba_in_proj.cu's fused one so that the two agree bit for bit on
 * the same x. Then the window slides down one row. */
#ifndef MD_KERNELS_CONV1D_PAIR_CUH
#define MD_KERNELS_CONV1D_PAIR_CUH

#include "fastmath.cuh"

template <int K>
__device__ __forceinline__ void conv_silu_pair(float (&out)[2], float (&win)[K][2], const float (&wk)[2][K],
                                               const float (&b)[2])
{
#pragma unroll
    for (int v = 0; v < 2; v++) {
        float p = b[v];
#pragma unroll
        for (int k = 0; k < K; k++) p += wk[v][k] * win[k][v];
        out[v] = p * md_sigmoid(p);
    }
#pragma unroll
    for (int k = 0; k < K - 1; k++) win[k][0] = win[k + 1][0], win[k][1] = win[k + 1][1];
}

#endif
