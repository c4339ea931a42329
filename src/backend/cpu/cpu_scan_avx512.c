/* The f32 selective scan's work items written for AVX-512 (F + DQ).
 *
 * Same work split, checkpoint layout and summation structure as the
 * portable items in cpu_scan_tmpl.h (which the f32 scan calls instead on
 * CPUs without AVX-512, and which this file must match in what it writes).
 * What the portable C does not give, measured in the 1.4M model at
 * L = 1024 on one core (about 20% less time on the scan, forward and
 * backward alike):
 *  - exp(dt A) as 2^(dt A log2 e): the reduction x - floor(x) is one
 *    VREDUCEPS and the scaling by 2^floor(x) one VSCALEFPS, so an exp
 *    costs a multiply, those two and five FMAs (exp2_neg);
 *  - the backward's per-step sums over the chunk's 64 channels for dB and
 *    dC (2 N horizontal sums per step) become one 16 x 16 transpose-and-add
 *    per 16 states instead of 16 separate reductions; and the input
 *    term of d(dt) and du, sum_n (d loss / d h_n) B_n, is summed once;
 *  - steps are processed in blocks, the inputs' per-channel work
 *    (softplus) apart from the recurrence, with the next block's rows
 *    prefetched;
 *  - y, the checkpoints and dz are stored past the cache: the checkpoints
 *    and dz are read an op or more later, y by the GEMM right after, which
 *    loses a third of what the scan gains (its first rows have left L2).
 * The items run with MXCSR's flush-to-zero and denormals-are-zero bits
 * set (restored on return): a denormal decay would make the state
 * denormal too and every later FMA on it a microcode assist. Before, a
 * clamp (x >= -125) kept 2^x normal; flushing instead spares one of the
 * ~14 vector operations per state and step (measured: forward 3%, backward
 * 1% faster). What flushing changes is below 2^-126.
 *
 * One item = one sequence b and one chunk of CH = 64 channels, four
 * 16-lane vectors; the last chunk of an E that is not a multiple of 64 is
 * handled with masked loads and stores (padded lanes read as 0, A = -1, so
 * they stay finite and are never written out).
 */
#include "backend/cpu/cpu_kernels.h"

#if MD_CPU_HAVE_AVX512

#pragma GCC optimize("no-trapping-math")   /* lets GCC if-convert the clamps: see cpu_math.h */

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_avx512.h"
#include "backend/cpu/cpu_math.h"

#define CH MD_CPU_SCAN_CH_F32
#define NV (CH / 16)   /* vectors per chunk */
enum { MAXN = 64 };

/* Sets flush-to-zero and denormals-are-zero; returns the MXCSR to restore */
static inline AVX512 unsigned flush_denormals(void)
{
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | _MM_FLUSH_ZERO_ON | 0x0040u);   /* 0x0040: DAZ */
    return csr;
}

/* dt = softplus(delta + bias) over the chunk */
static inline AVX512 void chunk_dt(const float *restrict dd, const float *restrict bias, float *restrict dt)
{
    for (int i = 0; i < NV; i++)
        _mm512_storeu_ps(dt + 16 * i,
                         softplus_v(_mm512_add_ps(_mm512_loadu_ps(dd + 16 * i), _mm512_loadu_ps(bias + 16 * i))));
}

/* sg = sigmoid(x (+ bias)) over the chunk */
static inline AVX512 void chunk_sigmoid(const float *restrict x, const float *restrict bias, float *restrict sg)
{
    for (int i = 0; i < NV; i++) {
        __m512 v = _mm512_loadu_ps(x + 16 * i);
        if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + 16 * i));
        _mm512_storeu_ps(sg + 16 * i, sigmoid_v(v));
    }
}

static inline AVX512 void chunk_load(float *restrict dst, const float *restrict row, const __mmask16 *m)
{
    for (int i = 0; i < NV; i++) _mm512_storeu_ps(dst + 16 * i, _mm512_maskz_loadu_ps(m[i], row + 16 * i));
}

/* Non-temporal stores, where the row is aligned and whole: no reading of
 * the line first (a third of the traffic of a store to a line not in the
 * cache), and no eviction of what the scan still reads. */
