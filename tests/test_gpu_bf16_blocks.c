/* The bf16 storage of the CUDA backend's bf16 table against the CPU's
 * fp32 ops on the same bf16-rounded inputs, for the Hyena and Transformer++
 * blocks (test_gpu_bf16.c has the Mamba block's): the Hyena block's
 * LayerNorm, bias, GELU, short conv, long convolution and Linear with bf16
 * activations; the Transformer++ block's RoPE, causal attention (the
 * tensor-core kernels and the fp32 fallback's head dims) and SwiGLU. Fresh
 * random inputs every run (seed printed); outputs poisoned with NaN first;
 * whole buffers compared, row padding included. Tolerances:
 * gpu_bf16_util.h, and the Hyena section's below.
 *
 * Exits 77 (skipped) without CUDA or a GPU.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ops.h"
#include "gpu_bf16_util.h"
#include "gpu_testutil.h"
#include "testutil.h"
#include "util/rng.h"
#include "util/xalloc.h"

/* ---- the Hyena block's ops with bf16 activations ----
 * Limits beyond gpu_bf16_util.h's two: the long convolution's bf16 outputs
 * ONE_ROUNDING + TOL_FFT (its fp32 FFTs differ from the CPU's by up to
 * TOL_FFT, test_gpu_hyena); a bf16 output computed from bf16 values the
 * op rounded itself: one rounding more for each (linear_bwd_dx's gelu'
 * applied to its rounded product: two; the composed Linear, where
 * cuBLASLt has no algorithm: the product rounded, the bias added and
 * rounded (two), GELU of that (|gelu'| < 1.13, so just over three: four)). */
static const double TOL_FFT = 5e-5, TWO_ROUNDINGS = 2.0 / 256 + 1e-5, FOUR_ROUNDINGS = 4.0 / 256 + 1e-5;

/* LayerNorm with a bf16 y (x f32), its backward with a bf16 dy */
static void check_layernorm16(const md_backend_t *bf)
{
    static const int64_t shapes[][2] = {{1, 8}, {777, 70}, {4096, 256}};
    for (int s = 0; s < 3; s++) {
        int64_t M = shapes[s][0], D = shapes[s][1];
        char sh[64];
        snprintf(sh, sizeof sh, "M=%lld D=%lld", (long long)M, (long long)D);
        buf_t x = mk(M, D, D + 2, -2, 3), w = mk(1, D, D, 0.5, 1.5), b = mk(1, D, D, -1, 1);
        buf_t mean = mk(1, M, M, 0, 1), rs = mk(1, M, M, 0, 1);
        b16_t y = mk16(M, D, D + 1, -1, 1);
        poison16(&y), poison(&mean), poison(&rs);
        md_tensor_t xh = th(&x), xd = td(&x), wh = th(&w), wd = td(&w), bh = th(&b), bd = td(&b);
        md_tensor_t yh = h16(&y), yd = d16(&y);
        md_tensor_t mh = md_tensor_1d(mean.h, MD_DTYPE_F32, MD_DEVICE_CPU, M), md = md_tensor_1d(mean.d, MD_DTYPE_F32, MD_DEVICE_CUDA, M);
        md_tensor_t rh = md_tensor_1d(rs.h, MD_DTYPE_F32, MD_DEVICE_CPU, M), rd = md_tensor_1d(rs.d, MD_DTYPE_F32, MD_DEVICE_CUDA, M);
        cpu->layernorm_fwd(cpu, &yh, &mh, &rh, &xh, &wh, &bh, 1e-5);
        bf->layernorm_fwd(bf, &yd, &md, &rd, &xd, &wd, &bd, 1e-5);
        record("layernorm_fwd bf16 y", "y", err16(&y), ONE_ROUNDING, sh);
        record("layernorm_fwd bf16 y", "mean, rstd", fmax(relerr(&mean), relerr(&rs)), TOL, sh);
        gpu->copy(gpu, mean.d, mean.h, (size_t)M * 4, MD_COPY_H2D);   /* the CPU's statistics on both sides */
        gpu->copy(gpu, rs.d, rs.h, (size_t)M * 4, MD_COPY_H2D);
        /* dy's odd row stride: dx one column a lane; even (D even): two */
        for (int t = 0; t < 4; t++) {
            int acc = t & 1;
            char shd[80];
            snprintf(shd, sizeof shd, "%s ld(dy)=%lld", sh, (long long)(D + (t < 2 ? 3 : 0)));
            b16_t dy = mk16(M, D, D + (t < 2 ? 3 : 0), -1, 1);
            buf_t dx = mk(M, D, D + 4, -1, 1), dw = mk(1, D, D, -1, 1), db = mk(1, D, D, -1, 1);
            if (!acc) poison(&dx);
            md_tensor_t dyh = h16(&dy), dyd = d16(&dy), dxh = th(&dx), dxd = td(&dx), dwh = th(&dw), dwd = td(&dw);
            md_tensor_t dbh = th(&db), dbd = td(&db);
            cpu->layernorm_bwd(cpu, &dxh, &dwh, &dbh, &dyh, &xh, &wh, &mh, &rh, acc);
            bf->layernorm_bwd(bf, &dxd, &dwd, &dbd, &dyd, &xd, &wd, &md, &rd, acc);
            record("layernorm_bwd bf16 dy", acc ? "dx (added)" : "dx", relerr(&dx), TOL, shd);
            record("layernorm_bwd bf16 dy", "dw, db", fmax(relerr(&dw), relerr(&db)), TOL, shd);
            drop16(&dy), drop(&dx), drop(&dw), drop(&db);
        }
        drop(&x), drop(&w), drop(&b), drop(&mean), drop(&rs), drop16(&y);
    }
}

