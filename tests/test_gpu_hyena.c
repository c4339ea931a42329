/* The Hyena section of the CUDA backend against the CPU backend (fp32), op
 * by op, on fresh random inputs: bias, LayerNorm, GELU, Sin (also in
 * place), the filter modulation, the short depthwise conv, the gated FFT
 * long convolution and the fused Linear ops (cuBLASLt epilogues). Shapes
 * include L = 1, odd L (301, 777), L = 2048, batch 1 to 3 and C = 8 to
 * 256; x0, x1 and v (and dx0, dx1, dv) are column slices of one padded
 * (M, 3C) matrix, as in the model. Outputs are
 * poisoned with NaN before each GPU run and whole buffers, row padding
 * included, are compared (gpu_testutil.h).
 *
 * Limits: 1e-5 (||gpu - cpu|| / ||cpu||) for every op but the FFT
 * convolution, whose limit is 5e-5: both sides round each of the ~log2(2L)
 * butterfly stages of an fp32 FFT (a relative error of order 1e-7 per stage
 * on the norm), in different orders and, on the GPU, at a different FFT
 * size (the smallest 7-smooth size >= 2L, not 2L itself), so the results
 * agree to a few 1e-7 on the norm but not to the last bit; the limit leaves
 * a margin of ~20 over what is expected, and still catches any indexing or
 * scaling mistake (those give errors of order 1).
 *
 * Exits 77 (skipped) without CUDA or a GPU.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ops.h"
#include "gpu_testutil.h"
#include "testutil.h"
#include "util/log.h"
#include "util/xalloc.h"

static const double TOL_FFT = 5e-5;

/* the CPU backend has the op (a failure when not) */
static int have(int present, const char *op)
{
    CHECK(present, "the CPU backend lacks %s", op);
    return present;
}
#define HAVE(op) have(cpu->op != NULL, #op)

static void shape_str(char *s, size_t n, int64_t B, int64_t L, int64_t C)
{
    snprintf(s, n, "B=%lld L=%lld C=%lld", (long long)B, (long long)L, (long long)C);
}

static void check_bias(void)
{
    static const int64_t shapes[][2] = {{1, 8}, {301, 64}, {3 * 777, 256}, {4096, 96}};
    for (int s = 0; s < 4; s++) {
        int64_t M = shapes[s][0], C = shapes[s][1];
        char sh[64];
        snprintf(sh, sizeof sh, "M=%lld C=%lld", (long long)M, (long long)C);
        buf_t y = mk(M, C, C + 3, -1, 1), b = mk(1, C, C, -1, 1), db = mk(1, C, C, -1, 1), dy = mk(M, C, C + 1, -1, 1);
        md_tensor_t yh = th(&y), yd = td(&y), bh = th(&b), bd = td(&b), dbh = th(&db), dbd = td(&db), dyh = th(&dy),
                    dyd = td(&dy);
        if (HAVE(bias_add)) {
            cpu->bias_add(cpu, &yh, &bh);
            gpu->bias_add(gpu, &yd, &bd);
            record("bias_add", "y", relerr(&y), TOL, sh);
        }
        if (HAVE(bias_bwd)) {
            cpu->bias_bwd(cpu, &dbh, &dyh);
            gpu->bias_bwd(gpu, &dbd, &dyd);
            record("bias_bwd", "dbias", relerr(&db), TOL, sh);
        }
        drop(&y), drop(&b), drop(&db), drop(&dy);
    }
}