static inline AVX512 void chunk_stream(float *restrict row, const float *restrict src, const __mmask16 *m)
{
    if (((uintptr_t)row & 63) == 0 && m[NV - 1] == (__mmask16)0xFFFF) {
        for (int i = 0; i < NV; i++) _mm512_stream_ps(row + 16 * i, _mm512_loadu_ps(src + 16 * i));
        return;
    }
    for (int i = 0; i < NV; i++) _mm512_mask_storeu_ps(row + 16 * i, m[i], _mm512_loadu_ps(src + 16 * i));
}

static inline AVX512 void stream_block(float *restrict dst, const float *restrict src, int64_t n)
{
    if (((uintptr_t)dst & 63) == 0 && n % 16 == 0) {
        for (int64_t i = 0; i < n; i += 16) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
        return;
    }
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static inline AVX512 void chunk_store(float *restrict row, const float *restrict src, const __mmask16 *m)
{
    for (int i = 0; i < NV; i++) _mm512_mask_storeu_ps(row + 16 * i, m[i], _mm512_loadu_ps(src + 16 * i));
}

typedef struct {
    float A2[MAXN * CH] __attribute__((aligned(64)));   /* A log2(e), A = -exp(A_log): exp(dt A) = 2^(dt A2) */
    float An[MAXN * CH] __attribute__((aligned(64)));   /* A itself (the backward's d/d(dt)) */
    float Dv[CH] __attribute__((aligned(64)));
    float bias[CH] __attribute__((aligned(64)));
    /* the chunk's columns of dt_w, row r at r CH, zero past the chunk's end (delta formed only) */
    float Wdt[MD_CPU_SCAN_MAX_DT_RANK * CH] __attribute__((aligned(64)));
    __mmask16 m[NV];
} chunk_params_t;

AVX512 void md_cpu_scan_neg_exp_avx512(const float *x, int64_t n, float *a, float *a_log2e)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512d lo = exp_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)));
        __m512d hi = exp_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
        lo = _mm512_xor_pd(lo, _mm512_set1_pd(-0.0));   /* a sign flip, as -exp(x): -0 for 0 */
        hi = _mm512_xor_pd(hi, _mm512_set1_pd(-0.0));
        __m512 av = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)), _mm512_cvtpd_ps(hi), 1);
        _mm512_mask_storeu_ps(a + i, m, av);
        if (a_log2e) {
            __m512d l2e = _mm512_set1_pd(1.4426950408889634);
            __m256 l = _mm512_cvtpd_ps(_mm512_mul_pd(lo, l2e)), h = _mm512_cvtpd_ps(_mm512_mul_pd(hi, l2e));
            _mm512_mask_storeu_ps(a_log2e + i, m, _mm512_insertf32x8(_mm512_castps256_ps512(l), h, 1));
        }
    }
}

/* A = -exp(A_log) (An) and A log2 e (A2) of the chunk, from the double
 * exp of all its channels at once (rows e0.. of A_log are contiguous):
 * libm's exp, one call per value, took ~0.8% of a training step at 1.4M */
static void load_params(const md_cpu_scan_args_t *a, int64_t e0, chunk_params_t *p)
{
    const float *D = a->D, *dtb = a->dt_bias, *W = a->dt_w;
    int64_t N = a->d_state, R = a->dt_rank, nc = a->d_inner - e0 < CH ? a->d_inner - e0 : CH;
    if (!a->delta)
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < CH; c++) p->Wdt[r * CH + c] = c < nc ? W[(e0 + c) * R + r] : 0;
    float An[CH * MAXN], A2[CH * MAXN];   /* [c][n], as A_log */
    md_cpu_scan_neg_exp_avx512((const float *)a->A_log + e0 * N, nc * N, An, A2);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < CH; c++) {
            p->An[n * CH + c] = c < nc ? An[c * N + n] : -1.0f;
            p->A2[n * CH + c] = c < nc ? A2[c * N + n] : (float)(-1.0 * 1.4426950408889634);
        }
    for (int64_t c = 0; c < CH; c++) {
        p->Dv[c] = c < nc ? D[e0 + c] : 0;
        p->bias[c] = c < nc ? dtb[e0 + c] : 0;
    }
    for (int i = 0; i < NV; i++) {
        int64_t left = nc - 16 * i;
        p->m[i] = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
    }
}