/* bias_add (bf16 y and bias), bias_bwd (bf16 dy), GELU both ways in bf16
 * (in place too) */
static void check_pointwise16(const md_backend_t *bf)
{
    static const int64_t shapes[][2] = {{37, 65}, {1000, 512}, {2048, 1024}};
    for (int s = 0; s < 3; s++) {
        int64_t M = shapes[s][0], N = shapes[s][1];
        char sh[64];
        snprintf(sh, sizeof sh, "M=%lld N=%lld", (long long)M, (long long)N);
        /* 2048 x 1024: x, g even-strided, gelu_bwd's two-column path */
        b16_t y = mk16(M, N, N + 3, -1, 1), bias = mk16(1, N, N, -1, 1), x = mk16(M, N, N + 1 + (s == 2), -4, 4);
        b16_t g = mk16(M, N, N + 2, -1, 1);
        buf_t db = mk(1, N, N, -1, 1);
        md_tensor_t yh = h16(&y), yd = d16(&y), bh = h16(&bias), bd = d16(&bias), xh = h16(&x), xd = d16(&x);
        md_tensor_t gh = h16(&g), gd = d16(&g), dbh = th(&db), dbd = td(&db);
        cpu->bias_add(cpu, &yh, &bh);
        bf->bias_add(bf, &yd, &bd);
        record("bias_add bf16", "y", err16(&y), ONE_ROUNDING, sh);
        cpu->bias_bwd(cpu, &dbh, &gh);
        bf->bias_bwd(bf, &dbd, &gd);
        record("bias_bwd bf16 dy", "dbias", relerr(&db), TOL, sh);
        poison16(&y);
        cpu->gelu_fwd(cpu, &yh, &xh);
        bf->gelu_fwd(bf, &yd, &xd);
        record("gelu_fwd bf16", "y", err16(&y), ONE_ROUNDING, sh);
        cpu->gelu_bwd(cpu, &gh, &gh, &xh);   /* in place, dx = dy */
        bf->gelu_bwd(bf, &gd, &gd, &xd);
        record("gelu_bwd bf16", "dx (in place)", err16(&g), ONE_ROUNDING, sh);
        drop16(&y), drop16(&bias), drop16(&x), drop16(&g), drop(&db);
    }
}