static void check_layernorm(void)
{
    if (!HAVE(layernorm_fwd) || !HAVE(layernorm_bwd)) return;
    /* odd widths: layernorm_bwd's dx one column a lane; even: two */
    static const int64_t shapes[][2] = {{1, 8}, {777, 70}, {4096, 256}, {300, 1024}, {33, 77}};
    for (int s = 0; s < 5; s++)
        for (int acc = 0; acc < 2; acc++) {
            int64_t M = shapes[s][0], D = shapes[s][1];
            char sh[64];
            snprintf(sh, sizeof sh, "M=%lld D=%lld acc=%d", (long long)M, (long long)D, acc);
            /* rows off zero mean, as a residual stream is */
            buf_t x = mk(M, D, D + 2, 1, 4), w = mk(1, D, D, 0.5, 1.5), b = mk(1, D, D, -0.5, 0.5);
            buf_t y = mk(M, D, D + 1, -1, 1), mu = mk(1, M, M, 0, 1), rs = mk(1, M, M, 0, 1);
            poison(&y), poison(&mu), poison(&rs);
            md_tensor_t xh = th(&x), xd = td(&x), wh = th(&w), wd = td(&w), bh = th(&b), bd = td(&b), yh = th(&y),
                        yd = td(&y);
            md_tensor_t muh = md_tensor_1d(mu.h, MD_DTYPE_F32, MD_DEVICE_CPU, M),
                        mud = md_tensor_1d(mu.d, MD_DTYPE_F32, MD_DEVICE_CUDA, M);
            md_tensor_t rh = md_tensor_1d(rs.h, MD_DTYPE_F32, MD_DEVICE_CPU, M),
                        rd = md_tensor_1d(rs.d, MD_DTYPE_F32, MD_DEVICE_CUDA, M);
            cpu->layernorm_fwd(cpu, &yh, &muh, &rh, &xh, &wh, &bh, 1e-5);
            gpu->layernorm_fwd(gpu, &yd, &mud, &rd, &xd, &wd, &bd, 1e-5);
            record("layernorm_fwd", "y", relerr(&y), TOL, sh);
            record("layernorm_fwd", "mean", relerr(&mu), TOL, sh);
            record("layernorm_fwd", "rstd", relerr(&rs), TOL, sh);
            /* the same statistics on both sides: the CPU's */
            gpu->copy(gpu, mu.d, mu.h, (size_t)M * 4, MD_COPY_H2D);
            gpu->copy(gpu, rs.d, rs.h, (size_t)M * 4, MD_COPY_H2D);
            buf_t dy = mk(M, D, D, -1, 1), dx = mk(M, D, D + 4, -1, 1), dw = mk(1, D, D, -1, 1), db = mk(1, D, D, -1, 1);
            if (!acc) poison(&dx);
            md_tensor_t dyh = th(&dy), dyd = td(&dy), dxh = th(&dx), dxd = td(&dx), dwh = th(&dw), dwd = td(&dw),
                        dbh = th(&db), dbd = td(&db);
            cpu->layernorm_bwd(cpu, &dxh, &dwh, &dbh, &dyh, &xh, &wh, &muh, &rh, acc);
            gpu->layernorm_bwd(gpu, &dxd, &dwd, &dbd, &dyd, &xd, &wd, &mud, &rd, acc);
            record("layernorm_bwd", "dx", relerr(&dx), TOL, sh);
            record("layernorm_bwd", "dw", relerr(&dw), TOL, sh);
            record("layernorm_bwd", "db", relerr(&db), TOL, sh);
            buf_t *all[] = {&x, &w, &b, &y, &mu, &rs, &dy, &dx, &dw, &db};
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) drop(all[i]);
        }
}

/* GELU and Sin, out of place on padded views and in place (y = x, dx = dy) */
static void check_activations(void)
{
    static const int64_t shapes[][2] = {{1, 1}, {37, 65}, {1000, 512}};
    for (int s = 0; s < 3; s++)
        for (int inplace = 0; inplace < 2; inplace++) {
            int64_t M = shapes[s][0], C = shapes[s][1];
            char sh[64];
            snprintf(sh, sizeof sh, "%lldx%lld inplace=%d", (long long)M, (long long)C, inplace);
            /* 1000 x 512: every gelu_bwd stride even, its two-column path */
            int64_t dy_ld = C + (s == 2 ? 4 : 3);
            buf_t x = mk(M, C, C + 2, -5, 5), y = mk(M, C, C + 1, -1, 1), dy = mk(M, C, dy_ld, -1, 1);
            buf_t dx = mk(M, C, C, -1, 1), fr = mk(1, C, C, 0.5, 10), dfr = mk(1, C, C, -1, 1);
            buf_t dbi = mk(1, C, C, -1, 1);
            md_tensor_t xh = th(&x), xd = td(&x), yh = th(&y), yd = td(&y), dyh = th(&dy), dyd = td(&dy),
                        dxh = th(&dx), dxd = td(&dx), frh = th(&fr), frd = td(&fr), dfrh = th(&dfr), dfrd = td(&dfr),
                        dbih = th(&dbi), dbid = td(&dbi);
            /* in place: the output view is the input's */
            buf_t *yb = inplace ? &x : &y, *dxb = inplace ? &dy : &dx;
            md_tensor_t *yhp = inplace ? &xh : &yh, *ydp = inplace ? &xd : &yd;
            md_tensor_t *dxhp = inplace ? &dyh : &dxh, *dxdp = inplace ? &dyd : &dxd;
            if (HAVE(gelu_fwd) && HAVE(gelu_bwd)) {
                if (!inplace) poison(&y), poison(&dx);
                /* the backward first: in place, the forward overwrites x.
                 * gelu' has a zero near x = -0.75 where its two O(1) terms
                 * cancel: the error is measured against ||dy|| (the terms'
                 * size) when dx is smaller (one element of 1x1 was off by
                 * 1e-3 of itself there, tanhf differing in its last bit) */
                double dyn = view_norm(&dy);
                cpu->gelu_bwd(cpu, dxhp, &dyh, &xh);
                gpu->gelu_bwd(gpu, dxdp, &dyd, &xd);
                record("gelu_bwd", "dx", relerr_floor(dxb, dyn), TOL, sh);
                cpu->gelu_fwd(cpu, yhp, &xh);
                gpu->gelu_fwd(gpu, ydp, &xd);
                record("gelu_fwd", "y", relerr(yb), TOL, sh);
            }
            /* Sin on fresh values, x in the range the filter MLP feeds it */
            drop(&x), drop(&dy);
            x = mk(M, C, C + 2, -1, 1), dy = mk(M, C, dy_ld, -1, 1);
            xh = th(&x), xd = td(&x), dyh = th(&dy), dyd = td(&dy);
            if (HAVE(sin_fwd) && HAVE(sin_bwd)) {
                if (!inplace) poison(&y), poison(&dx);
                /* with the bias's sum (the model's way) on the large shape */
                int with_db = s == 2;
                cpu->sin_bwd(cpu, dxhp, &dfrh, with_db ? &dbih : NULL, &dyh, &xh, &frh);
                gpu->sin_bwd(gpu, dxdp, &dfrd, with_db ? &dbid : NULL, &dyd, &xd, &frd);
                record("sin_bwd", "dx", relerr(dxb), TOL, sh);
                record("sin_bwd", "dfreq", relerr(&dfr), TOL, sh);
                if (with_db) record("sin_bwd", "dbias (added)", relerr(&dbi), TOL, sh);
                cpu->sin_fwd(cpu, yhp, &xh, &frh);
                gpu->sin_fwd(gpu, ydp, &xd, &frd);
                record("sin_fwd", "y", relerr(yb), TOL, sh);
            }
            drop(&x), drop(&y), drop(&dy), drop(&dx), drop(&fr), drop(&dfr), drop(&dbi);
        }
}

