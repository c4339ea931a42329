/* An f32 GEMM in AVX-512 for the shapes where OpenBLAS loses most: the
 * model's projections with a small inner dimension and an output written
 * from scratch (beta = 0), on activations that come from DRAM.
 *
 * OpenBLAS packs both operands and, for beta = 0, first zeroes C in a pass
 * of its own, then adds the product into it: C crosses the memory bus
 * three times (read for ownership, zeroing, update) and the packing copies
 * are a large share of a product with K = 128. Here C is written once,
 * from registers, after its prefetch; A is read in place; only B^T's
 * panel is copied (for op(B) = B^T).
 *
 * Tile: MR = 6 rows of C by 64 columns (four 16-lane vectors), 24
 * accumulators; per k, the 64-wide row of the B panel is loaded once and
 * A(r, k) of the 6 rows is broadcast. With op(A) = A^T or op(B) = B^T, K
 * runs in blocks of KC = 128, so that a block's panel of B (128 x 64
 * floats, 32 KiB) and the lines of A a tile reads stay in L1 (NN, whose
 * panel is read in place, runs K whole as before: blocked, in_proj's
 * input gradient, K = 512, gained nothing per shape, and its C would
 * cross the bus once per block). Every C element is beta C plus the
 * blocks' sums in increasing order, each summed over k in increasing
 * order in a register, whatever the tiling or the split of C over threads
 * (the blocks depend on K alone).
 *
 * In the 1.4M model at L = 1024 on one core this takes in_proj's forward
 * from 1.27 to 0.94 ms per sequence, and all the GEMMs of a training step
 * of 4 x 1024 tokens from about 277 to 259 ms. The weight gradients (op(A) = A^T,
 * K = L) first stayed with OpenBLAS on in_proj's (m = 512: 40% slower).
 * Over all of K = 1024, the B panel (K x 64, 256 KiB) streams from L2 at
 * every tile, and the six values of A^T that a tile broadcasts per k lie
 * in a new cache line at every k, evicted before the next tile's rows use
 * the same lines. In blocks of KC = 128 k, they stay in L1: per shape
 * (test_cpu_paths --bench-gemm, one thread) in_proj's weight gradient went
 * from 117 GFLOP/s (unblocked, A^T packed) to 138, past OpenBLAS's 128, and
 * out_proj's from 130-140 to 149-152. The forward products with K = 256
 * (out_proj's, x_proj's), whose B^T panel had outgrown L1 (64 KiB), ran
 * 5-12% below OpenBLAS unblocked, and 1-7% above it in blocks. The narrow
 * products below (n <= 8: dt_proj's two gradients) are where OpenBLAS ran
 * at 20-60 GFLOP/s.
 *
 * Those rates were measured on operands in L3. In the model they come
 * from DRAM, and the products ran 10-25% slower there; the tiles' own
 * prefetches (GEMM_TILE) took them back most of the way (test_cpu_paths
 * --bench-gemm 256, operands from DRAM, medians of 8 alternations:
 * in_proj's forward, input and weight gradients 153 -> 161, 139 -> 161,
 * 136 -> 151 GFLOP/s; out_proj's 141 -> 159, 150 -> 162, 132 -> 140;
 * x_proj's forward 97 -> 120; C's rows spread over the k loop as well
 * then took in_proj's forward and out_proj's input gradient 3-7% further).
 */
#include "backend/cpu/cpu_kernels.h"

#if MD_CPU_HAVE_AVX512

#include <immintrin.h>
#include <string.h>

#include "backend/cpu/cpu_avx512.h"

enum { MR = 6, PANEL = 64, NARROW = 8, MAX_K_NARROW = 1024, KC = 128, MC_TN = 4 * MR };

