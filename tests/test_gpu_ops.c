/* Every op of the CUDA backend against the CPU backend (fp32), on fresh
 * random inputs of several shapes: L = 1, odd L, L over one scan chunk,
 * batch > 1, row-strided views; the Transformer ops on column slices of
 * one qkv matrix, with odd L, L not a multiple of the attention tile, and
 * several heads. Before each GPU run its written outputs are
 * poisoned with NaN; whole buffers, row padding included, are compared, so
 * an unwritten element or a write outside a view fails. Errors are
 * ||gpu - cpu|| / ||cpu|| over a buffer; a table of the worst per op is
 * printed last (kernels/NOTES-backend.md keeps it).
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
#include "util/rng.h"
#include "util/xalloc.h"

static uint8_t *tokens(int64_t n, int with_specials)
{
    uint8_t *t = md_malloc(n ? n : 1);
    /* ids 7..10 are A C G T; others are N, PAD and specials (ignored targets) */
    for (int64_t i = 0; i < n; i++) t[i] = with_specials ? (uint8_t)md_rng_below(&rng, 16) : (uint8_t)(7 + md_rng_below(&rng, 4));
    return t;
}

static uint8_t *tokens_dev(const uint8_t *h, int64_t n)
{
    uint8_t *d = gpu->alloc(gpu, n ? n : 1);
    gpu->copy(gpu, d, h, n, MD_COPY_H2D);
    return d;
}

static void check_gemm(void)
{
    static const int64_t shapes[][3] = {{1, 1, 1}, {1, 7, 5}, {37, 33, 65}, {300, 129, 256}, {1025, 64, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int beta1 = 0; beta1 < 2; beta1++) {
                    int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                    int64_t pad = (s + ta + tb) % 2 ? 3 : 0;   /* strided views half the time */
                    buf_t a = ta ? mk(k, m, m + pad, -1, 1) : mk(m, k, k + pad, -1, 1);
                    buf_t b = tb ? mk(n, k, k + pad, -1, 1) : mk(k, n, n + pad, -1, 1);
                    buf_t c = mk(m, n, n + pad, -1, 1);
                    double alpha = beta1 ? 0.5 : 1.0, beta = beta1 ? 1.0 : 0.0;
                    if (!beta1) poison(&c);
                    md_tensor_t ah = th(&a), bh = th(&b), ch = th(&c), ad = td(&a), bd = td(&b), cd = td(&c);
                    cpu->gemm(cpu, ta, tb, alpha, &ah, &bh, beta, &ch);
                    gpu->gemm(gpu, ta, tb, alpha, &ad, &bd, beta, &cd);
                    char sh[96];
                    snprintf(sh, sizeof sh, "m=%lld n=%lld k=%lld ta=%d tb=%d beta=%g pad=%lld", (long long)m,
                             (long long)n, (long long)k, ta, tb, beta, (long long)pad);
                    record("gemm", "c", relerr(&c), TOL, sh);
                    drop(&a), drop(&b), drop(&c);
                }
}

/* bf16 matrix products: the operands rounded to bf16 (8-bit significand),
 * fp32 accumulation: within bf16 rounding of the fp32 CPU result, and
 * visibly not fp32 (so the mode is really on) */
static void check_gemm_bf16(void)
{
    const md_backend_t *fp32 = gpu;
    const md_backend_t *bf = md_backend_cuda_ex(0, MD_PRECISION_BF16);
    CHECK(bf != NULL, "bf16 backend");
    if (!bf) return;
    static const int64_t shapes[][3] = {{1, 7, 5}, {300, 129, 256}, {4096, 512, 128}};
    for (int s = 0; s < 3; s++)
        for (int ta = 0; ta < 2; ta++) {
            int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            buf_t a = ta ? mk(k, m, m, -1, 1) : mk(m, k, k, -1, 1), b = mk(n, k, k, -1, 1), c = mk(m, n, n + 1, -1, 1);
            poison(&c);
            md_tensor_t ah = th(&a), bh = th(&b), ch = th(&c), ad = td(&a), bd = td(&b), cd = td(&c);
            cpu->gemm(cpu, ta, 1, 1.0, &ah, &bh, 0.0, &ch);
            bf->gemm(bf, ta, 1, 1.0, &ad, &bd, 0.0, &cd);
            char sh[64];
            snprintf(sh, sizeof sh, "m=%lld n=%lld k=%lld ta=%d", (long long)m, (long long)n, (long long)k, ta);
            double e = relerr(&c);
            record("gemm (bf16)", "c", e, 1e-2, sh);
            /* FAST_16BF permits bf16, it does not force it: cuBLAS keeps tiny
             * products (k = 5) in fp32, so only the large ones must show it */
            if (k >= 128) CHECK(e > 1e-5, "gemm bf16 %s: error %.3g is fp32-like: are the operands really bf16?", sh, e);
            drop(&a), drop(&b), drop(&c);
        }
    gpu = fp32;
}

/* lowrank_bwd (dt_proj's backward) on the f32 table: dx poisoned, dw
 * preloaded (it accumulates), x and dx column slices of a wider matrix as
 * xdbl's dt_in. f32 operands take the two GEMMs (the tensor-core pass is
 * bf16's: test_gpu_bf16); this checks the op's contract on every shape:
 * M 1, R 1 .. 17, E 16 .. 1024, dy's row stride not a multiple of 4. Run
 * twice: the same bits. */
static void check_lowrank(void)
{
    /* M, E, R, x's extra columns, dy's row padding */
    static const int64_t shapes[][5] = {{1, 256, 8, 32, 0},     {5, 64, 1, 0, 0},      {1000, 256, 8, 32, 0},
                                        {4097, 512, 16, 32, 0}, {333, 512, 8, 0, 4},   {77, 256, 16, 5, 0},
                                        {2000, 1024, 3, 2, 0},  {130, 32, 8, 32, 0},   {300, 256, 17, 32, 0},
                                        {130, 255, 8, 32, 0},   {64, 16, 8, 0, 0},     {200, 256, 8, 32, 1}};
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int64_t M = shapes[s][0], E = shapes[s][1], R = shapes[s][2], xc = shapes[s][3], dyp = shapes[s][4];
        char sh[80];
        snprintf(sh, sizeof sh, "M=%lld E=%lld R=%lld x ld %lld dy ld %lld", (long long)M, (long long)E, (long long)R,
                 (long long)(R + xc), (long long)(E + dyp));
        double a = sqrt(3.0 / (double)E);
        buf_t dy = mk(M, E, E + dyp, -1, 1), x = mk(M, R, R + xc, -1, 1), w = mk(E, R, R, -a, a);
        buf_t dx = mk(M, R, R + xc, -1, 1), dw = mk(E, R, R, -1, 1);
        poison(&dx);
        md_tensor_t dyh = th(&dy), dyd = td(&dy), xh = th(&x), xd = td(&x), wh = th(&w), wd = td(&w);
        md_tensor_t dxh = th(&dx), dxd = td(&dx), dwh = th(&dw), dwd = td(&dw);
        size_t nx = (size_t)(M * dx.ld), nw = (size_t)(E * R);
        float *dw0 = md_malloc(nw * sizeof(float)), *first_dx = md_malloc(nx * sizeof(float));
        float *first_dw = md_malloc(nw * sizeof(float));
        memcpy(dw0, dw.h, nw * sizeof(float));
        cpu->lowrank_bwd(cpu, &dxh, &dwh, &dyh, &xh, &wh);
        gpu->lowrank_bwd(gpu, &dxd, &dwd, &dyd, &xd, &wd);
        record("lowrank_bwd", "dx", relerr(&dx), TOL, sh);
        record("lowrank_bwd", "dw", relerr(&dw), TOL, sh);
        gpu->copy(gpu, first_dx, dx.d, nx * sizeof(float), MD_COPY_D2H);
        gpu->copy(gpu, first_dw, dw.d, nw * sizeof(float), MD_COPY_D2H);
        gpu->copy(gpu, dw.d, dw0, nw * sizeof(float), MD_COPY_H2D);
        poison(&dx);
        gpu->lowrank_bwd(gpu, &dxd, &dwd, &dyd, &xd, &wd);
        record("lowrank_bwd", "dx, dw again (bits)", same_bits(&dx, first_dx) && same_bits(&dw, first_dw) ? 0 : INFINITY,
               0, sh);
        free(dw0), free(first_dx), free(first_dw);
        drop(&dy), drop(&x), drop(&w), drop(&dx), drop(&dw);
    }
}