static void check_modulate(void)
{
    if (!HAVE(hyena_modulate)) return;
    static const int64_t shapes[][3] = {{1, 8, 1}, {301, 64, 301}, {777, 128, 1024}, {2048, 256, 2048}};
    for (int s = 0; s < 4; s++) {
        int64_t L = shapes[s][0], C = shapes[s][1], lmax = shapes[s][2];
        char sh[64];
        snprintf(sh, sizeof sh, "L=%lld C=%lld l_max=%lld", (long long)L, (long long)C, (long long)lmax);
        buf_t k = mk(L, C, C, -1, 1);
        md_tensor_t kh = th(&k), kd = td(&k);
        cpu->hyena_modulate(cpu, &kh, lmax, 1e-2, 0.3, 1.5);
        gpu->hyena_modulate(gpu, &kd, lmax, 1e-2, 0.3, 1.5);
        record("hyena_modulate", "k", relerr(&k), TOL, sh);
        drop(&k);
    }
}

static void check_dwconv(void)
{
    if (!HAVE(dwconv_fwd) || !HAVE(dwconv_bwd)) return;
    static const int64_t shapes[][4] = {{1, 1, 8, 3}, {2, 2, 24, 3}, {3, 301, 96, 3}, {1, 2048, 768, 3},
                                        {2, 777, 40, 5}};
    /* odd row strides: the generic kernels; even ones (and K <= 4): the
     * kernels over channel pairs, as the model's views take them */
    for (int t = 0; t < 10; t++) {
        int s = t % 5, even = t / 5;
        int64_t B = shapes[s][0], L = shapes[s][1], C = shapes[s][2], K = shapes[s][3], M = B * L;
        char sh[64];
        snprintf(sh, sizeof sh, "B=%lld L=%lld C=%lld K=%lld%s", (long long)B, (long long)L, (long long)C, (long long)K,
                 even ? " even strides" : "");
        buf_t x = mk(M, C, C + 3 + even, -2, 2), w = mk(C, K, K, -0.5, 0.5), b = mk(1, C, C, -0.5, 0.5);
        buf_t y = mk(M, C, C + 1 + even, 0, 1);
        poison(&y);
        md_tensor_t xh = th(&x), xd = td(&x), wh = th(&w), wd = td(&w), bh = th(&b), bd = td(&b), yh = th(&y), yd = td(&y);
        cpu->dwconv_fwd(cpu, &yh, &xh, &wh, &bh, B);
        gpu->dwconv_fwd(gpu, &yd, &xd, &wd, &bd, B);
        record("dwconv_fwd", "y", relerr(&y), TOL, sh);
        buf_t dy = mk(M, C, C + 1 + even, -1, 1), dx = mk(M, C, C + 2, -1, 1), dw = mk(C, K, K, -1, 1);
        buf_t db = mk(1, C, C, -1, 1);
        poison(&dx);
        md_tensor_t dyh = th(&dy), dyd = td(&dy), dxh = th(&dx), dxd = td(&dx), dwh = th(&dw), dwd = td(&dw),
                    dbh = th(&db), dbd = td(&db);
        cpu->dwconv_bwd(cpu, &dxh, &dwh, &dbh, &dyh, &xh, &wh, B);
        gpu->dwconv_bwd(gpu, &dxd, &dwd, &dbd, &dyd, &xd, &wd, B);
        record("dwconv_bwd", "dx", relerr(&dx), TOL, sh);
        record("dwconv_bwd", "dw", relerr(&dw), TOL, sh);
        record("dwconv_bwd", "dbias", relerr(&db), TOL, sh);
        buf_t *all[] = {&x, &w, &b, &y, &dy, &dx, &dw, &db};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) drop(all[i]);
    }
}

/* The gated long convolution on the model's views. The GPU workspace and
 * the kept spectra are sized for the largest shape once and reused by
 * every smaller one (the queries promise enough for any smaller batch and
 * len). Both ways checked: the forward keeping its spectra and the
 * backward reading them (the model's way), and neither (the workspace
 * poisoned before each backward: the kept path must not read what the
 * forward left there). */