/* delta over the chunk for one row: loaded, or (delta NULL) formed from
 * the row's dt_low, broadcast, and the chunk's columns of dt_w, one FMA
 * per r and vector in r order. Formed in the forward and again in the
 * backward's pass 2 (and pass 1 where the states are recomputed), R FMAs
 * a vector each time: about what dt_proj's GEMM cost, whose store of
 * delta and the scans' loads of it are gone. */
static inline AVX512 void chunk_delta(const md_cpu_scan_args_t *a, const chunk_params_t *p, int64_t row, int64_t e0,
                                      float *restrict dd)
{
    if (a->delta) {
        chunk_load(dd, (const float *)a->delta + row * a->ld_delta + e0, p->m);
        return;
    }
    const float *x = (const float *)a->dt_low + row * a->ld_dt_low;
    __m512 acc[NV];
    for (int i = 0; i < NV; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t r = 0; r < a->dt_rank; r++) {
        __m512 xr = _mm512_set1_ps(x[r]);
        for (int i = 0; i < NV; i++) acc[i] = _mm512_fmadd_ps(xr, _mm512_load_ps(p->Wdt + r * CH + 16 * i), acc[i]);
    }
    for (int i = 0; i < NV; i++) _mm512_storeu_ps(dd + 16 * i, acc[i]);
}

/* What a step of the recurrence writes besides the states: the decays,
 * and C . h added to y. A constant at each call, so that the compiler
 * drops the tests from the loop over the states (GCC kept them there,
 * a load and a branch per state, where the pointers were tested) */
enum { STEP_DEC = 1, STEP_Y = 2 };

/* One step of the recurrence over the N states, hin -> hout (may alias):
 * h = 2^(dt A2) h + dt u B; with STEP_DEC in outs keeps the decays in
 * dec, with STEP_Y adds C . h to y. */
static inline __attribute__((always_inline)) AVX512 void state_step(const chunk_params_t *p, int64_t N,
                                                                    const float *hin, float *hout, float *dec,
                                                                    const float *dt, const float *dtu,
                                                                    const float *Br, const float *Cr, float *y,
                                                                    const int outs)
{
    __m512 vdt[NV], vdtu[NV], vy[NV];
    for (int i = 0; i < NV; i++) {
        vdt[i] = _mm512_loadu_ps(dt + 16 * i);
        vdtu[i] = _mm512_loadu_ps(dtu + 16 * i);
        vy[i] = outs & STEP_Y ? _mm512_loadu_ps(y + 16 * i) : _mm512_setzero_ps();
    }
    for (int64_t n = 0; n < N; n++) {
        __m512 bn = _mm512_set1_ps(Br[n]), cn = _mm512_set1_ps(outs & STEP_Y ? Cr[n] : 0.0f);
        for (int i = 0; i < NV; i++) {
            int64_t o = n * CH + 16 * i;
            __m512 e = exp2_neg(_mm512_mul_ps(vdt[i], _mm512_loadu_ps(p->A2 + o)));
            __m512 h = _mm512_fmadd_ps(e, _mm512_loadu_ps(hin + o), _mm512_mul_ps(vdtu[i], bn));
            _mm512_storeu_ps(hout + o, h);
            if (outs & STEP_DEC) _mm512_storeu_ps(dec + o, e);
            if (outs & STEP_Y) vy[i] = _mm512_fmadd_ps(cn, h, vy[i]);
        }
    }
    if (outs & STEP_Y)
        for (int i = 0; i < NV; i++) _mm512_storeu_ps(y + 16 * i, vy[i]);
}

/* The rows of a chunk are CH floats a whole row apart, too far for the
 * hardware prefetchers, and the activations come from DRAM: without
 * software prefetch the per-step loads and stores wait on memory (the
 * forward's per-channel work took 8x its compute time). While one block
 * of steps runs its recurrence, the rows of the next are fetched. */
static inline void prefetch_row(const void *p, int write)
{
    const char *c = p;
    for (int q = 0; q < (int)(CH * sizeof(float)); q += 64) {
        if (write) __builtin_prefetch(c + q, 1, 3);
        else __builtin_prefetch(c + q, 0, 3);
    }
    if (write) __builtin_prefetch(c + CH * sizeof(float) - 1, 1, 3);   /* a row that starts mid-line */
    else __builtin_prefetch(c + CH * sizeof(float) - 1, 0, 3);
}