static void check_elementwise(void)
{
    static const int64_t shapes[][2] = {{1, 1}, {37, 65}, {1000, 257}};
    for (size_t s = 0; s < 3; s++) {
        int64_t r = shapes[s][0], c = shapes[s][1];
        char sh[64];
        snprintf(sh, sizeof sh, "%lldx%lld", (long long)r, (long long)c);
        buf_t y = mk(r, c, c + 2, -1, 1), x = mk(r, c, c + 5, -1, 1);
        md_tensor_t yh = th(&y), xh = th(&x), yd = td(&y), xd = td(&x);
        cpu->add(cpu, &yh, &xh);
        gpu->add(gpu, &yd, &xd);
        record("add", "y", relerr(&y), 0, sh);
        drop(&y), drop(&x);

        buf_t z = mk(1, r * c, r * c, -2, 2);
        md_tensor_t zh = th(&z), zd = td(&z);
        cpu->scale(cpu, &zh, 0.3);
        gpu->scale(gpu, &zd, 0.3);
        record("scale", "x", relerr(&z), 0, sh);
        double sc = cpu->sumsq(cpu, &zh), sg = gpu->sumsq(gpu, &zd);
        record("sumsq", "sum", fabs(sg - sc) / sc, 1e-12, sh);
        drop(&z);
    }
    /* a large one: several blocks of partials */
    buf_t z = mk(1, 3000017, 3000017, -1, 1);
    md_tensor_t zh = th(&z), zd = td(&z);
    double sc = cpu->sumsq(cpu, &zh), sg = gpu->sumsq(gpu, &zd);
    record("sumsq", "sum", fabs(sg - sc) / sc, 1e-12, "n=3000017");
    double sg2 = gpu->sumsq(gpu, &zd);
    CHECK(sg2 == sg, "sumsq not deterministic: %.17g vs %.17g", sg, sg2);
    drop(&z);
}

static void check_adamw(void)
{
    static const int64_t ns[] = {1, 1000, 100003};
    for (int s = 0; s < 3; s++)
        for (int64_t step = 1; step <= 7; step += 6) {
            int64_t n = ns[s];
            buf_t p = mk(1, n, n, -1, 1), g = mk(1, n, n, -1, 1), m = mk(1, n, n, -0.1, 0.1), v = mk(1, n, n, 0, 0.01);
            md_adamw_hparams_t hp = {.lr = 3e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1,
                                     .grad_scale = 0.25, .step = step};
            md_tensor_t ph = th(&p), gh = th(&g), mh = th(&m), vh = th(&v), pd = td(&p), gd = td(&g), md = td(&m),
                        vd = td(&v);
            cpu->adamw(cpu, &ph, &gh, &mh, &vh, n * 3 / 5, &hp);
            gpu->adamw(gpu, &pd, &gd, &md, &vd, n * 3 / 5, &hp);
            char sh[64];
            snprintf(sh, sizeof sh, "n=%lld step=%lld", (long long)n, (long long)step);
            record("adamw", "param", relerr(&p), TOL, sh);
            record("adamw", "m", relerr(&m), TOL, sh);
            record("adamw", "v", relerr(&v), TOL, sh);
            drop(&p), drop(&g), drop(&m), drop(&v);
        }
}