static void check_fftconv(void)
{
    if (!HAVE(fftconv_fwd) || !HAVE(fftconv_bwd) || !HAVE(fftconv_workspace) || !HAVE(fftconv_spectra_bytes)) return;
    static const int64_t shapes[][3] = {/* B, L, C */
                                        {1, 1, 8},     {3, 1, 16},   {1, 2, 8},     {2, 301, 64},
                                        {3, 777, 32},  {1, 2048, 256}, {2, 2048, 128}, {1, 1009, 24},
                                        {1, 131073, 8} /* n >= 2^18: the aligned spectrum pitch */};
    /* every shape but the long one lies within these */
    int64_t maxB = 3, maxL = 2048, maxC = 256, longL = 131073, longC = 8;
    size_t wg = gpu->fftconv_workspace(gpu, MD_DTYPE_F32, maxB, maxL, maxC);
    size_t kb = gpu->fftconv_spectra_bytes(gpu, maxB, maxL, maxC);
    size_t wl = gpu->fftconv_workspace(gpu, MD_DTYPE_F32, 1, longL, longC);
    size_t kl = gpu->fftconv_spectra_bytes(gpu, 1, longL, longC);
    wg = wl > wg ? wl : wg, kb = kl > kb ? kl : kb;
    void *wsg = gpu->alloc(gpu, wg ? wg : 1), *kept = gpu->alloc(gpu, kb ? kb : 1);
    CHECK(wsg != NULL && kept != NULL, "fftconv workspace of %zu bytes, spectra of %zu", wg, kb);
    if (!wsg || !kept) return;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t B = shapes[s][0], L = shapes[s][1], C = shapes[s][2], M = B * L, pad = s % 2 ? 5 : 0;
        char sh[64];
        shape_str(sh, sizeof sh, B, L, C);
        CHECK(gpu->fftconv_workspace(gpu, MD_DTYPE_F32, B, L, C) <= wg, "fftconv workspace %s exceeds the largest", sh);
        CHECK(gpu->fftconv_spectra_bytes(gpu, B, L, C) <= kb, "fftconv spectra %s exceed the largest", sh);
        poison_bytes(kept, kb);
        size_t wc = cpu->fftconv_workspace(cpu, MD_DTYPE_F32, B, L, C);
        void *wsc = md_malloc(wc ? wc : 1);
        poison_bytes(wsg, wg);
        /* x0, x1, v: columns [0, C), [C, 2C), [2C, 3C) of one padded matrix */
        buf_t xs = mk(M, 3 * C, 3 * C + pad, -1, 1), k = mk(L, C, C, -1, 1), D = mk(1, C, C, -1, 1);
        buf_t y = mk(M, C, C + pad, -1, 1);
        poison(&y);
        md_tensor_t x0h = slice(&xs, 0, 0, C), x1h = slice(&xs, 0, C, C), vh = slice(&xs, 0, 2 * C, C);
        md_tensor_t x0d = slice(&xs, 1, 0, C), x1d = slice(&xs, 1, C, C), vd = slice(&xs, 1, 2 * C, C);
        md_tensor_t kh = th(&k), kd = td(&k), Dh = th(&D), Dd = td(&D), yh = th(&y), yd = td(&y);
        cpu->fftconv_fwd(cpu, &yh, &x0h, &x1h, &vh, &kh, &Dh, B, wsc, NULL);
        gpu->fftconv_fwd(gpu, &yd, &x0d, &x1d, &vd, &kd, &Dd, B, wsg, kept);
        record("fftconv_fwd", "y (spectra kept)", relerr(&y), TOL_FFT, sh);
        /* no atomics: a second run gives the same bits */
        size_t nb = (size_t)(M * y.ld) * sizeof(float);
        float *first = md_malloc(nb ? nb : 1);
        gpu->copy(gpu, first, y.d, nb, MD_COPY_D2H);
        poison(&y);
        gpu->fftconv_fwd(gpu, &yd, &x0d, &x1d, &vd, &kd, &Dd, B, wsg, kept);
        CHECK(same_bits(&y, first), "fftconv_fwd %s: a second run differs", sh);
        free(first);
        poison(&y);
        gpu->fftconv_fwd(gpu, &yd, &x0d, &x1d, &vd, &kd, &Dd, B, wsg, NULL);
        record("fftconv_fwd", "y", relerr(&y), TOL_FFT, sh);

        buf_t dy = mk(M, C, C + pad, -1, 1), dxs = mk(M, 3 * C, 3 * C + pad, -1, 1);
        buf_t dk = mk(L, C, C, -1, 1), dD = mk(1, C, C, -1, 1);
        poison(&dxs);
        md_tensor_t dx0h = slice(&dxs, 0, 0, C), dx1h = slice(&dxs, 0, C, C), dvh = slice(&dxs, 0, 2 * C, C);
        md_tensor_t dx0d = slice(&dxs, 1, 0, C), dx1d = slice(&dxs, 1, C, C), dvd = slice(&dxs, 1, 2 * C, C);
        md_tensor_t dyh = th(&dy), dyd = td(&dy), dkh = th(&dk), dkd = td(&dk), dDh = th(&dD), dDd = td(&dD);
        /* dk and dD are added to: their starting values, for the second way */
        float *dk0 = md_malloc((size_t)(L * C) * sizeof(float)), *dD0 = md_malloc((size_t)C * sizeof(float));
        memcpy(dk0, dk.h, (size_t)(L * C) * sizeof(float)), memcpy(dD0, dD.h, (size_t)C * sizeof(float));
        cpu->fftconv_bwd(cpu, &dx0h, &dx1h, &dvh, &dkh, &dDh, &dyh, &x0h, &x1h, &vh, &kh, &Dh, B, wsc, NULL);
        for (int way = 0; way < 2; way++) {   /* the kept spectra, then none */
            const char *what[2][3] = {
                {"dx0,dx1,dv (spectra kept)", "dk (added, spectra kept)", "dD (added, spectra kept)"},
                {"dx0,dx1,dv", "dk (added)", "dD (added)"}};
            if (way) {
                gpu->copy(gpu, dk.d, dk0, (size_t)(L * C) * sizeof(float), MD_COPY_H2D);
                gpu->copy(gpu, dD.d, dD0, (size_t)C * sizeof(float), MD_COPY_H2D);
                poison(&dxs);
            }
            poison_bytes(wsg, wg);
            gpu->fftconv_bwd(gpu, &dx0d, &dx1d, &dvd, &dkd, &dDd, &dyd, &x0d, &x1d, &vd, &kd, &Dd, B, wsg,
                             way ? NULL : kept);
            record("fftconv_bwd", what[way][0], relerr(&dxs), TOL_FFT, sh);
            record("fftconv_bwd", what[way][1], relerr(&dk), TOL_FFT, sh);
            /* dD sums B L products (131,073 in the longest shape), in
             * different orders on the two sides: their fp32 rounding grows
             * like sqrt(B L) eps, past TOL there (1.35e-5 measured) */
            record("fftconv_bwd", what[way][2], relerr(&dD), TOL_FFT, sh);
        }
        free(dk0), free(dD0);
        buf_t *all[] = {&xs, &k, &D, &y, &dy, &dxs, &dk, &dD};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) drop(all[i]);
        free(wsc);
    }
    gpu->free(gpu, wsg), gpu->free(gpu, kept);
}