/* the short conv with x, y, dx, dy bf16, x and dx column slices of a 3C-wide matrix */
static void check_dwconv16(const md_backend_t *bf)
{
    static const int64_t shapes[][3] = {{1, 1, 8}, {2, 2, 24}, {3, 301, 96}, {1, 2048, 768}};
    /* odd strides of y and dy: the generic kernels; even: the pair kernels */
    for (int t = 0; t < 8; t++) {
        int s = t % 4, even = t / 4;
        int64_t B = shapes[s][0], L = shapes[s][1], C = shapes[s][2], K = 3, M = B * L;
        char sh[64];
        snprintf(sh, sizeof sh, "B=%lld L=%lld C=%lld%s", (long long)B, (long long)L, (long long)C,
                 even ? " even strides" : "");
        b16_t x = mk16(M, 3 * C, 3 * C + 2, -2, 2), y = mk16(M, C, C + 1 + even, -1, 1);
        buf_t w = mk(C, K, K, -0.5, 0.5), b = mk(1, C, C, -0.5, 0.5), dw = mk(C, K, K, -1, 1), db = mk(1, C, C, -1, 1);
        poison16(&y);
        md_tensor_t xh = cols16(&x, 0, C, C), xd = cols16(&x, 1, C, C), yh = h16(&y), yd = d16(&y);
        md_tensor_t wh = th(&w), wd = td(&w), bh = th(&b), bd = td(&b), dwh = th(&dw), dwd = td(&dw), dbh = th(&db),
                    dbd = td(&db);
        cpu->dwconv_fwd(cpu, &yh, &xh, &wh, &bh, B);
        bf->dwconv_fwd(bf, &yd, &xd, &wd, &bd, B);
        record("dwconv_fwd bf16", "y", err16(&y), ONE_ROUNDING, sh);
        b16_t dy = mk16(M, C, C + 3 + even, -1, 1), dx = mk16(M, 3 * C, 3 * C, -1, 1);
        poison16_cols(&dx, C, C);
        md_tensor_t dyh = h16(&dy), dyd = d16(&dy), dxh = cols16(&dx, 0, C, C), dxd = cols16(&dx, 1, C, C);
        cpu->dwconv_bwd(cpu, &dxh, &dwh, &dbh, &dyh, &xh, &wh, B);
        bf->dwconv_bwd(bf, &dxd, &dwd, &dbd, &dyd, &xd, &wd, B);
        record("dwconv_bwd bf16", "dx (of a 3C matrix)", err16(&dx), ONE_ROUNDING, sh);
        record("dwconv_bwd bf16", "dw, dbias", fmax(relerr(&dw), relerr(&db)), TOL, sh);
        drop16(&x), drop16(&y), drop16(&dy), drop16(&dx), drop(&w), drop(&b), drop(&dw), drop(&db);
    }
}

/* the long convolution with x0, x1, v (slices of one matrix), y, dy and
 * dx0, dx1, dv in bf16; k, dk, D, dD f32; the forward's spectra kept for
 * the backward, as the model runs it (the workspace poisoned between) */