static void check_embedding(void)
{
    static const int64_t shapes[][2] = {{1, 8}, {777, 70}, {3 * 1025, 256}, {40000, 64}};
    for (int s = 0; s < 4; s++) {
        int64_t M = shapes[s][0], D = shapes[s][1], V = 16;
        char sh[64];
        snprintf(sh, sizeof sh, "M=%lld D=%lld", (long long)M, (long long)D);
        uint8_t *tk = tokens(M, 1), *tkd = tokens_dev(tk, M);
        md_tensor_t th_ = md_tensor_1d(tk, MD_DTYPE_U8, MD_DEVICE_CPU, M);
        md_tensor_t td_ = md_tensor_1d(tkd, MD_DTYPE_U8, MD_DEVICE_CUDA, M);
        /* the last two shapes unpadded: the forward's float4 path */
        buf_t w = mk(V, D, D, -1, 1), out = mk(M, D, D + (s < 2 ? 3 : 0), -1, 1);
        poison(&out);
        md_tensor_t wh = th(&w), wd = td(&w), oh = th(&out), od = td(&out);
        cpu->embedding_fwd(cpu, &oh, &th_, &wh);
        gpu->embedding_fwd(gpu, &od, &td_, &wd);
        record("embedding_fwd", "out", relerr(&out), 0, sh);
        buf_t dw = mk(V, D, D, -1, 1), dout = mk(M, D, D + 1, -1, 1);
        md_tensor_t dwh = th(&dw), dwd = td(&dw), doh = th(&dout), dod = td(&dout);
        cpu->embedding_bwd(cpu, &dwh, &doh, &th_);
        gpu->embedding_bwd(gpu, &dwd, &dod, &td_);
        record("embedding_bwd", "dweight", relerr(&dw), TOL, sh);
        drop(&w), drop(&out), drop(&dw), drop(&dout);
        free(tk);
        gpu->free(gpu, tkd);
    }
}

static void check_rmsnorm(void)
{
    /* M, D, and whether every row stride is a multiple of 4 (the kernels'
     * 4-wide path); D 2000: wider than the fused backward kernel's shared
     * memory holds; 4-wide D 128 .. 512: the rows in registers (1 .. 4
     * vectors a lane), several rows a warp at D 128 and 256 (rmsnorm_fwd 4
     * and 2, the backward 2): M 1027 and 333 end in a part of a warp's rows */
    static const int64_t shapes[][3] = {{1, 8, 1},     {777, 70, 0},  {4096, 256, 0}, {33, 2000, 0},
                                        {4096, 128, 1}, {1027, 128, 1}, {40, 2000, 1}, {333, 256, 1},
                                        {100, 384, 1},  {65, 512, 1},  {9, 640, 1}};
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
        for (int acc = 0; acc < 2; acc++) {
            int64_t M = shapes[s][0], D = shapes[s][1], al = shapes[s][2];
            char sh[64];
            snprintf(sh, sizeof sh, "M=%lld D=%lld acc=%d%s", (long long)M, (long long)D, acc, al ? " 4-wide" : "");
            buf_t x = mk(M, D, D + (al ? 4 : 2), -2, 2), w = mk(1, D, D, 0.5, 1.5), y = mk(M, D, D + !al, -1, 1);
            buf_t rs = mk(1, M, M, 0, 1);
            poison(&y), poison(&rs);
            md_tensor_t xh = th(&x), xd = td(&x), wh = th(&w), wd = td(&w), yh = th(&y), yd = td(&y);
            md_tensor_t rh = md_tensor_1d(rs.h, MD_DTYPE_F32, MD_DEVICE_CPU, M), rd = md_tensor_1d(rs.d, MD_DTYPE_F32, MD_DEVICE_CUDA, M);
            cpu->rmsnorm_fwd(cpu, &yh, &rh, &xh, &wh, 1e-5);
            gpu->rmsnorm_fwd(gpu, &yd, &rd, &xd, &wd, 1e-5);
            record("rmsnorm_fwd", "y", relerr(&y), TOL, sh);
            record("rmsnorm_fwd", "rstd", relerr(&rs), TOL, sh);
            buf_t dy = mk(M, D, D, -1, 1), dx = mk(M, D, D + 4, -1, 1), dw = mk(1, D, D, -1, 1);
            if (!acc) poison(&dx);
            md_tensor_t dyh = th(&dy), dyd = td(&dy), dxh = th(&dx), dxd = td(&dx), dwh = th(&dw), dwd = td(&dw);
            /* the same rstd on both sides: the CPU's */
            gpu->copy(gpu, rs.d, rs.h, (size_t)M * 4, MD_COPY_H2D);
            cpu->rmsnorm_bwd(cpu, &dxh, &dwh, &dyh, &xh, &wh, &rh, acc, NULL);
            gpu->rmsnorm_bwd(gpu, &dxd, &dwd, &dyd, &xd, &wd, &rd, acc, NULL);
            record("rmsnorm_bwd", "dx", relerr(&dx), TOL, sh);
            record("rmsnorm_bwd", "dw", relerr(&dw), TOL, sh);
            drop(&x), drop(&w), drop(&y), drop(&rs), drop(&dy), drop(&dx), drop(&dw);
        }
}