/* The fused Linear (cuBLASLt epilogues on the GPU) against the CPU's
 * composition of gemm, bias_add and GELU: the bias alone, a residual (its
 * own tensor, and in place), GELU with its pre-activation kept, and the
 * input gradient plain and through GELU'. Every view is row-strided; the
 * pre-activation's row stride is a multiple of 8 (cuBLASLt's rule for its
 * aux matrix) in some shapes and not in others, which take the composed
 * path. Weights ~ U(-sqrt(3/K), sqrt(3/K)), so the products are O(1) and
 * GELU is not saturated. */
static void check_linear(void)
{
    /* M, K, N, row stride of the forward's pre_act, of the backward's */
    static const int64_t shapes[][5] = {{1, 8, 8, 8, 8}, {301, 64, 192, 200, 65}, {777, 128, 512, 515, 136},
                                        {2048, 256, 1024, 1024, 264}};
    for (int s = 0; s < 4; s++) {
        int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        double a = sqrt(3.0 / (double)K);
        char sh[64];
        snprintf(sh, sizeof sh, "M=%lld K=%lld N=%lld", (long long)M, (long long)K, (long long)N);
        buf_t x = mk(M, K, K + 3, -1, 1), w = mk(N, K, K + 1, -a, a), b = mk(1, N, N, -1, 1);
        buf_t r = mk(M, N, N + 2, -1, 1), y = mk(M, N, N + 5, -1, 1), pre = mk(M, N, shapes[s][3], -1, 1);
        buf_t dy = mk(M, N, N + 1, -1, 1), dx = mk(M, K, K + 2, -1, 1), pk = mk(M, K, shapes[s][4], -2, 2);
        md_tensor_t xh = th(&x), xd = td(&x), wh = th(&w), wd = td(&w), bh = th(&b), bd = td(&b), rh = th(&r),
                    rd = td(&r), yh = th(&y), yd = td(&y), ph = th(&pre), pd = td(&pre), dyh = th(&dy), dyd = td(&dy),
                    dxh = th(&dx), dxd = td(&dx), pkh = th(&pk), pkd = td(&pk);
        if (!HAVE(linear_fwd) || !HAVE(linear_bwd_dx)) return;
        poison(&y);
        cpu->linear_fwd(cpu, &yh, NULL, &xh, &wh, &bh, NULL, MD_ACT_NONE);
        gpu->linear_fwd(gpu, &yd, NULL, &xd, &wd, &bd, NULL, MD_ACT_NONE);
        record("linear_fwd", "y (bias)", relerr(&y), TOL, sh);
        poison(&y);
        cpu->linear_fwd(cpu, &yh, NULL, &xh, &wh, &bh, &rh, MD_ACT_NONE);
        gpu->linear_fwd(gpu, &yd, NULL, &xd, &wd, &bd, &rd, MD_ACT_NONE);
        record("linear_fwd", "y (residual)", relerr(&y), TOL, sh);
        cpu->linear_fwd(cpu, &rh, NULL, &xh, &wh, &bh, &rh, MD_ACT_NONE);
        gpu->linear_fwd(gpu, &rd, NULL, &xd, &wd, &bd, &rd, MD_ACT_NONE);
        record("linear_fwd", "y (residual in place)", relerr(&r), TOL, sh);
        poison(&y), poison(&pre);
        cpu->linear_fwd(cpu, &yh, &ph, &xh, &wh, &bh, NULL, MD_ACT_GELU_TANH);
        gpu->linear_fwd(gpu, &yd, &pd, &xd, &wd, &bd, NULL, MD_ACT_GELU_TANH);
        record("linear_fwd", "y (gelu)", relerr(&y), TOL, sh);
        record("linear_fwd", "pre_act (gelu)", relerr(&pre), TOL, sh);
        poison(&dx);
        cpu->linear_bwd_dx(cpu, &dxh, &dyh, &wh, NULL, MD_ACT_NONE);
        gpu->linear_bwd_dx(gpu, &dxd, &dyd, &wd, NULL, MD_ACT_NONE);
        record("linear_bwd_dx", "dx", relerr(&dx), TOL, sh);
        /* through GELU', whose zero near -0.75 may cancel a small dx: the
         * error is measured against ||dy w|| (the plain dx just computed)
         * when dx is smaller, as for gelu_bwd */
        double plain = view_norm(&dx);
        poison(&dx);
        cpu->linear_bwd_dx(cpu, &dxh, &dyh, &wh, &pkh, MD_ACT_GELU_TANH);
        gpu->linear_bwd_dx(gpu, &dxd, &dyd, &wd, &pkd, MD_ACT_GELU_TANH);
        record("linear_bwd_dx", "dx (gelu)", relerr_floor(&dx, plain), TOL, sh);
        /* cuBLASLt's reductions are sequenced: a second run gives the same bits */
        size_t nb = (size_t)(M * dx.ld) * sizeof(float);
        float *first = md_malloc(nb ? nb : 1);
        gpu->copy(gpu, first, dx.d, nb, MD_COPY_D2H);
        poison(&dx);
        gpu->linear_bwd_dx(gpu, &dxd, &dyd, &wd, &pkd, MD_ACT_GELU_TANH);
        CHECK(same_bits(&dx, first), "linear_bwd_dx %s: a second run differs", sh);
        free(first);
        buf_t *all[] = {&x, &w, &b, &r, &y, &pre, &dy, &dx, &pk};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) drop(all[i]);
    }
}