/* delta's row of the chunk, or the dt_low it is formed from */
static inline void prefetch_delta(const md_cpu_scan_args_t *a, int64_t row, int64_t e0)
{
    if (a->delta) {
        prefetch_row((const float *)a->delta + row * a->ld_delta + e0, 0);
        return;
    }
    const float *x = (const float *)a->dt_low + row * a->ld_dt_low;
    __builtin_prefetch(x, 0, 3);
    __builtin_prefetch(x + a->dt_rank - 1, 0, 3);
}

static inline void prefetch_BC(const md_cpu_scan_args_t *a, int64_t row)
{
    const float *Br = (const float *)a->Bm + row * a->ld_B, *Cr = (const float *)a->Cm + row * a->ld_C;
    __builtin_prefetch(Br, 0, 3);
    __builtin_prefetch(Br + a->d_state - 1, 0, 3);
    __builtin_prefetch(Cr, 0, 3);
    __builtin_prefetch(Cr + a->d_state - 1, 0, 3);
}

/* Steps are processed in blocks: first everything per (step, channel)
 * that the recurrence needs (softplus, ...) over the whole block, then the
 * recurrence. Interleaved step by step, each step's long softplus chain
 * would have to finish before its ~1000 instructions of recurrence could
 * start, and an out-of-order window of a few hundred cannot hide that.
 * The forward's gate, which only reads the recurrence, runs right after
 * each step's: the next step does not wait on it, and its loads of z
 * (from DRAM in the model) and streamed stores of y overlap that step's
 * arithmetic (scan_fwd ~12% less CPU time in the model than with the gate
 * in a pass of its own after the block's recurrence). */
enum { BLK = 16 };

/* dt, dt u, (when Du) D u and (when xs) delta + bias of steps t0 .. t0+nT
 * of sequence b, rows of CH */
static inline AVX512 void block_inputs(const md_cpu_scan_args_t *a, const chunk_params_t *p, int64_t b, int64_t e0,
                                       int64_t t0, int64_t nT, float *dt, float *dtu, float *Du, float *xs)
{
    for (int64_t j = 0; j < nT; j++) {
        int64_t row = b * a->len + t0 + j;
        float uu[CH] __attribute__((aligned(64))), dd[CH] __attribute__((aligned(64)));
        chunk_load(uu, (const float *)a->u + row * a->ld_u + e0, p->m);
        chunk_delta(a, p, row, e0, dd);
        if (xs) {
            float *restrict xj = xs + j * CH;
#pragma omp simd
            for (int c = 0; c < CH; c++) xj[c] = dd[c] + p->bias[c];
        }
        float *restrict dtj = dt + j * CH, *restrict dtuj = dtu + j * CH;
        chunk_dt(dd, p->bias, dtj);
#pragma omp simd
        for (int c = 0; c < CH; c++) dtuj[c] = dtj[c] * uu[c];
        if (Du) {
            float *restrict Duj = Du + j * CH;
#pragma omp simd
            for (int c = 0; c < CH; c++) Duj[c] = p->Dv[c] * uu[c];
        }
    }
}