static void check_fftconv16(const md_backend_t *bf)
{
    static const int64_t shapes[][3] = {{1, 1, 8}, {3, 1, 16}, {2, 301, 64}, {1, 2048, 256}, {1, 1009, 24}};
    size_t wg = bf->fftconv_workspace(bf, MD_DTYPE_BF16, 3, 2048, 256);
    size_t kb = bf->fftconv_spectra_bytes(bf, 3, 2048, 256);
    void *wsg = gpu->alloc(gpu, wg ? wg : 1), *kept = gpu->alloc(gpu, kb ? kb : 1);
    CHECK(wsg != NULL && kept != NULL, "fftconv workspace of %zu bytes, spectra of %zu", wg, kb);
    if (!wsg || !kept) return;
    for (int s = 0; s < 5; s++) {
        int64_t B = shapes[s][0], L = shapes[s][1], C = shapes[s][2], M = B * L, pad = s % 2 ? 5 : 0;
        char sh[64];
        snprintf(sh, sizeof sh, "B=%lld L=%lld C=%lld", (long long)B, (long long)L, (long long)C);
        size_t wc = cpu->fftconv_workspace(cpu, MD_DTYPE_F32, B, L, C);
        void *wsc = md_malloc(wc ? wc : 1);
        poison_bytes(wsg, wg), poison_bytes(kept, kb);
        b16_t xs = mk16(M, 3 * C, 3 * C + pad, -1, 1), y = mk16(M, C, C + pad, -1, 1);
        buf_t k = mk(L, C, C, -1, 1), D = mk(1, C, C, -1, 1), dk = mk(L, C, C, -1, 1), dD = mk(1, C, C, -1, 1);
        poison16(&y);
        md_tensor_t x0h = cols16(&xs, 0, 0, C), x1h = cols16(&xs, 0, C, C), vh = cols16(&xs, 0, 2 * C, C);
        md_tensor_t x0d = cols16(&xs, 1, 0, C), x1d = cols16(&xs, 1, C, C), vd = cols16(&xs, 1, 2 * C, C);
        md_tensor_t kh = th(&k), kd = td(&k), Dh = th(&D), Dd = td(&D), yh = h16(&y), yd = d16(&y);
        cpu->fftconv_fwd(cpu, &yh, &x0h, &x1h, &vh, &kh, &Dh, B, wsc, NULL);
        bf->fftconv_fwd(bf, &yd, &x0d, &x1d, &vd, &kd, &Dd, B, wsg, kept);
        record("fftconv_fwd bf16", "y", err16(&y), ONE_ROUNDING + TOL_FFT, sh);
        b16_t dy = mk16(M, C, C + pad, -1, 1), dxs = mk16(M, 3 * C, 3 * C + pad, -1, 1);
        poison16_cols(&dxs, 0, 3 * C);
        md_tensor_t dx0h = cols16(&dxs, 0, 0, C), dx1h = cols16(&dxs, 0, C, C), dvh = cols16(&dxs, 0, 2 * C, C);
        md_tensor_t dx0d = cols16(&dxs, 1, 0, C), dx1d = cols16(&dxs, 1, C, C), dvd = cols16(&dxs, 1, 2 * C, C);
        md_tensor_t dyh = h16(&dy), dyd = d16(&dy), dkh = th(&dk), dkd = td(&dk), dDh = th(&dD), dDd = td(&dD);
        cpu->fftconv_bwd(cpu, &dx0h, &dx1h, &dvh, &dkh, &dDh, &dyh, &x0h, &x1h, &vh, &kh, &Dh, B, wsc, NULL);
        poison_bytes(wsg, wg);
        bf->fftconv_bwd(bf, &dx0d, &dx1d, &dvd, &dkd, &dDd, &dyd, &x0d, &x1d, &vd, &kd, &Dd, B, wsg, kept);
        record("fftconv_bwd bf16", "dx0,dx1,dv", err16(&dxs), ONE_ROUNDING + TOL_FFT, sh);
        record("fftconv_bwd bf16", "dk (added)", relerr(&dk), TOL_FFT, sh);
        record("fftconv_bwd bf16", "dD (added)", relerr(&dD), TOL, sh);
        drop16(&xs), drop16(&y), drop16(&dy), drop16(&dxs), drop(&k), drop(&D), drop(&dk), drop(&dD);
        free(wsc);
    }
    gpu->free(gpu, wsg), gpu->free(gpu, kept);
}

/* The Linear on bf16 x and weights: a bf16 y with its bf16 bias (plain, and
 * GELU with a bf16 pre-activation: aux row strides 1024 fused, 515
 * composed), an f32 y with an f32 bias and residual (out_proj and fc2 into
 * the residual stream); the input gradient in bf16, plain and through
 * GELU'. Weights ~ U(-sqrt(3/K), sqrt(3/K)). */