/* C[0..R) x [0..16 NV) = alpha sum_k A(r, k) P[k][.] + beta C; A(r, k) = a[r ars + k aks];
 * the last vector of each row has mask last.
 *
 * The operands come from DRAM in the model (300 MiB of activations a step
 * at 1.4M), and the tile fetches ahead what the hardware prefetchers do
 * not: with op(A) = A (tn = 0) the next tile's rows of A (an, unless NULL),
 * a line of each every 16 k, and the rows of C two tiles ahead (cn, unless
 * NULL), a line every 4 k, spread over the k loop (fetched all at once
 * before the tile, as before, they held the loads up); with op(A) = A^T
 * (tn = 1) the line of A^T and the row of the panel PF_K k ahead, which
 * are lda and ldp apart at every k. */
enum { PF_K = 8 };
/* One k of a tile: the row kk of the panel times A(., kk) into acc */
#define GEMM_K_STEP(R, NV, kk)                                                                                       \
    do {                                                                                                             \
        if (tn && (kk) + PF_K < K) {                                                                                 \
            __builtin_prefetch(a + ((kk) + PF_K) * aks, 0, 3);                                                       \
            __builtin_prefetch(a + ((kk) + PF_K) * aks + R - 1, 0, 3);                                               \
            _Pragma("GCC unroll 16")                                                                                 \
            for (int v = 0; v < NV; v++) __builtin_prefetch(p + ((kk) + PF_K) * ldp + 16 * v, 0, 3);                \
        }                                                                                                            \
        __m512 b[NV];                                                                                                \
        _Pragma("GCC unroll 16")                                                                                     \
        for (int v = 0; v < NV - 1; v++) b[v] = _mm512_loadu_ps(p + (kk) * ldp + 16 * v);                            \
        b[NV - 1] = _mm512_maskz_loadu_ps(last, p + (kk) * ldp + 16 * (NV - 1));                                     \
        _Pragma("GCC unroll 16")                                                                                     \
        for (int r = 0; r < R; r++) {                                                                                \
            __m512 av = _mm512_set1_ps(a[r * ars + (kk) * aks]);                                                     \
            _Pragma("GCC unroll 16")                                                                                 \
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, b[v], acc[r][v]);                           \
        }                                                                                                            \
    } while (0)
/* With op(A) = A, what the tile fetches ahead for the 4 k from k4 (a
 * multiple of 4): at k4 = 0 mod 16 the next tile's rows of A, and a line
 * of C's rows two tiles ahead (the k4 / 4-th, while there are lines left) */
#define GEMM_PF_NEXT(NV, k4)                                                                                         \
    do {                                                                                                             \
        if (an && !((k4) & 15))                                                                                      \
            for (int r = 0; r < MR; r++) __builtin_prefetch(an + r * ars + (k4), 0, 3);                              \
        if (cn && ((k4) >> 2) < MR * (NV + 1)) {                                                                     \
            int64_t i_ = (k4) >> 2, r_ = i_ / (NV + 1), l_ = i_ % (NV + 1);                                          \
            __builtin_prefetch(cn + r_ * ldc + (l_ < NV ? 16 * l_ : 16 * NV - 1), 1, 3);                             \
        }                                                                                                            \
    } while (0)
/* With op(A) = A the k loop runs 4 k at a time, its prefetches placed once
 * per 4 k where they were tested at every k (in_proj's and out_proj's
 * forward and input-gradient products 4-13% faster); with op(A) = A^T,
 * whose prefetches come at every k, k by k (4 or 2 at a time it ran 5-10%
 * slower) */