AVX512 void md_cpu_scan_fwd_item_avx512(const md_cpu_scan_args_t *a, int64_t seg_len, int64_t b, int64_t e0,
                                        float *ckpt)
{
    const int64_t L = a->len, N = a->d_state, S = seg_len;
    unsigned csr = flush_denormals();
    chunk_params_t p;
    float h[MAXN * CH] __attribute__((aligned(64)));
    float dt[BLK * CH] __attribute__((aligned(64))), dtu[BLK * CH] __attribute__((aligned(64)));
    float y[BLK * CH] __attribute__((aligned(64)));
    load_params(a, e0, &p);
    memset(h, 0, sizeof h);
    int64_t next_ckpt = 0;
    for (int64_t t0 = 0; t0 < L; t0 += BLK) {
        int64_t nT = L - t0 < BLK ? L - t0 : BLK;
        block_inputs(a, &p, b, e0, t0, nT, dt, dtu, a->y ? y : NULL, NULL);
        for (int64_t j = 0; j < nT; j++) {
            int64_t t = t0 + j, row = b * L + t;
            if (ckpt && t == next_ckpt) {
                stream_block(ckpt + (t / S) * N * CH, h, N * CH);
                next_ckpt += S;
            }
            if (t + BLK < L) {
                int64_t r = row + BLK;
                prefetch_row((const float *)a->u + r * a->ld_u + e0, 0);
                prefetch_delta(a, r, e0);
                prefetch_row((const float *)a->z + r * a->ld_z + e0, 0);
                prefetch_BC(a, r);
            }
            if (!a->y) {   /* the states alone (ops.h) */
                state_step(&p, N, h, h, NULL, dt + j * CH, dtu + j * CH, (const float *)a->Bm + row * a->ld_B, NULL,
                           NULL, 0);
                continue;
            }
            state_step(&p, N, h, h, NULL, dt + j * CH, dtu + j * CH, (const float *)a->Bm + row * a->ld_B,
                       (const float *)a->Cm + row * a->ld_C, y + j * CH, STEP_Y);
            /* the gate y silu(z), overlapping the next step's recurrence */
            float zz[CH] __attribute__((aligned(64))), sg[CH] __attribute__((aligned(64)));
            float *restrict yj = y + j * CH;
            chunk_load(zz, (const float *)a->z + row * a->ld_z + e0, p.m);
            chunk_sigmoid(zz, NULL, sg);
#pragma omp simd
            for (int c = 0; c < CH; c++) yj[c] *= zz[c] * sg[c];
            chunk_stream((float *)a->y + row * a->ld_y + e0, yj, p.m);
        }
    }
    _mm_sfence();   /* the streamed stores before anything that follows, on any thread */
    _mm_setcsr(csr);
}

/* The reverse recurrence of one step: from dys (= dy silu(z)) and the
 * carried d loss / d h, the step's d(dt) from the decays (ddt, without
 * the input term), sB = sum_n (d loss / d h_n) B_n, dA += ..., and the
 * chunk's partial sums for dB and dC (16 lanes each) in red. */
static inline AVX512 void reverse_step(const chunk_params_t *p, int64_t N, int64_t NG, const float *hj,
                                       const float *hprev, const float *aj, const float *dt, const float *dtu,
                                       const float *dys, const float *Br, const float *Cr, float *carry, float *dA,
                                       float *ddt_out, float *sB_out, float *red)
{
    __m512 vdys[NV], vdtu[NV], vdt[NV], ddt[NV], sB[NV];
    for (int i = 0; i < NV; i++) {
        vdys[i] = _mm512_loadu_ps(dys + 16 * i);
        vdt[i] = _mm512_loadu_ps(dt + 16 * i);
        vdtu[i] = _mm512_loadu_ps(dtu + 16 * i);
        ddt[i] = sB[i] = _mm512_setzero_ps();
    }
    for (int64_t n = 0; n < N; n++) {
        __m512 bn = _mm512_set1_ps(Br[n]), cn = _mm512_set1_ps(Cr[n]);
        __m512 pb = _mm512_setzero_ps(), pc = _mm512_setzero_ps();
        for (int i = 0; i < NV; i++) {
            int64_t o = n * CH + 16 * i;
            __m512 dh = _mm512_fmadd_ps(vdys[i], cn, _mm512_loadu_ps(carry + o));   /* d loss / d h_t */
            __m512 cr = _mm512_mul_ps(_mm512_loadu_ps(aj + o), dh);                  /* its part via h_{t-1} */
            __m512 ea = _mm512_mul_ps(cr, _mm512_loadu_ps(hprev + o));               /* d loss / d (dt A) */
            _mm512_storeu_ps(carry + o, cr);
            pc = _mm512_fmadd_ps(vdys[i], _mm512_loadu_ps(hj + o), pc);
            pb = _mm512_fmadd_ps(dh, vdtu[i], pb);
            ddt[i] = _mm512_fmadd_ps(ea, _mm512_loadu_ps(p->An + o), ddt[i]);
            sB[i] = _mm512_fmadd_ps(dh, bn, sB[i]);
            _mm512_storeu_ps(dA + o, _mm512_fmadd_ps(ea, vdt[i], _mm512_loadu_ps(dA + o)));
        }
        _mm512_storeu_ps(red + 16 * n, pb);
        _mm512_storeu_ps(red + 16 * (16 * NG + n), pc);
    }
    for (int i = 0; i < NV; i++) {
        _mm512_storeu_ps(ddt_out + 16 * i, ddt[i]);
        _mm512_storeu_ps(sB_out + 16 * i, sB[i]);
    }
}