/* the fused residual add + RMSNorm; h_out a buffer of its own (poisoned),
 * or h_in, or x_add updated in place */
static void check_add_rmsnorm(void)
{
    /* M, D, 4-wide row strides (as check_rmsnorm) */
    static const int64_t shapes[][3] = {{1, 8, 0},      {777, 70, 0},   {4096, 256, 0}, {3, 1, 0},    {4096, 128, 1},
                                        {1027, 128, 1}, {333, 256, 1}, {100, 384, 1},  {65, 512, 1}};
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
        for (int alias = 0; alias < 3; alias++) {
            int64_t M = shapes[s][0], D = shapes[s][1], al = shapes[s][2];
            char sh[64];
            snprintf(sh, sizeof sh, "M=%lld D=%lld h_out=%s%s", (long long)M, (long long)D,
                     alias == 0 ? "own" : alias == 1 ? "h_in" : "x_add", al ? " 4-wide" : "");
            buf_t hin = mk(M, D, D + (al ? 4 : 2), -2, 2), xa = mk(M, D, D + (al ? 0 : 3), -1, 1), w = mk(1, D, D, 0.5, 1.5);
            buf_t h = mk(M, D, D + (al ? 4 : 1), -1, 1), y = mk(M, D, D + !al, -1, 1), rs = mk(1, M, M, 0, 1);
            poison(&h), poison(&y), poison(&rs);
            buf_t *out = alias == 0 ? &h : alias == 1 ? &hin : &xa;
            md_tensor_t ih = th(&hin), id = td(&hin), ah = th(&xa), ad = td(&xa), wh = th(&w), wd = td(&w);
            md_tensor_t oh = th(out), od = td(out), yh = th(&y), yd = td(&y);
            md_tensor_t rh = md_tensor_1d(rs.h, MD_DTYPE_F32, MD_DEVICE_CPU, M), rd = md_tensor_1d(rs.d, MD_DTYPE_F32, MD_DEVICE_CUDA, M);
            cpu->add_rmsnorm_fwd(cpu, &oh, &yh, &rh, &ih, &ah, &wh, 1e-5);
            gpu->add_rmsnorm_fwd(gpu, &od, &yd, &rd, &id, &ad, &wd, 1e-5);
            record("add_rmsnorm_fwd", "h_out", relerr(out), TOL, sh);
            record("add_rmsnorm_fwd", "y", relerr(&y), TOL, sh);
            record("add_rmsnorm_fwd", "rstd", relerr(&rs), TOL, sh);
            if (alias != 1) record("add_rmsnorm_fwd", "h_in", relerr(&hin), 0, sh);   /* untouched */
            if (alias != 2) record("add_rmsnorm_fwd", "x_add", relerr(&xa), 0, sh);
            /* the Mamba backward recomputes the forward's y with rmsnorm_fwd
             * of h_out: the same bits, y and rstd */
            float *yfwd = md_malloc((size_t)(M * y.ld) * sizeof(float)), *rfwd = md_malloc((size_t)M * sizeof(float));
            gpu->copy(gpu, yfwd, y.d, (size_t)(M * y.ld) * sizeof(float), MD_COPY_D2H);
            gpu->copy(gpu, rfwd, rs.d, (size_t)M * sizeof(float), MD_COPY_D2H);
            poison(&y), poison(&rs);
            gpu->rmsnorm_fwd(gpu, &yd, &rd, &od, &wd, 1e-5);
            record("add_rmsnorm_fwd", "rmsnorm_fwd of h_out != y, rstd", !same_bits(&y, yfwd) + !same_bits(&rs, rfwd),
                   0, sh);
            free(yfwd), free(rfwd);
            drop(&hin), drop(&xa), drop(&w), drop(&h), drop(&y), drop(&rs);
        }
}