#define GEMM_TILE(R, NV)                                                                                             \
    static inline __attribute__((always_inline)) AVX512 void tile_##R##_##NV(                                       \
        int64_t K, const float *a, int64_t ars, int64_t aks, const float *p, int64_t ldp, __mmask16 last,            \
        float alpha, float beta, float *c, int64_t ldc, const float *an, float *cn, const int tn)                      \
    {                                                                                                                \
        __m512 acc[R][NV];                                                                                           \
        _Pragma("GCC unroll 16")                                                                                     \
        for (int r = 0; r < R; r++) {                                                                                \
            _Pragma("GCC unroll 16")                                                                                 \
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();                                            \
        }                                                                                                            \
        int64_t k = 0;                                                                                               \
        for (; !tn && k + 4 <= K; k += 4) {                                                                          \
            GEMM_PF_NEXT(NV, k);                                                                                     \
            GEMM_K_STEP(R, NV, k);                                                                                   \
            GEMM_K_STEP(R, NV, k + 1);                                                                               \
            GEMM_K_STEP(R, NV, k + 2);                                                                               \
            GEMM_K_STEP(R, NV, k + 3);                                                                               \
        }                                                                                                            \
        for (; k < K; k++) {                                                                                         \
            if (!tn && !(k & 3)) GEMM_PF_NEXT(NV, k);                                                                \
            GEMM_K_STEP(R, NV, k);                                                                                   \
        }                                                                                                            \
        __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);                                                \
        _Pragma("GCC unroll 16")                                                                                     \
        for (int r = 0; r < R; r++)                                                                                  \
            _Pragma("GCC unroll 16")                                                                                 \
            for (int v = 0; v < NV; v++) {                                                                           \
                __mmask16 m = v == NV - 1 ? last : (__mmask16)0xFFFF;                                                \
                float *cp = c + r * ldc + 16 * v;                                                                    \
                __m512 x = alpha == 1.0f ? acc[r][v] : _mm512_mul_ps(va, acc[r][v]);                                 \
                if (beta != 0.0f) x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, cp), x);                          \
                _mm512_mask_storeu_ps(cp, m, x);                                                                     \
            }                                                                                                        \
    }

/* Rows of A (n floats each) for the next tile, and rows of C (n floats,
 * to be written) two tiles ahead: on activations that come from DRAM the
 * hardware prefetcher starts each row too late, and with a small K a tile
 * is over before its own C could arrive. */
static inline void prefetch_rows(const float *a, int64_t rows, int64_t lda, int64_t n, int write)
{
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t k = 0; k < n; k += 16) {
            if (write) __builtin_prefetch(a + r * lda + k, 1, 3);
            else __builtin_prefetch(a + r * lda + k, 0, 3);
        }
        if (write) __builtin_prefetch(a + r * lda + n - 1, 1, 3);
    }
}

static inline int64_t clamp_rows(int64_t n) { return n < 0 ? 0 : n < MR ? n : MR; }