AVX512 void md_cpu_scan_bwd_item_avx512(const md_cpu_scan_args_t *a, int64_t seg_len, int64_t nseg, int64_t b,
                                        int64_t e0, const float *saved, float *scratch, float *bc, float *chan)
{
    const int64_t L = a->len, N = a->d_state, S = seg_len, NG = (N + 15) / 16;
    const int64_t nc = a->d_inner - e0 < CH ? a->d_inner - e0 : CH;
    unsigned csr = flush_denormals();
    chunk_params_t p;
    load_params(a, e0, &p);
    /* scratch: states and decays of a segment, the checkpoints when not
     * saved, then per step of the segment dt, dt u, the output before the
     * gate (later d loss / d y before the gate), d(dt), sB and delta + bias */
    float *hs = scratch, *as = hs + S * N * CH, *ckpt = as + S * N * CH, *dts = ckpt + S * N * CH;
    float *dtus = dts + S * CH, *yss = dtus + S * CH, *ddts = yss + S * CH, *sBs = ddts + S * CH;
    float *xss = sBs + S * CH;   /* delta + bias, kept from pass 2 for d(delta): delta is not read or formed again */
    float dA[MAXN * CH] __attribute__((aligned(64))), carry[MAXN * CH] __attribute__((aligned(64)));
    /* per step: the chunk's partial sums for dB (rows 0..) and dC (rows 16 NG..), 16 lanes each */
    float red[2 * MAXN * 16] __attribute__((aligned(64)));
    float dDa[CH] __attribute__((aligned(64))), dba[CH] __attribute__((aligned(64)));

    if (saved) {
        ckpt = (float *)saved;
    } else {   /* pass 1: the state entering each segment */
        float h[MAXN * CH] __attribute__((aligned(64)));
        memset(h, 0, sizeof h);
        for (int64_t s = 0; s < nseg; s++) {
            memcpy(ckpt + s * N * CH, h, (size_t)(N * CH) * sizeof(float));
            if (s == nseg - 1) break;
            block_inputs(a, &p, b, e0, s * S, S, dts, dtus, NULL, NULL);
            for (int64_t j = 0; j < S; j++) {
                int64_t row = b * L + s * S + j;
                state_step(&p, N, h, h, NULL, dts + j * CH, dtus + j * CH, (const float *)a->Bm + row * a->ld_B, NULL,
                           NULL, 0);
            }
        }
    }

    memset(dA, 0, (size_t)(N * CH) * sizeof(float));
    memset(carry, 0, (size_t)(N * CH) * sizeof(float));
    memset(red, 0, sizeof red);
    memset(dDa, 0, sizeof dDa);
    memset(dba, 0, sizeof dba);
    for (int64_t s = nseg - 1; s >= 0; s--) {
        int64_t t0 = s * S, nT = t0 + S < L ? S : L - t0;
        /* pass 2: the segment's states h_t, decays a_t and outputs C . h_t + D u */
        block_inputs(a, &p, b, e0, t0, nT, dts, dtus, yss, xss);
        for (int64_t j = 0; j < nT; j++) {
            int64_t row = b * L + t0 + j;
            if (s > 0) {   /* the next segment's rows (s - 1), in two halves: the memory system takes
                              only so many misses at once, and a prefetch that finds it full stalls */
                int64_t r = row - S;
                prefetch_row((const float *)a->u + r * a->ld_u + e0, 0);
                prefetch_delta(a, r, e0);
                prefetch_BC(a, r);
            }
            state_step(&p, N, j > 0 ? hs + (j - 1) * N * CH : ckpt + s * N * CH, hs + j * N * CH, as + j * N * CH,
                       dts + j * CH, dtus + j * CH, (const float *)a->Bm + row * a->ld_B,
                       (const float *)a->Cm + row * a->ld_C, yss + j * CH, STEP_DEC | STEP_Y);
        }
        /* the gate: dz out, and yss becomes dys = dy silu(z) */
        for (int64_t j = 0; j < nT; j++) {
            int64_t row = b * L + t0 + j;
            float zz[CH] __attribute__((aligned(64))), dyv[CH] __attribute__((aligned(64)));
            float dzo[CH] __attribute__((aligned(64))), sgz[CH] __attribute__((aligned(64)));
            float *restrict ys = yss + j * CH;
            chunk_load(zz, (const float *)a->z + row * a->ld_z + e0, p.m);
            chunk_load(dyv, (const float *)a->dy + row * a->ld_dy + e0, p.m);
            chunk_sigmoid(zz, NULL, sgz);
            if (a->y) {   /* the forward's y, as its gate forms it; dy is read (ops.h: y may be dy) */
                float yo[CH] __attribute__((aligned(64)));
#pragma omp simd
                for (int c = 0; c < CH; c++) yo[c] = ys[c] * (zz[c] * sgz[c]);
                chunk_store((float *)a->y + row * a->ld_y + e0, yo, p.m);
            }
#pragma omp simd
            for (int c = 0; c < CH; c++) {
                float sg = sgz[c];
                dzo[c] = dyv[c] * ys[c] * sg * (1 + zz[c] * (1 - sg));
                ys[c] = dyv[c] * zz[c] * sg;
            }
            chunk_stream((float *)a->dz + row * a->ld_dz + e0, dzo, p.m);   /* next read by in_proj's backward */
        }
        /* pass 3: the reverse recurrence over the segment */
        for (int64_t j = nT - 1; j >= 0; j--) {
            int64_t row = b * L + t0 + j;
            if (s > 0) {   /* the next segment's rows, second half */
                int64_t r = row - S;
                prefetch_row((const float *)a->z + r * a->ld_z + e0, 0);
                prefetch_row((const float *)a->dy + r * a->ld_dy + e0, 0);
                prefetch_row((float *)a->du + r * a->ld_du + e0, 1);
                prefetch_row((float *)a->ddelta + r * a->ld_ddelta + e0, 1);
            }
            reverse_step(&p, N, NG, hs + j * N * CH, j > 0 ? hs + (j - 1) * N * CH : ckpt + s * N * CH,
                         as + j * N * CH, dts + j * CH, dtus + j * CH, yss + j * CH,
                         (const float *)a->Bm + row * a->ld_B, (const float *)a->Cm + row * a->ld_C, carry, dA,
                         ddts + j * CH, sBs + j * CH, red);
            float *bcr = bc + row * 2 * N;
            for (int64_t g = 0; g < 2 * NG; g++) {
                int64_t n0 = (g % NG) * 16, cnt = N - n0 < 16 ? N - n0 : 16;
                _mm512_mask_storeu_ps(bcr + (g < NG ? 0 : N) + n0, (__mmask16)((1u << cnt) - 1),
                                      md_avx512_sum16x16(red + 16 * 16 * g));
            }
        }
        /* du = dys D + sB dt, d(delta) = (ddt + sB u) sigmoid(delta + bias), in step order */
        for (int64_t j = 0; j < nT; j++) {
            int64_t row = b * L + t0 + j;
            float uu[CH] __attribute__((aligned(64)));
            float duo[CH] __attribute__((aligned(64))), ddo[CH] __attribute__((aligned(64)));
            float sgx[CH] __attribute__((aligned(64)));
            const float *restrict dys = yss + j * CH, *restrict ddt = ddts + j * CH, *restrict sB = sBs + j * CH;
            const float *restrict dt = dts + j * CH, *restrict xj = xss + j * CH;
            chunk_load(uu, (const float *)a->u + row * a->ld_u + e0, p.m);
            chunk_sigmoid(xj, NULL, sgx);
#pragma omp simd
            for (int c = 0; c < CH; c++) {
                float x = xj[c], g = ddt[c] + sB[c] * uu[c];
                ddo[c] = x > 20 ? g : g * sgx[c];
                duo[c] = dys[c] * p.Dv[c] + sB[c] * dt[c];
                dDa[c] += dys[c] * uu[c];
                dba[c] += ddo[c];
            }
            chunk_store((float *)a->du + row * a->ld_du + e0, duo, p.m);
            chunk_store((float *)a->ddelta + row * a->ld_ddelta + e0, ddo, p.m);
        }
    }
    _mm_sfence();   /* the streamed stores before anything that follows, on any thread */
    for (int64_t c = 0; c < nc; c++) {
        float *chp = chan + (b * a->d_inner + e0 + c) * (N + 2);
        for (int64_t n = 0; n < N; n++) chp[n] = dA[n * CH + c];
        chp[N] = dDa[c];
        chp[N + 1] = dba[c];
    }
    _mm_setcsr(csr);
}

#endif