static void check_linear16(const md_backend_t *bf)
{
    static const int64_t shapes[][4] = {{301, 64, 192, 200}, {777, 128, 512, 515}, {2048, 256, 1024, 1024}};
    for (int s = 0; s < 3; s++) {
        int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2], fused = shapes[s][3] % 8 == 0;
        double a = sqrt(3.0 / (double)K);
        char sh[64];
        snprintf(sh, sizeof sh, "M=%lld K=%lld N=%lld aux ld %lld", (long long)M, (long long)K, (long long)N,
                 (long long)shapes[s][3]);
        b16_t x = mk16(M, K, K + 8, -1, 1), w = mk16(N, K, K + 8, -a, a), b16 = mk16(1, N, N, -1, 1);
        b16_t y = mk16(M, N, N + 8, -1, 1), pre = mk16(M, N, shapes[s][3], -1, 1);
        buf_t b32 = mk(1, N, N, -1, 1), r = mk(M, N, N + 2, -1, 1), y32 = mk(M, N, N + 1, -1, 1);
        md_tensor_t xh = h16(&x), xd = d16(&x), wh = h16(&w), wd = d16(&w), bh = h16(&b16), bd = d16(&b16);
        md_tensor_t yh = h16(&y), yd = d16(&y), ph = h16(&pre), pd = d16(&pre);
        md_tensor_t b32h = th(&b32), b32d = td(&b32), rh = th(&r), rd = td(&r), y32h = th(&y32), y32d = td(&y32);
        poison16(&y);
        cpu->linear_fwd(cpu, &yh, NULL, &xh, &wh, &bh, NULL, MD_ACT_NONE);
        bf->linear_fwd(bf, &yd, NULL, &xd, &wd, &bd, NULL, MD_ACT_NONE);
        record("linear_fwd bf16", "y bf16 (bias)", err16(&y), ONE_ROUNDING, sh);
        poison16(&y), poison16(&pre);
        cpu->linear_fwd(cpu, &yh, &ph, &xh, &wh, &bh, NULL, MD_ACT_GELU_TANH);
        bf->linear_fwd(bf, &yd, &pd, &xd, &wd, &bd, NULL, MD_ACT_GELU_TANH);
        record("linear_fwd bf16", "y bf16 (gelu)", err16(&y), fused ? ONE_ROUNDING : FOUR_ROUNDINGS, sh);
        record("linear_fwd bf16", "pre_act bf16 (gelu)", err16(&pre), fused ? ONE_ROUNDING : TWO_ROUNDINGS, sh);
        poison(&y32);
        cpu->linear_fwd(cpu, &y32h, NULL, &xh, &wh, &b32h, &rh, MD_ACT_NONE);
        bf->linear_fwd(bf, &y32d, NULL, &xd, &wd, &b32d, &rd, MD_ACT_NONE);
        record("linear_fwd bf16", "y f32 (residual)", relerr(&y32), TOL, sh);
        /* no bias, the residual a buffer of its own (Transformer++'s residual adds) */
        poison(&y32);
        cpu->linear_fwd(cpu, &y32h, NULL, &xh, &wh, NULL, &rh, MD_ACT_NONE);
        bf->linear_fwd(bf, &y32d, NULL, &xd, &wd, NULL, &rd, MD_ACT_NONE);
        record("linear_fwd bf16", "y f32 (residual, no bias)", relerr(&y32), TOL, sh);

        b16_t dy = mk16(M, N, N + 8, -1, 1), dx = mk16(M, K, K + 8, -1, 1), pk = mk16(M, K, K + 8, -2, 2);
        md_tensor_t dyh = h16(&dy), dyd = d16(&dy), dxh = h16(&dx), dxd = d16(&dx), pkh = h16(&pk), pkd = d16(&pk);
        poison16(&dx);
        cpu->linear_bwd_dx(cpu, &dxh, &dyh, &wh, NULL, MD_ACT_NONE);
        bf->linear_bwd_dx(bf, &dxd, &dyd, &wd, NULL, MD_ACT_NONE);
        record("linear_bwd_dx bf16", "dx", err16(&dx), ONE_ROUNDING, sh);
        poison16(&dx);
        cpu->linear_bwd_dx(cpu, &dxh, &dyh, &wh, &pkh, MD_ACT_GELU_TANH);
        bf->linear_bwd_dx(bf, &dxd, &dyd, &wd, &pkd, MD_ACT_GELU_TANH);
        record("linear_bwd_dx bf16", "dx (gelu)", err16(&dx), TWO_ROUNDINGS, sh);
        b16_t *b16s[] = {&x, &w, &b16, &y, &pre, &dy, &dx, &pk};
        for (size_t i = 0; i < sizeof b16s / sizeof b16s[0]; i++) drop16(b16s[i]);
        drop(&b32), drop(&r), drop(&y32);
    }
}