static void check_conv(void)
{
    /* B, L, E, width, dy's row padding: width 4 has its own kernels and
     * other widths a generic one. Where E and every row stride are
     * multiples of 4 (16-byte rows) the width-4 kernels stage tiles of 32
     * (backward) or 64 (forward) rows x 128 channels through shared memory:
     * tiles crossing sequence ends (L = 1, 5, 777), E a block and a part
     * (136), blocks taking several tiles (B 2 L 8191). Otherwise they take
     * channel pairs where E and the strides are even (70), single channels
     * else (odd E, or the backward's dy padded by 1). */
    static const int64_t shapes[][5] = {{1, 1, 8, 4, 0},    {2, 3, 70, 4, 0},    {3, 777, 128, 4, 0},
                                        {3, 777, 128, 4, 1}, {1, 4096, 64, 4, 1}, {2, 301, 40, 3, 1},
                                        {1, 5, 33, 7, 0},    {2, 150, 35, 4, 0},  {4, 5, 136, 4, 0},
                                        {2, 8191, 64, 4, 0}};
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int64_t B = shapes[s][0], L = shapes[s][1], E = shapes[s][2], K = shapes[s][3], M = B * L;
        char sh[80];
        snprintf(sh, sizeof sh, "B=%lld L=%lld E=%lld K=%lld dy pad %lld", (long long)B, (long long)L, (long long)E,
                 (long long)K, (long long)shapes[s][4]);
        /* x is the first half of a wider (xz-like) buffer */
        buf_t x = mk(M, E, 2 * E, -2, 2), w = mk(E, K, K, -0.5, 0.5), b = mk(1, E, E, -0.5, 0.5), y = mk(M, E, E, 0, 1);
        poison(&y);
        md_tensor_t xh = th(&x), xd = td(&x), wh = th(&w), wd = td(&w), bh = th(&b), bd = td(&b), yh = th(&y), yd = td(&y);
        cpu->conv1d_silu_fwd(cpu, &yh, &xh, &wh, &bh, B);
        gpu->conv1d_silu_fwd(gpu, &yd, &xd, &wd, &bd, B);
        record("conv1d_silu_fwd", "y", relerr(&y), TOL, sh);
        buf_t dy = mk(M, E, E + shapes[s][4], -1, 1), dx = mk(M, E, 2 * E, -1, 1), dw = mk(E, K, K, -1, 1), db = mk(1, E, E, -1, 1);
        poison(&dx);
        md_tensor_t dyh = th(&dy), dyd = td(&dy), dxh = th(&dx), dxd = td(&dx), dwh = th(&dw), dwd = td(&dw),
                    dbh = th(&db), dbd = td(&db);
        cpu->conv1d_silu_bwd(cpu, &dxh, &dwh, &dbh, &dyh, &xh, &wh, &bh, B);
        gpu->conv1d_silu_bwd(gpu, &dxd, &dwd, &dbd, &dyd, &xd, &wd, &bd, B);
        record("conv1d_silu_bwd", "dx", relerr(&dx), TOL, sh);
        record("conv1d_silu_bwd", "dw", relerr(&dw), TOL, sh);
        record("conv1d_silu_bwd", "dbias", relerr(&db), TOL, sh);
        drop(&x), drop(&w), drop(&b), drop(&y), drop(&dy), drop(&dx), drop(&dw), drop(&db);
    }
}

static void check_scan(void)
{
    static const int64_t shapes[][4] = {{1, 1, 16, 16}, {2, 1, 8, 16}, {1, 129, 70, 16}, {2, 777, 64, 16},
                                        {3, 300, 32, 5}, {1, 2048, 128, 16}};
    for (int s = 0; s < 6; s++) {
        int64_t B = shapes[s][0], L = shapes[s][1], E = shapes[s][2], N = shapes[s][3], M = B * L, R = 4;
        char sh[64];
        snprintf(sh, sizeof sh, "B=%lld L=%lld E=%lld N=%lld", (long long)B, (long long)L, (long long)E, (long long)N);
        /* the model's views: u alone, z the second half of xz, Bm and Cm slices of xdbl */
        buf_t u = mk(M, E, E, -1, 1), z = mk(M, E, 2 * E, -1, 1), delta = mk(M, E, E, -1, 1);
        buf_t Bm = mk(M, N, R + 2 * N, -1, 1), Cm = mk(M, N, R + 2 * N, -1, 1);
        buf_t dtb = mk(1, E, E, -4, -2), Al = mk(E, N, N, 0, 2.77), Dp = mk(1, E, E, -1, 1), y = mk(M, E, E, 0, 1);
        poison(&y);
        size_t sc = cpu->scan_states_size(cpu, MD_DTYPE_F32, B, L, E, N), sg = gpu->scan_states_size(gpu, MD_DTYPE_F32, B, L, E, N);
        size_t wc = cpu->scan_bwd_workspace(cpu, MD_DTYPE_F32, B, L, E, N), wg = gpu->scan_bwd_workspace(gpu, MD_DTYPE_F32, B, L, E, N);
        void *stc = md_malloc(sc + 64), *wsc = md_malloc(wc + 64);
        void *stg = gpu->alloc(gpu, sg + 64), *wsg = gpu->alloc(gpu, wg + 64);
        poison_bytes(stg, sg), poison_bytes(wsg, wg);
#define T2(b) md_tensor_t b##h = th(&b), b##d = td(&b)
        T2(u); T2(z); T2(delta); T2(Bm); T2(Cm); T2(dtb); T2(Al); T2(Dp); T2(y);
        cpu->scan_fwd(cpu, &yh, &uh, &deltah, NULL, NULL, &dtbh, &Alh, &Bmh, &Cmh, &Dph, &zh, B, stc, NULL);
        gpu->scan_fwd(gpu, &yd, &ud, &deltad, NULL, NULL, &dtbd, &Ald, &Bmd, &Cmd, &Dpd, &zd, B, stg, NULL);
        record("scan_fwd", "y", relerr(&y), TOL, sh);
        buf_t dy = mk(M, E, E, -1, 1), du = mk(M, E, E, 0, 1), dd = mk(M, E, E, 0, 1), dz = mk(M, E, 2 * E, 0, 1);
        buf_t dB = mk(M, N, R + 2 * N, 0, 1), dC = mk(M, N, R + 2 * N, 0, 1);
        buf_t dA = mk(E, N, N, -1, 1), dD = mk(1, E, E, -1, 1), ddtb = mk(1, E, E, -1, 1);
        poison(&du), poison(&dd), poison(&dz), poison(&dB), poison(&dC);
        T2(dy); T2(du); T2(dd); T2(dz); T2(dB); T2(dC); T2(dA); T2(dD); T2(ddtb);
        cpu->scan_bwd(cpu, &duh, &ddh, &dAh, &dBh, &dCh, &dDh, &dzh, &ddtbh, NULL, &dyh, &uh, &deltah, NULL, NULL, &dtbh,
                      &Alh, &Bmh, &Cmh,
                      &Dph, &zh, B, stc, NULL, wsc);
        gpu->scan_bwd(gpu, &dud, &ddd, &dAd, &dBd, &dCd, &dDd, &dzd, &ddtbd, NULL, &dyd, &ud, &deltad, NULL, NULL, &dtbd,
                      &Ald, &Bmd, &Cmd,
                      &Dpd, &zd, B, stg, NULL, wsg);
        record("scan_bwd", "du", relerr(&du), TOL, sh);
        record("scan_bwd", "ddelta", relerr(&dd), TOL, sh);
        record("scan_bwd", "dz", relerr(&dz), TOL, sh);
        record("scan_bwd", "dBm", relerr(&dB), TOL, sh);
        record("scan_bwd", "dCm", relerr(&dC), TOL, sh);
        record("scan_bwd", "dA_log", relerr(&dA), TOL, sh);
        record("scan_bwd", "dD", relerr(&dD), TOL, sh);
        record("scan_bwd", "ddt_bias", relerr(&ddtb), TOL, sh);
#undef T2
        buf_t *all[] = {&u, &z, &delta, &Bm, &Cm, &dtb, &Al, &Dp, &y, &dy, &du, &dd, &dz, &dB, &dC, &dA, &dD, &ddtb};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) drop(all[i]);
        free(stc), free(wsc);
        gpu->free(gpu, stg), gpu->free(gpu, wsg);
    }
}