#define GEMM_TILES(NV)                                                                                                 \
    GEMM_TILE(1, NV) GEMM_TILE(2, NV) GEMM_TILE(3, NV) GEMM_TILE(4, NV) GEMM_TILE(5, NV) GEMM_TILE(6, NV)              \
    static inline __attribute__((always_inline)) AVX512 void rows_body_##NV(                                           \
        int64_t M, int64_t K, const float *a, int64_t ars, int64_t aks, const float *p, int64_t ldp,                   \
        __mmask16 last, float alpha, float beta, float *c, int64_t ldc, const int tn)                                  \
    {                                                                                                                  \
        int64_t r = 0;                                                                                                 \
        prefetch_rows(c, M < 2 * MR ? M : 2 * MR, ldc, 16 * NV, 1);                                                    \
        for (; r + MR <= M; r += MR) {                                                                                 \
            int spread = !tn && 4 * MR * (NV + 1) <= K && r + 3 * MR <= M;                                             \
            if (!spread) prefetch_rows(c + (r + 2 * MR) * ldc, clamp_rows(M - r - 2 * MR), ldc, 16 * NV, 1);           \
            tile_6_##NV(K, a + r * ars, ars, aks, p, ldp, last, alpha, beta, c + r * ldc, ldc,                         \
                        r + 2 * MR <= M ? a + (r + MR) * ars : NULL, spread ? c + (r + 2 * MR) * ldc : NULL, tn);      \
        }                                                                                                              \
        float *cr = c + r * ldc;                                                                                       \
        const float *ar = a + r * ars;                                                                                 \
        switch (M - r) {                                                                                               \
        case 5: tile_5_##NV(K, ar, ars, aks, p, ldp, last, alpha, beta, cr, ldc, NULL, NULL, tn); break;               \
        case 4: tile_4_##NV(K, ar, ars, aks, p, ldp, last, alpha, beta, cr, ldc, NULL, NULL, tn); break;               \
        case 3: tile_3_##NV(K, ar, ars, aks, p, ldp, last, alpha, beta, cr, ldc, NULL, NULL, tn); break;               \
        case 2: tile_2_##NV(K, ar, ars, aks, p, ldp, last, alpha, beta, cr, ldc, NULL, NULL, tn); break;               \
        case 1: tile_1_##NV(K, ar, ars, aks, p, ldp, last, alpha, beta, cr, ldc, NULL, NULL, tn); break;               \
        default: break;                                                                                                \
        }                                                                                                              \
    }                                                                                                                  \
    /* Whole panels (last: all 16 lanes) take a copy of the tiles in which the                                         \
     * mask is a constant, so that their loads and stores of B and C are                                               \
     * unmasked: a variable, the mask was reloaded from the stack at every k                                           \
     * (the 1.4M model's GEMMs, `--profile` -t 1: 0.940 -> 0.909 CPU s per 5                                           \
     * steps) */                                                                                                       \
    static AVX512 void rows_##NV(int64_t M, int64_t K, const float *a, int64_t ars, int64_t aks, const float *p,       \
                                 int64_t ldp, __mmask16 last, float alpha, float beta, float *c, int64_t ldc)          \
    {                                                                                                                  \
        const __mmask16 full = 0xFFFF;                                                                                 \
        if (aks == 1 && last == full) rows_body_##NV(M, K, a, ars, aks, p, ldp, full, alpha, beta, c, ldc, 0);         \
        else if (aks == 1) rows_body_##NV(M, K, a, ars, aks, p, ldp, last, alpha, beta, c, ldc, 0);                    \
        else if (last == full) rows_body_##NV(M, K, a, ars, aks, p, ldp, full, alpha, beta, c, ldc, 1);                \
        else rows_body_##NV(M, K, a, ars, aks, p, ldp, last, alpha, beta, c, ldc, 1);                                  \
    }

GEMM_TILES(1)
GEMM_TILES(2)
GEMM_TILES(3)
GEMM_TILES(4)

/* Products with at most NARROW = 8 columns of C: dt_proj's input and
 * weight gradients (n = dt_rank). The tiles above would use 8 of each
 * vector's 16 lanes and, with one accumulator per row, wait on the FMA
 * latency; these run k (NN) or the rows of C (TN) along the lanes. */

static inline __mmask16 lanes_below(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

/* C = alpha A B + beta C, n <= 8: two rows of C at a time, 16
 * accumulators (row, column) of partial sums over k mod 16, added across
 * lanes at the end (md_avx512_sum16x16: lanes 0-7 the first row's
 * columns, 8-15 the second's). B^T is copied once, zero-padded to 8 rows. */
static AVX512 void narrow_nn(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                             const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    float bt[NARROW * MAX_K_NARROW] __attribute__((aligned(64)));
    float red[16 * 16] __attribute__((aligned(64)));
    int64_t Kp = (K + 15) & ~(int64_t)15;
    for (int64_t j = 0; j < NARROW; j++)
        for (int64_t k = 0; k < Kp; k++) bt[j * Kp + k] = j < N && k < K ? B[k * ldb + j] : 0.0f;
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int64_t r = 0; r < M; r += 2) {
        const float *a0 = A + r * lda, *a1 = r + 1 < M ? a0 + lda : a0;   /* an odd last row: its own twin */
        __m512 acc[2][NARROW];
        for (int j = 0; j < NARROW; j++) acc[0][j] = acc[1][j] = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; k += 16) {
            __mmask16 m = lanes_below(K - k);
            __m512 x0 = _mm512_maskz_loadu_ps(m, a0 + k), x1 = _mm512_maskz_loadu_ps(m, a1 + k);
            for (int j = 0; j < NARROW; j++) {
                __m512 w = _mm512_load_ps(bt + j * Kp + k);
                acc[0][j] = _mm512_fmadd_ps(x0, w, acc[0][j]);
                acc[1][j] = _mm512_fmadd_ps(x1, w, acc[1][j]);
            }
        }
        for (int j = 0; j < NARROW; j++) {
            _mm512_store_ps(red + 16 * j, acc[0][j]);
            _mm512_store_ps(red + 16 * (NARROW + j), acc[1][j]);
        }
        __m512 sum = _mm512_mul_ps(va, md_avx512_sum16x16(red));
        for (int h = 0; h < 2 && r + h < M; h++) {
            __m512 x = h ? _mm512_shuffle_f32x4(sum, sum, 0xEE) : sum;   /* the row's 8 sums in lanes 0-7 */
            float *c = C + (r + h) * ldc;
            __mmask16 m = lanes_below(N);
            if (beta != 0.0f) x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, c), x);
            _mm512_mask_storeu_ps(c, m, x);
        }
    }
}