/* RoPE (q forward, k inverse: column slices), causal attention and its
 * backward with q, k, v, o, dO, dq, dk, dv bf16 (lse f32), on the views the
 * model makes: slices of one padded (B*L, 3 H dh) matrix. Each op's inputs
 * are the CPU's previous outputs rounded to bf16 on both sides, so each
 * is checked alone. Tolerances: the fallback (fp32 math) one rounding;
 * the tensor-core kernels also round P and dS to bf16 (test_gpu_ops.c's
 * bound for them, 1e-2, 2e-2 with wide q/k) plus the output's rounding. */
/* the q, k, v (or dq, dk, dv) column slices of a (M, 3W) matrix */
static void thirds16(const b16_t *b, int dev, int64_t W, md_tensor_t t[3])
{
    for (int i = 0; i < 3; i++) t[i] = cols16(b, dev, i * W, W);
}

static void check_transformer16(const md_backend_t *bf)
{
    static const int64_t shapes[][5] = {/* B, L, H, dh, q/k/v range */
                                        {1, 1, 1, 64},   {2, 37, 3, 64}, {1, 129, 2, 32}, {3, 65, 2, 128, 3},
                                        {2, 300, 2, 64}, {2, 301, 2, 16}, {2, 77, 2, 96}, {1, 1025, 4, 32}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t B = shapes[s][0], L = shapes[s][1], H = shapes[s][2], hd = shapes[s][3], M = B * L, W = H * hd;
        int64_t pad = s % 2 ? 3 : 0;
        double r = shapes[s][4] ? (double)shapes[s][4] : 1.0, scale = 1.0 / sqrt((double)hd);
        int mma = hd == 32 || hd == 64 || hd == 128;
        double tol = mma ? (r > 1 ? 2e-2 : 1e-2) + ONE_ROUNDING : ONE_ROUNDING;
        char sh[112];
        snprintf(sh, sizeof sh, "B=%lld L=%lld H=%lld dh=%lld pad=%lld r=%g%s", (long long)B, (long long)L,
                 (long long)H, (long long)hd, (long long)pad, r, mma ? "" : " fallback");
        b16_t qkv = mk16(M, 3 * W, 3 * W + pad, -r, r);
        md_tensor_t h[3], g[3];   /* q, k, v on the CPU and the GPU */
        thirds16(&qkv, 0, W, h);
        thirds16(&qkv, 1, W, g);
        cpu->rope(cpu, &h[0], B, H, 10000.0, 0);
        bf->rope(bf, &g[0], B, H, 10000.0, 0);
        cpu->rope(cpu, &h[1], B, H, 500.0, 1);
        bf->rope(bf, &g[1], B, H, 500.0, 1);
        record("rope bf16", "qkv", err16(&qkv), ONE_ROUNDING, sh);
        round16(&qkv);

        b16_t o = mk16(M, W, W + pad, -1, 1);
        buf_t lse = mk(B * H, L, L, -1, 1);
        poison16(&o), poison(&lse);
        md_tensor_t oh = h16(&o), od = d16(&o), lh = th(&lse), ld = td(&lse);
        size_t wc = cpu->attention_workspace(cpu, MD_DTYPE_F32, B, L, H, hd);
        size_t wg = bf->attention_workspace(bf, MD_DTYPE_BF16, B, L, H, hd);
        void *wsc = md_malloc(wc ? wc : 1), *wsg = gpu->alloc(gpu, wg ? wg : 1);
        poison_bytes(wsg, wg);
        cpu->attention_fwd(cpu, &oh, &lh, &h[0], &h[1], &h[2], B, H, scale, wsc);
        bf->attention_fwd(bf, &od, &ld, &g[0], &g[1], &g[2], B, H, scale, wsg);
        record("attention_fwd bf16 act", "o", err16(&o), tol, sh);
        record("attention_fwd bf16 act", "lse (rms abs)", rmserr(&lse), mma ? tol : TOL, sh);
        round16(&o);
        gpu->copy(gpu, lse.d, lse.h, (size_t)(B * H * L) * sizeof(float), MD_COPY_H2D);

        b16_t dout = mk16(M, W, W + pad, -1, 1), dqkv = mk16(M, 3 * W, 3 * W + pad, -1, 1);
        poison16(&dqkv);
        md_tensor_t doh = h16(&dout), dod = d16(&dout), dh[3], dg[3];
        thirds16(&dqkv, 0, W, dh);
        thirds16(&dqkv, 1, W, dg);
        poison_bytes(wsg, wg);
        cpu->attention_bwd(cpu, &dh[0], &dh[1], &dh[2], &doh, &h[0], &h[1], &h[2], &oh, &lh, B, H, scale, wsc);
        bf->attention_bwd(bf, &dg[0], &dg[1], &dg[2], &dod, &g[0], &g[1], &g[2], &od, &ld, B, H, scale, wsg);
        record("attention_bwd bf16 act", "dq,dk,dv", err16(&dqkv), tol, sh);
        free(wsc);
        gpu->free(gpu, wsg);
        drop16(&qkv), drop16(&o), drop16(&dout), drop16(&dqkv), drop(&lse);
    }
}