static void check_xent(void)
{
    static const int64_t rows_[] = {1, 777, 5000, 70001};
    for (int s = 0; s < 4; s++)
        for (int grad = 0; grad < 2; grad++) {
            int64_t M = rows_[s], V = 16;
            char sh[64];
            snprintf(sh, sizeof sh, "M=%lld grad=%d", (long long)M, grad);
            uint8_t *tk = tokens(M, 1), *tkd = tokens_dev(tk, M);
            if (M == 1) tk[0] = 8, gpu->copy(gpu, tkd, tk, 1, MD_COPY_H2D);   /* one counted row */
            md_tensor_t tth = md_tensor_1d(tk, MD_DTYPE_U8, MD_DEVICE_CPU, M), ttd = md_tensor_1d(tkd, MD_DTYPE_U8, MD_DEVICE_CUDA, M);
            buf_t lg = mk(M, V, V + 2, -4, 4), dl = mk(M, V, V, -1, 1);
            poison(&dl);
            size_t wc = cpu->xent_workspace(cpu, M), wg = gpu->xent_workspace(gpu, M);
            void *wsc = md_malloc(wc), *wsg = gpu->alloc(gpu, wg);
            md_tensor_t lh = th(&lg), ld = td(&lg), dh = th(&dl), dd = td(&dl);
            int64_t nc = -1, ng = -2;
            double lc = cpu->xent(cpu, grad ? &dh : NULL, &lh, &tth, 0.37, &nc, wsc);
            double lgp = gpu->xent(gpu, grad ? &dd : NULL, &ld, &ttd, 0.37, &ng, wsg);
            CHECK(nc == ng, "xent %s: counted %lld (cpu) vs %lld (gpu)", sh, (long long)nc, (long long)ng);
            record("xent", "loss", fabs(lgp - lc) / fabs(lc), 1e-12, sh);
            if (grad) record("xent", "dlogits", relerr(&dl), TOL, sh);
            drop(&lg), drop(&dl);
            free(tk), free(wsc);
            gpu->free(gpu, tkd), gpu->free(gpu, wsg);
        }
}

/* Causal attention on be against the CPU, on q, k, v column slices of qkv
 * (B*L, 3 H dh, padded), writing into poisoned padded buffers; dq, dk, dv
 * are slices of one matrix. fwd/bwd name the ops in the table; tol bounds
 * every error. bf16: lse is checked by its RMS absolute error, and at L > 1
 * the forward's error must pass 1e-5 (bf16 operands really in use). */