/* C = alpha A^T B + beta C, n <= 8 (A is k x m): 32 rows of C at a time
 * along the lanes of two vectors, one accumulator per (vector, column),
 * each the sum over k in increasing order. */
static AVX512 void narrow_tn(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                             const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    enum { RB = 32, PF = 16 };
    float out[NARROW * RB] __attribute__((aligned(64)));
    for (int64_t i0 = 0; i0 < M; i0 += RB) {
        __mmask16 m0 = lanes_below(M - i0), m1 = lanes_below(M - i0 - 16 < 0 ? 0 : M - i0 - 16);
        __m512 acc[2][NARROW];
        for (int j = 0; j < NARROW; j++) acc[0][j] = acc[1][j] = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; k++) {
            const float *ak = A + k * lda + i0, *bk = B + k * ldb;
            if (k + PF < K) __builtin_prefetch(ak + PF * lda + RB - 1, 0, 3);   /* rows of A are lda apart */
            __m512 x0 = _mm512_maskz_loadu_ps(m0, ak), x1 = _mm512_maskz_loadu_ps(m1, ak + 16);
            for (int j = 0; j < NARROW; j++) {
                __m512 w = _mm512_set1_ps(bk[j < N ? j : N - 1]);   /* columns past n: computed, never stored */
                acc[0][j] = _mm512_fmadd_ps(x0, w, acc[0][j]);
                acc[1][j] = _mm512_fmadd_ps(x1, w, acc[1][j]);
            }
        }
        for (int j = 0; j < NARROW; j++) {
            _mm512_store_ps(out + j * RB, acc[0][j]);
            _mm512_store_ps(out + j * RB + 16, acc[1][j]);
        }
        for (int64_t i = 0; i < RB && i0 + i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                float *c = C + (i0 + i) * ldc + j;
                *c = beta != 0.0f ? alpha * out[j * RB + i] + beta * *c : alpha * out[j * RB + i];
            }
    }
}

int md_cpu_sgemm_avx512_takes(int ta, int tb, int64_t m, int64_t n, int64_t k)
{
    if (!md_cpu_avx512_active() || m < 1 || n < 1 || k < 1) return 0;
    if (n <= NARROW && !tb) return ta || k <= MAX_K_NARROW;
    /* TN: the weight gradients (n = 128, 256 in the 1.4M model) */
    if (ta) return !tb && n >= 64 && n <= 256;
    /* NT: the forward projections;
     * NN: the input gradients, except the small-K one (x_proj's, K = 40)
     * where OpenBLAS is as fast */
    return tb || k >= 128 || n < 64;
}

/* C = alpha op(A) op(B) + beta C, panel by panel of B (K <= KC for op(B) = B^T; a copied panel for
 * NN with K <= KC). */