/* MD_GPU_HYENA_BENCH=1: times of the pointwise ops and the long
 * convolution at the model's sizes (2^17 tokens, or one 2^20 sequence),
 * the median of 5 after one warm-up, with the bytes each must move at
 * least (so GB/s is a lower bound on the bandwidth reached). */
static double time_ms(void (*fn)(void *), void *arg)
{
    double t[5];
    fn(arg);
    for (int i = 0; i < 5; i++) {
        gpu->sync(gpu);
        double t0 = md_realtime();
        fn(arg);
        gpu->sync(gpu);
        t[i] = 1e3 * (md_realtime() - t0);
    }
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            if (t[j] < t[i]) { double x = t[i]; t[i] = t[j]; t[j] = x; }
    return t[2];
}

typedef struct {
    md_tensor_t y, x0, x1, v, k, D, dy, dx0, dx1, dv, dk, dD;
    int64_t B;
    void *ws, *kept;
} fft_bench_t;

static void run_fwd(void *p)
{
    fft_bench_t *a = p;
    gpu->fftconv_fwd(gpu, &a->y, &a->x0, &a->x1, &a->v, &a->k, &a->D, a->B, a->ws, a->kept);
}

static void run_bwd(void *p)
{
    fft_bench_t *a = p;
    gpu->fftconv_bwd(gpu, &a->dx0, &a->dx1, &a->dv, &a->dk, &a->dD, &a->dy, &a->x0, &a->x1, &a->v, &a->k, &a->D, a->B,
                     a->ws, a->kept);
}

/* the pointwise ops at 2^17 rows of the model's widths (d = 256) */
typedef struct {
    md_tensor_t x, y, dy, dx, w, b, mu, rs, dw, db, xc, yc, cw, cb, dcw, dcb, xf, yf, dyf, dxf, bf, dbf;
} pw_bench_t;

static void run_ln(void *p)
{
    pw_bench_t *a = p;
    gpu->layernorm_fwd(gpu, &a->y, &a->mu, &a->rs, &a->x, &a->w, &a->b, 1e-5);
}
static void run_ln_bwd(void *p)
{
    pw_bench_t *a = p;
    gpu->layernorm_bwd(gpu, &a->dx, &a->dw, &a->db, &a->dy, &a->x, &a->w, &a->mu, &a->rs, 0);
}
static void run_gelu(void *p)
{
    pw_bench_t *a = p;
    gpu->gelu_fwd(gpu, &a->yf, &a->xf);
}
static void run_gelu_bwd(void *p)
{
    pw_bench_t *a = p;
    gpu->gelu_bwd(gpu, &a->dxf, &a->dyf, &a->xf);
}
static void run_bias(void *p)
{
    pw_bench_t *a = p;
    gpu->bias_add(gpu, &a->yf, &a->bf);
}
static void run_bias_bwd(void *p)
{
    pw_bench_t *a = p;
    gpu->bias_bwd(gpu, &a->dbf, &a->dyf);
}
static void run_dwconv(void *p)
{
    pw_bench_t *a = p;
    gpu->dwconv_fwd(gpu, &a->yc, &a->xc, &a->cw, &a->cb, 128);
}
static void run_dwconv_bwd(void *p)
{
    pw_bench_t *a = p;
    gpu->dwconv_bwd(gpu, &a->yc, &a->dcw, &a->dcb, &a->xc, &a->xc, &a->cw, 128);
}