static void check_attention_case(const md_backend_t *be, buf_t *qkv, int64_t B, int64_t H, int64_t pad,
                                 const char *fwd, const char *bwd, double tol, int bf16, const char *sh)
{
    const md_backend_t *fp32 = gpu;
    gpu = be;   /* mk, poison and relerr use gpu's alloc and copy, which every table shares */
    int64_t M = qkv->rows, W = qkv->cols / 3, L = M / B, hd = W / H;
    double scale = 1.0 / sqrt((double)hd);
    md_tensor_t qh = slice(qkv, 0, 0, W), kh = slice(qkv, 0, W, W), vh = slice(qkv, 0, 2 * W, W);
    md_tensor_t qd = slice(qkv, 1, 0, W), kd = slice(qkv, 1, W, W), vd = slice(qkv, 1, 2 * W, W);
    buf_t o = mk(M, W, W + pad, -1, 1), lse = mk(B * H, L, L, -1, 1);
    poison(&o), poison(&lse);
    md_tensor_t oh = th(&o), od = td(&o), lh = th(&lse), ld = td(&lse);
    size_t wc = cpu->attention_workspace(cpu, MD_DTYPE_F32, B, L, H, hd);
    size_t wg = be->attention_workspace(be, MD_DTYPE_F32, B, L, H, hd);
    void *wsc = md_malloc(wc), *wsg = be->alloc(be, wg);
    poison_bytes(wsg, wg);
    cpu->attention_fwd(cpu, &oh, &lh, &qh, &kh, &vh, B, H, scale, wsc);
    be->attention_fwd(be, &od, &ld, &qd, &kd, &vd, B, H, scale, wsg);
    double eo = relerr(&o);
    record(fwd, "o", eo, tol, sh);
    /* lse enters the backward as exp(s - lse): its absolute error is what
     * counts, in both precisions. At L = 1 lse is the one score, which can be
     * near 0, so a relative error says nothing (fp32 once gave 3.2e-5 on a
     * single lse of ~3e-3; bf16 q and k make it ~1e-3 however small lse is) */
    record(fwd, "lse", rmserr(&lse), tol, sh);
    if (bf16 && L > 1) CHECK(eo > 1e-5, "%s %s: error %.3g is fp32-like: are the operands really bf16?", fwd, sh, eo);
    /* the CPU's o and lse on both sides, so the backward is checked alone */
    gpu->copy(gpu, o.d, o.h, (size_t)(M * o.ld) * sizeof(float), MD_COPY_H2D);
    gpu->copy(gpu, lse.d, lse.h, (size_t)(B * H * L) * sizeof(float), MD_COPY_H2D);

    buf_t dout = mk(M, W, W + pad, -1, 1), dqkv = mk(M, 3 * W, 3 * W + pad, -1, 1);
    poison(&dqkv);
    md_tensor_t doh = th(&dout), dod = td(&dout);
    md_tensor_t dqh = slice(&dqkv, 0, 0, W), dkh = slice(&dqkv, 0, W, W), dvh = slice(&dqkv, 0, 2 * W, W);
    md_tensor_t dqd = slice(&dqkv, 1, 0, W), dkd = slice(&dqkv, 1, W, W), dvd = slice(&dqkv, 1, 2 * W, W);
    poison_bytes(wsg, wg);
    cpu->attention_bwd(cpu, &dqh, &dkh, &dvh, &doh, &qh, &kh, &vh, &oh, &lh, B, H, scale, wsc);
    be->attention_bwd(be, &dqd, &dkd, &dvd, &dod, &qd, &kd, &vd, &od, &ld, B, H, scale, wsg);
    record(bwd, "dqkv", relerr(&dqkv), tol, sh);
    /* no atomics: a second run gives the same bits */
    size_t nb = (size_t)(M * dqkv.ld) * sizeof(float);
    float *first = md_malloc(nb ? nb : 1);
    gpu->copy(gpu, first, dqkv.d, nb, MD_COPY_D2H);
    poison(&dqkv);
    be->attention_bwd(be, &dqd, &dkd, &dvd, &dod, &qd, &kd, &vd, &od, &ld, B, H, scale, wsg);
    CHECK(same_bits(&dqkv, first), "%s %s: a second run differs", bwd, sh);
    free(first), free(wsc);
    be->free(be, wsg);
    drop(&o), drop(&lse), drop(&dout), drop(&dqkv);
    gpu = fp32;
}

/* RoPE, causal attention and SwiGLU on the model's views: q, k, v column
 * slices of one padded (B*L, 3 H dh) matrix, dq, dk, dv slices of another;
 * L = 1, odd L, L not a multiple of the 32-row tile, head dims that are not
 * a multiple of 32, several heads, batch > 1 */
static void check_transformer(void)
{
    static const int64_t shapes[][4] = {/* B, L, H, dh */
                                        {1, 1, 1, 8},   {2, 37, 3, 6},    {1, 129, 2, 64}, {3, 33, 2, 130},
                                        {2, 300, 1, 256}, {1, 1025, 4, 32}, {4, 64, 2, 96}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t B = shapes[s][0], L = shapes[s][1], H = shapes[s][2], hd = shapes[s][3];
        int64_t M = B * L, W = H * hd, pad = s % 2 ? 5 : 0;
        char sh[96];
        snprintf(sh, sizeof sh, "B=%lld L=%lld H=%lld dh=%lld pad=%lld", (long long)B, (long long)L, (long long)H,
                 (long long)hd, (long long)pad);
        buf_t qkv = mk(M, 3 * W, 3 * W + pad, -1, 1);
        /* RoPE on q (forward) and k (inverse) in place; v and the padding untouched */
        md_tensor_t qh = slice(&qkv, 0, 0, W), kh = slice(&qkv, 0, W, W);
        md_tensor_t qd = slice(&qkv, 1, 0, W), kd = slice(&qkv, 1, W, W);
        cpu->rope(cpu, &qh, B, H, 10000.0, 0);
        gpu->rope(gpu, &qd, B, H, 10000.0, 0);
        cpu->rope(cpu, &kh, B, H, 500.0, 1);
        gpu->rope(gpu, &kd, B, H, 500.0, 1);
        record("rope", "qkv", relerr(&qkv), TOL, sh);
        /* the CPU's result on both sides, so attention is checked alone */
        gpu->copy(gpu, qkv.d, qkv.h, (size_t)(M * qkv.ld) * sizeof(float), MD_COPY_H2D);
        check_attention_case(gpu, &qkv, B, H, pad, "attention_fwd", "attention_bwd", TOL, 0, sh);
        drop(&qkv);
    }
}

/* The bf16 table's tensor-core attention (head dims 32, 64, 128) against
 * the fp32 CPU: within bf16 rounding, and visibly not fp32. L = 1, odd L,
 * L not a multiple of the 64-row tile, batch > 1, several heads, padded
 * column slices; wider q/k (peaked softmax) on some shapes; a head dim
 * outside the mma set (the fp32 fallback) once. For the wgmma forward at
 * head dim 64 (kernels/sm90a: blocks of 128 queries in two warpgroups, key
 * tiles of 64 in a ring of 4 or 5 stages), L a multiple of 64 but not 128
 * (a last block whose second warpgroup has no rows), L odd over 3 blocks,
 * L one past a multiple of 128 (a last key tile of one key), 320
 * (sequence, head) pairs (several waves of blocks). The wgmma backward
 * (dK / dV blocks of 128 or 192 keys, dQ blocks of 128 or 192 queries,
 * 64-row tiles) meets the same shapes: L 192 and 300 leave the last block
 * a warpgroup without rows, L 4097 a last tile of one row. MD_ATTN_WGMMA
 * picks the forward's variant (0: the mma.sync kernels, backward too),
 * MD_ATTN_WGMMA_BWD / MD_ATTN_WGMMA_DQ the backward's; MD_GPU_OPS_ATTENTION
 * runs these checks alone. */