/* SwiGLU both ways with gate and up (and dgate, dup) column slices of one
 * bf16 (M, 2F) matrix, as the model's */
static void check_swiglu16(const md_backend_t *bf)
{
    static const int64_t shapes[][2] = {{1, 8}, {301, 96}, {2048, 1024}, {1024, 12}, {4096, 384}};
    for (int s = 0; s < 5; s++) {
        int64_t M = shapes[s][0], F = shapes[s][1], pad = s % 2 ? 3 : 0;
        char sh[64];
        snprintf(sh, sizeof sh, "M=%lld F=%lld pad=%lld", (long long)M, (long long)F, (long long)pad);
        b16_t gu = mk16(M, 2 * F, 2 * F + pad, -4, 4), y = mk16(M, F, F + pad, -1, 1);
        /* unpadded shapes whose F is a multiple of 8 take the 16-byte path */
        b16_t dy = mk16(M, F, F + pad, -1, 1), dgu = mk16(M, 2 * F, 2 * F + pad, -1, 1);
        md_tensor_t gh = cols16(&gu, 0, 0, F), uh = cols16(&gu, 0, F, F), gd = cols16(&gu, 1, 0, F), ud = cols16(&gu, 1, F, F);
        md_tensor_t yh = h16(&y), yd = d16(&y), dyh = h16(&dy), dyd = d16(&dy);
        md_tensor_t dgh = cols16(&dgu, 0, 0, F), duh = cols16(&dgu, 0, F, F);
        md_tensor_t dgd = cols16(&dgu, 1, 0, F), dud = cols16(&dgu, 1, F, F);
        poison16(&y), poison16(&dgu);
        cpu->swiglu_fwd(cpu, &yh, &gh, &uh);
        bf->swiglu_fwd(bf, &yd, &gd, &ud);
        record("swiglu_fwd bf16", "y", err16(&y), ONE_ROUNDING, sh);
        cpu->swiglu_bwd(cpu, &dgh, &duh, &dyh, &gh, &uh);
        bf->swiglu_bwd(bf, &dgd, &dud, &dyd, &gd, &ud);
        record("swiglu_bwd bf16", "dgate,dup", err16(&dgu), ONE_ROUNDING, sh);
        drop16(&gu), drop16(&y), drop16(&dy), drop16(&dgu);
    }
}

int main(void)
{
    const md_backend_t *bf = gpu_bf16_test_start();
    if (!bf) return md_test_done();
    check_layernorm16(bf);
    check_pointwise16(bf);
    check_dwconv16(bf);
    check_fftconv16(bf);
    check_linear16(bf);
    check_transformer16(bf);
    check_swiglu16(bf);
    gpu->sync(gpu);
    print_worst();
    return md_test_done();
}