static void bench_pointwise(void)
{
    int64_t M = 1 << 17, d = 256;
    buf_t x = mk(M, d, d, -1, 1), y = mk(M, d, d, -1, 1), dy = mk(M, d, d, -1, 1), dx = mk(M, d, d, -1, 1);
    buf_t w = mk(1, d, d, -1, 1), b = mk(1, d, d, -1, 1), mu = mk(1, M, M, -1, 1), rs = mk(1, M, M, 1, 2);
    buf_t dw = mk(1, d, d, -1, 1), db = mk(1, d, d, -1, 1), xc = mk(M, 3 * d, 3 * d, -1, 1), yc = mk(M, 3 * d, 3 * d, -1, 1);
    buf_t cw = mk(3 * d, 3, 3, -1, 1), cb = mk(1, 3 * d, 3 * d, -1, 1), dcw = mk(3 * d, 3, 3, -1, 1), dcb = mk(1, 3 * d, 3 * d, -1, 1);
    buf_t xf = mk(M, 4 * d, 4 * d, -1, 1), yf = mk(M, 4 * d, 4 * d, -1, 1), dyf = mk(M, 4 * d, 4 * d, -1, 1);
    buf_t dxf = mk(M, 4 * d, 4 * d, -1, 1), bf = mk(1, 4 * d, 4 * d, -1, 1), dbf = mk(1, 4 * d, 4 * d, -1, 1);
    pw_bench_t a = {td(&x), td(&y), td(&dy), td(&dx), td(&w), td(&b), td(&mu), td(&rs), td(&dw), td(&db), td(&xc),
                    td(&yc), td(&cw), td(&cb), td(&dcw), td(&dcb), td(&xf), td(&yf), td(&dyf), td(&dxf), td(&bf), td(&dbf)};
    struct { const char *name; void (*fn)(void *); double floats; } ops[] = {
        {"layernorm_fwd d", run_ln, 2.0 * M * d},          {"layernorm_bwd d", run_ln_bwd, 3.0 * M * d},
        {"gelu_fwd 4d", run_gelu, 2.0 * M * 4 * d},        {"gelu_bwd 4d", run_gelu_bwd, 3.0 * M * 4 * d},
        {"bias_add 4d", run_bias, 2.0 * M * 4 * d},        {"bias_bwd 4d", run_bias_bwd, 1.0 * M * 4 * d},
        {"dwconv_fwd 3d", run_dwconv, 2.0 * M * 3 * d},    {"dwconv_bwd 3d", run_dwconv_bwd, 3.0 * M * 3 * d}};
    printf("%-24s %10s %10s   (M = 2^17 rows)\n", "op", "ms", "GB/s");
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        double ms = time_ms(ops[i].fn, &a);
        printf("%-24s %10.3f %10.0f\n", ops[i].name, ms, ops[i].floats * 4 / (ms * 1e-3) / 1e9);
    }
    buf_t *all[] = {&x, &y, &dy, &dx, &w, &b, &mu, &rs, &dw, &db, &xc, &yc, &cw, &cb, &dcw, &dcb, &xf, &yf, &dyf, &dxf, &bf, &dbf};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) drop(all[i]);
}

/* The Linear layers at the model's sizes (2^17 rows, d = 256): the fused
 * op against the unfused calls it replaces, on both tables. */
typedef struct {
    const md_backend_t *be;
    md_tensor_t x, w, b, pre, y, res, dy, w2, dx, b2;
} lin_bench_t;

static void run_fc1_split(void *p)
{
    lin_bench_t *a = p;
    a->be->gemm(a->be, 0, 1, 1.0, &a->x, &a->w, 0.0, &a->pre);
    a->be->bias_add(a->be, &a->pre, &a->b);
    a->be->gelu_fwd(a->be, &a->y, &a->pre);
}
static void run_fc1_fused(void *p)
{
    lin_bench_t *a = p;
    a->be->linear_fwd(a->be, &a->y, &a->pre, &a->x, &a->w, &a->b, NULL, MD_ACT_GELU_TANH);
}
static void run_fc2_bwd_split(void *p)
{
    lin_bench_t *a = p;
    a->be->gemm(a->be, 0, 0, 1.0, &a->dy, &a->w2, 0.0, &a->dx);
    a->be->gelu_bwd(a->be, &a->dx, &a->dx, &a->pre);
}
static void run_fc2_bwd_fused(void *p)
{
    lin_bench_t *a = p;
    a->be->linear_bwd_dx(a->be, &a->dx, &a->dy, &a->w2, &a->pre, MD_ACT_GELU_TANH);
}
static void run_res_split(void *p)   /* fc2 in the forward as it was: copy the residual, gemm, bias */
{
    lin_bench_t *a = p;
    a->be->copy(a->be, a->res.data, a->dy.data, (size_t)md_tensor_numel(&a->res) * 4, MD_COPY_D2D);
    a->be->gemm(a->be, 0, 1, 1.0, &a->y, &a->w2, 1.0, &a->res);
    a->be->bias_add(a->be, &a->res, &a->b2);
}
static void run_res_fused(void *p)
{
    lin_bench_t *a = p;
    a->be->linear_fwd(a->be, &a->res, NULL, &a->y, &a->w2, &a->b2, &a->dy, MD_ACT_NONE);
}