static void check_attention_bf16(void)
{
    const md_backend_t *bf = md_backend_cuda_ex(0, MD_PRECISION_BF16);
    CHECK(bf != NULL, "bf16 backend");
    if (!bf) return;
    static const int64_t shapes[][5] = {/* B, L, H, dh, q/k range */
                                        {1, 1, 1, 64},    {2, 37, 3, 64},   {1, 129, 2, 32}, {3, 65, 2, 128, 3},
                                        {2, 300, 2, 64, 3}, {1, 1025, 2, 64}, {4, 64, 2, 32, 3}, {1, 200, 2, 128},
                                        {1, 2000, 1, 64, 4}, {2, 77, 2, 96}, {1, 192, 1, 64},
                                        {2, 383, 2, 64, 3}, {8, 256, 40, 64}, {1, 4097, 1, 64}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t B = shapes[s][0], L = shapes[s][1], H = shapes[s][2], hd = shapes[s][3];
        double r = shapes[s][4] ? (double)shapes[s][4] : 1.0;
        int64_t M = B * L, W = H * hd, pad = s % 2 ? 3 : 0;
        char sh[112];
        snprintf(sh, sizeof sh, "B=%lld L=%lld H=%lld dh=%lld pad=%lld qk=+-%g", (long long)B, (long long)L,
                 (long long)H, (long long)hd, (long long)pad, r);
        buf_t qkv = mk(M, 3 * W, 3 * W + pad, -r, r);
        /* v in [-1, 1] whatever r */
        for (int64_t i = 0; i < M; i++)
            for (int64_t c = 2 * W; c < 3 * W; c++) qkv.h[i * qkv.ld + c] /= (float)r;
        gpu->copy(gpu, qkv.d, qkv.h, (size_t)(M * qkv.ld) * sizeof(float), MD_COPY_H2D);
        int mma = hd == 32 || hd == 64 || hd == 128;
        /* rounding q and k to bf16 moves a score by ~|s| 2^-9, which a
         * peaked softmax (wide q/k) turns into larger changes of P: measured
         * 1.3e-2 on dq, dk, dv at +-4, L 2000 */
        double tol = !mma ? TOL : r > 1 ? 2e-2 : 1e-2;
        check_attention_case(bf, &qkv, B, H, pad, mma ? "attention_fwd bf16" : "bf16 fallback fwd",
                             mma ? "attention_bwd bf16" : "bf16 fallback bwd", tol, mma, sh);
        drop(&qkv);
    }
}

static void check_swiglu(void)
{
    static const int64_t shapes[][2] = {{1, 1}, {37, 65}, {1000, 344}};
    for (int s = 0; s < 3; s++) {
        int64_t M = shapes[s][0], F = shapes[s][1];
        char sh[64];
        snprintf(sh, sizeof sh, "%lldx%lld", (long long)M, (long long)F);
        /* gate and up: the halves of one (M, 2F) projection, as in the model;
         * 1000 x 344 unpadded: the 16-byte path */
        int64_t pad = s == 2 ? 0 : 3;
        buf_t gu = mk(M, 2 * F, 2 * F + pad, -6, 6), y = mk(M, F, F + pad / 3, -1, 1), dy = mk(M, F, F, -1, 1);
        buf_t dgu = mk(M, 2 * F, 2 * F + pad, -1, 1);
        poison(&y), poison(&dgu);
        md_tensor_t gh = slice(&gu, 0, 0, F), uh = slice(&gu, 0, F, F), gd = slice(&gu, 1, 0, F), ud = slice(&gu, 1, F, F);
        md_tensor_t yh = th(&y), yd = td(&y), dyh = th(&dy), dyd = td(&dy);
        md_tensor_t dgh = slice(&dgu, 0, 0, F), duh = slice(&dgu, 0, F, F), dgd = slice(&dgu, 1, 0, F), dud = slice(&dgu, 1, F, F);
        cpu->swiglu_fwd(cpu, &yh, &gh, &uh);
        gpu->swiglu_fwd(gpu, &yd, &gd, &ud);
        record("swiglu_fwd", "y", relerr(&y), TOL, sh);
        cpu->swiglu_bwd(cpu, &dgh, &duh, &dyh, &gh, &uh);
        gpu->swiglu_bwd(gpu, &dgd, &dud, &dyd, &gd, &ud);
        record("swiglu_bwd", "dgate,dup", relerr(&dgu), TOL, sh);
        drop(&gu), drop(&y), drop(&dy), drop(&dgu);
    }
}

int main(void)
{
    gpu_test_start();
    if (getenv("MD_GPU_OPS_ATTENTION")) {
        /* the tensor-core attention alone: A/B of its kernel variants
         * (MD_ATTN_WGMMA) without the rest of the suite */
        check_attention_bf16();
        print_worst();
        return md_test_done();
    }
    check_gemm();
    check_gemm_bf16();
    check_lowrank();
    check_elementwise();
    check_adamw();
    check_embedding();
    check_rmsnorm();
    check_add_rmsnorm();
    check_conv();
    check_scan();
    check_xent();
    check_transformer();
    check_attention_bf16();
    check_swiglu();
    gpu->sync(gpu);
    print_worst();
    return md_test_done();
}