static AVX512 void panels(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                          const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    float panel[KC * PANEL] __attribute__((aligned(64)));
    for (int64_t n0 = 0; n0 < N; n0 += PANEL) {
        int64_t nw = N - n0 < PANEL ? N - n0 : PANEL;
        int nv = (int)((nw + 15) / 16);
        __mmask16 last = nw % 16 ? (__mmask16)((1u << (nw % 16)) - 1) : (__mmask16)0xFFFF;
        const float *p = B + n0;
        int64_t ldp = ldb;
        if (tb) {   /* op(B) = B^T: its K x nw panel, transposed from rows n0.. of B */
            /* in 16 x 16 blocks where whole (one by one, the copy took ~7%
             * of in_proj's and out_proj's forward products) */
            int64_t jw = nw & ~(int64_t)15, kw = K & ~(int64_t)15;
            for (int64_t j = 0; j < jw; j += 16)
                for (int64_t kk = 0; kk < kw; kk += 16)
                    md_avx512_transpose16x16(panel + kk * PANEL + j, PANEL, B + (n0 + j) * ldb + kk, ldb);
            for (int64_t j = 0; j < nw; j++) {
                const float *src = B + (n0 + j) * ldb;
                for (int64_t kk = j < jw ? kw : 0; kk < K; kk++) panel[kk * PANEL + j] = src[kk];
            }
            p = panel;
            ldp = PANEL;
        } else if (!ta && K <= KC) {
            /* NN with a short K (out_proj's input gradient, K = 128): B's
             * rows are ldb apart, and a panel read in place, 256 bytes of
             * each row, falls on a quarter of L1's sets for ldb = 256 and is
             * evicted between tiles; copied together it stays. (Longer K do
             * not fit L1 anyway, and the TN weight gradients ran slower with
             * their blocks copied.) */
            for (int64_t kk = 0; kk < K; kk++)
                memcpy(panel + kk * PANEL, B + kk * ldb + n0, (size_t)nw * sizeof(float));
            p = panel;
            ldp = PANEL;
        }
        switch (nv) {
        case 1: rows_1(M, K, A, ta ? 1 : lda, ta ? lda : 1, p, ldp, last, alpha, beta, C + n0, ldc); break;
        case 2: rows_2(M, K, A, ta ? 1 : lda, ta ? lda : 1, p, ldp, last, alpha, beta, C + n0, ldc); break;
        case 3: rows_3(M, K, A, ta ? 1 : lda, ta ? lda : 1, p, ldp, last, alpha, beta, C + n0, ldc); break;
        default: rows_4(M, K, A, ta ? 1 : lda, ta ? lda : 1, p, ldp, last, alpha, beta, C + n0, ldc); break;
        }
    }
}

AVX512 void md_cpu_sgemm_avx512(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                                int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (ta && N <= NARROW) {
        narrow_tn(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (!tb && N <= NARROW) {
        narrow_nn(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* C = beta C + block 0 + block 1 + ... (blocks of KC k, see the top).
     * With op(A) = A^T, a K block's rows of C go MC_TN at a time through
     * every panel: the lines of A^T their tiles read (one per k, lda apart,
     * from DRAM at the first panel) are read again by the next panels while
     * still in L2, where over all of M they had left it (7M's in_proj
     * weight gradient, 1024 x 256 x 1024: 114-122 -> 129-136 GFLOP/s; no
     * change beyond the noise at 1.4M's shapes). */
    int64_t kc = ta || tb ? KC : K, mc = ta ? MC_TN : M;
    for (int64_t k0 = 0; k0 < K; k0 += kc)
        for (int64_t m0 = 0; m0 < M; m0 += mc)
            panels(ta, tb, M - m0 < mc ? M - m0 : mc, N, K - k0 < kc ? K - k0 : kc, alpha,
                   A + (ta ? k0 * lda + m0 : k0 + m0 * lda), lda, B + (tb ? k0 : k0 * ldb), ldb, k0 ? 1.0f : beta,
                   C + m0 * ldc, ldc);
}

#else

int md_cpu_sgemm_avx512_takes(int ta, int tb, int64_t m, int64_t n, int64_t k) { return 0; }

void md_cpu_sgemm_avx512(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
}

#endif