static void bench_linear(void)
{
    int64_t M = 1 << 17, d = 256, F = 4 * d;
    buf_t x = mk(M, d, d, -1, 1), w = mk(F, d, d, -0.1, 0.1), b = mk(1, F, F, -1, 1), pre = mk(M, F, F, -1, 1);
    buf_t y = mk(M, F, F, -1, 1), res = mk(M, d, d, -1, 1), dy = mk(M, d, d, -1, 1), w2 = mk(d, F, F, -0.1, 0.1);
    buf_t dx = mk(M, F, F, -1, 1), b2 = mk(1, d, d, -1, 1);
    const md_backend_t *tables[2] = {gpu, md_backend_cuda_ex(0, MD_PRECISION_BF16)};
    struct { const char *name; void (*fn)(void *); } ops[] = {
        {"fc1 gemm+bias+gelu", run_fc1_split},      {"fc1 linear_fwd gelu", run_fc1_fused},
        {"fc1 dx gemm+gelu_bwd", run_fc2_bwd_split}, {"fc1 dx linear_bwd_dx", run_fc2_bwd_fused},
        {"fc2 copy+gemm+bias", run_res_split},      {"fc2 linear_fwd res", run_res_fused}};
    printf("%-24s %10s %10s   (M = 2^17 rows, d = 256, F = 1024)\n", "linear", "fp32 ms", "bf16 ms");
    lin_bench_t a[2];
    for (int t = 0; t < 2; t++)
        a[t] = (lin_bench_t){tables[t], td(&x), td(&w), td(&b), td(&pre), td(&y), td(&res), td(&dy), td(&w2), td(&dx), td(&b2)};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        printf("%-24s %10.3f %10.3f\n", ops[i].name, time_ms(ops[i].fn, &a[0]), time_ms(ops[i].fn, &a[1]));
    buf_t *all[] = {&x, &w, &b, &pre, &y, &res, &dy, &w2, &dx, &b2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) drop(all[i]);
}

static void bench(void)
{
    bench_pointwise();
    bench_linear();
    static const int64_t shapes[][3] = {{128, 1024, 128}, {8, 16384, 128}, {1, 131072, 128},
                                        {128, 1024, 256}, {8, 16384, 256}, {1, 131072, 256}, {1, 1 << 20, 256}};
    printf("%-24s %12s %10s %10s %10s\n", "fftconv B x L x C", "workspace", "fwd ms", "bwd ms", "GB/s min");
    for (int s = 0; s < 7; s++) {
        int64_t B = shapes[s][0], L = shapes[s][1], C = shapes[s][2], M = B * L;
        buf_t xs = mk(M, 3 * C, 3 * C, -1, 1), dxs = mk(M, 3 * C, 3 * C, -1, 1), y = mk(M, C, C, -1, 1);
        buf_t dy = mk(M, C, C, -1, 1), k = mk(L, C, C, -1, 1), D = mk(1, C, C, -1, 1), dk = mk(L, C, C, -1, 1);
        buf_t dD = mk(1, C, C, -1, 1);
        size_t wb = gpu->fftconv_workspace(gpu, MD_DTYPE_F32, B, L, C);
        fft_bench_t a = {td(&y), slice(&xs, 1, 0, C), slice(&xs, 1, C, C), slice(&xs, 1, 2 * C, C), td(&k), td(&D),
                         td(&dy), slice(&dxs, 1, 0, C), slice(&dxs, 1, C, C), slice(&dxs, 1, 2 * C, C), td(&dk),
                         td(&dD), B, gpu->alloc(gpu, wb), gpu->alloc(gpu, gpu->fftconv_spectra_bytes(gpu, B, L, C))};
        CHECK(a.ws != NULL && a.kept != NULL, "bench workspace");
        if (a.ws && a.kept) {
            double tf = time_ms(run_fwd, &a), tb = time_ms(run_bwd, &a);
            /* at least: the (M, C) tensors read and written once (fwd 4, bwd 8) */
            double gbs = (double)M * C * 4 * 12 / ((tf + tb) * 1e-3) / 1e9;
            char sh[48];
            snprintf(sh, sizeof sh, "%lld x %lld x %lld", (long long)B, (long long)L, (long long)C);
            printf("%-24s %9.2f GiB %10.3f %10.3f %10.0f\n", sh, wb / 1073741824.0, tf, tb, gbs);
        }
        gpu->free(gpu, a.ws), gpu->free(gpu, a.kept);
        buf_t *all[] = {&xs, &dxs, &y, &dy, &k, &D, &dk, &dD};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) drop(all[i]);
    }
}

int main(void)
{
    gpu_test_start();
    if (getenv("MD_GPU_HYENA_BENCH")) {
        bench();
        return md_test_done();
    }
    check_bias();
    check_layernorm();
    check_activations();
    check_modulate();
    check_dwconv();
    check_fftconv();
    check_linear();
    gpu->sync(gpu);
    print_worst();
    return md_test_done();
}
