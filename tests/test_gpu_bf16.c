/* The bf16 storage of the CUDA backend's bf16 table (ops.h: act_dtype)
 * against the CPU's fp32 ops on the same bf16-rounded inputs, for the Mamba
 * block's ops: convert, gemm on bf16 operands (C f32 or bf16, beta 0 and
 * 1), the RMSNorms' bf16 y and dy, conv1d + SiLU, in_proj fused with it
 * (the inference forward's in_proj_conv_fwd), the selective scan with every
 * sequence tensor in bf16, dt_proj's backward in one pass (lowrank_bwd),
 * x_proj and dt_proj's forward in one (x_dt_proj_fwd), and the inference
 * forward's out_proj fused with the residual add and the next RMSNorm. The
 * Hyena and Transformer++ blocks' ops are test_gpu_bf16_blocks.c's. Fresh
 * random inputs every run (seed printed); outputs poisoned with NaN first;
 * whole buffers compared, row padding included; strided views as the Mamba
 * block makes them (x of xz, B/C of xdbl). Tolerances: gpu_bf16_util.h.
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


static void check_convert_shape(const md_backend_t *bf, int64_t rows, int64_t cols, int64_t xpad, int64_t ypad,
                                int64_t zpad, const char *sh)
{
    buf_t x = mk(rows, cols, cols + xpad, -1, 1);
    for (int64_t i = 0; i < rows * (cols + xpad); i++) x.h[i] = ldexpf(x.h[i], (int)(i % 41) - 20);
    /* exact ties: halfway between neighbours in [1, 2), whose spacing is 2^-7 */
    for (int64_t i = 0; i < 64; i++) x.h[i * 7] = md_test_bf2f((uint16_t)(0x3f80 + i)) + ldexpf(1.0f, -8);
    gpu->copy(gpu, x.d, x.h, (size_t)(rows * (cols + xpad)) * 4, MD_COPY_H2D);
    b16_t y = mk16(rows, cols, cols + ypad, -1, 1);
    poison16(&y);
    md_tensor_t xd = td(&x), yd = d16(&y);
    bf->convert(bf, &yd, &xd);
    uint16_t *got = download16(&y);
    int64_t wrong = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) wrong += got[r * y.ld + c] != md_test_f2bf(x.h[r * x.ld + c]);
    /* the count of values that differ from the host's round-to-nearest-even */
    record("convert", "f32->bf16 (values wrong)", (double)wrong, 0, sh);
    /* and back: exact, padding untouched */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) y.h[r * y.ld + c] = md_test_bf2f(got[r * y.ld + c]);
    buf_t z = mk(rows, cols, cols + zpad, -1, 1);
    poison(&z);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) z.h[r * z.ld + c] = y.h[r * y.ld + c];
    md_tensor_t zd = td(&z);
    bf->convert(bf, &zd, &yd);
    record("convert", "bf16->f32", relerr(&z), 0, sh);
    free(got);
    drop(&x), drop16(&y), drop(&z);
}

/* f32 -> bf16 bit-exact against the host's rounding (values over many
 * binades, ties included), and back exactly. Shapes: odd strides (one
 * element a lane); even ones with g's copy into a column slice of dp (two
 * a lane); contiguous views folded into one long row (the weight copies),
 * of even and odd length. */
static void check_convert(const md_backend_t *bf)
{
    /* rows, cols, then the row padding of x (f32), y (bf16), z (f32) */
    static const int64_t shapes[][5] = {
        {333, 77, 3, 5, 1}, {512, 256, 0, 512, 0}, {64, 1000, 0, 0, 0}, {3, 999, 0, 0, 0}};
    for (int s = 0; s < 4; s++) {
        char sh[64];
        snprintf(sh, sizeof sh, "%lldx%lld pads %lld,%lld,%lld", (long long)shapes[s][0], (long long)shapes[s][1],
                 (long long)shapes[s][2], (long long)shapes[s][3], (long long)shapes[s][4]);
        check_convert_shape(bf, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], shapes[s][4], sh);
    }
}

/* bf16 A and B (strided, at odd column offsets as dt_in and B of xdbl),
 * C f32 or bf16, beta 0 (poisoned C) or 1 */
static void check_gemm16(const md_backend_t *bf)
{
    static const int64_t shapes[][3] = {{1, 1, 1}, {37, 33, 65}, {300, 129, 256}, {2048, 48, 8}};
    for (int s = 0; s < 4; s++)
        for (int t = 0; t < 4; t++)
            for (int cv = 0; cv < 4; cv++) {
                int ta = t & 1, tb = t >> 1, c16 = cv & 1, beta1 = cv >> 1;
                int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2], off = (s + t) % 2 ? 3 : 0;
                int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
                b16_t a = mk16(ar, ac + off, ac + off + 2, -1, 1), b = mk16(br, bc + off, bc + off + 1, -1, 1);
                md_tensor_t ah = cols16(&a, 0, off, ac), ad = cols16(&a, 1, off, ac);
                md_tensor_t bh = cols16(&b, 0, off, bc), bd = cols16(&b, 1, off, bc);
                double alpha = beta1 ? 0.5 : 1.0, beta = beta1 ? 1.0 : 0.0;
                char sh[96];
                snprintf(sh, sizeof sh, "m=%lld n=%lld k=%lld ta=%d tb=%d beta=%g off=%lld", (long long)m, (long long)n,
                         (long long)k, ta, tb, beta, (long long)off);
                if (c16) {
                    b16_t c = mk16(m, n, n + 1, -1, 1);
                    if (!beta1) poison16(&c);
                    md_tensor_t ch = h16(&c), cd = d16(&c);
                    cpu->gemm(cpu, ta, tb, alpha, &ah, &bh, beta, &ch);
                    bf->gemm(bf, ta, tb, alpha, &ad, &bd, beta, &cd);
                    record("gemm bf16 -> bf16", "c", err16(&c), ONE_ROUNDING, sh);
                    drop16(&c);
                } else {
                    buf_t c = mk(m, n, n + 1, -1, 1);
                    if (!beta1) poison(&c);
                    md_tensor_t ch = th(&c), cd = td(&c);
                    cpu->gemm(cpu, ta, tb, alpha, &ah, &bh, beta, &ch);
                    bf->gemm(bf, ta, tb, alpha, &ad, &bd, beta, &cd);
                    record("gemm bf16 -> f32", "c", relerr(&c), TOL, sh);
                    drop(&c);
                }
                drop16(&a), drop16(&b);
            }
}

/* rmsnorm_fwd and add_rmsnorm_fwd with a bf16 y; rmsnorm_bwd with a bf16 dy */
static void check_rmsnorm16(const md_backend_t *bf)
{
    /* M, D, and whether every row stride is a multiple of 4 (the kernels'
     * 4-wide path; D 128 and 256 4-wide: the rows in registers, several
     * rows a warp in rmsnorm_fwd and the backward; M 1027 and 333 end in a
     * part of a warp's rows) */
    static const int64_t shapes[][3] = {{1, 8, 0},     {777, 70, 0},   {4096, 256, 0},
                                        {4096, 128, 1}, {1027, 128, 1}, {333, 256, 1}};
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int64_t M = shapes[s][0], D = shapes[s][1], al = shapes[s][2];
        char sh[64];
        snprintf(sh, sizeof sh, "M=%lld D=%lld%s", (long long)M, (long long)D, al ? " 4-wide" : "");
        buf_t x = mk(M, D, D + (al ? 4 : 2), -2, 2), xa = mk(M, D, D + (al ? 0 : 3), -1, 1), w = mk(1, D, D, 0.5, 1.5);
        buf_t h = mk(M, D, D + (al ? 4 : 1), -1, 1), rs = mk(1, M, M, 0, 1);
        b16_t y = mk16(M, D, D + (al ? 8 : 1), -1, 1);
        poison16(&y), poison(&rs);
        md_tensor_t xh = th(&x), xd = td(&x), wh = th(&w), wd = td(&w), yh = h16(&y), yd = d16(&y);
        md_tensor_t rh = md_tensor_1d(rs.h, MD_DTYPE_F32, MD_DEVICE_CPU, M), rd = md_tensor_1d(rs.d, MD_DTYPE_F32, MD_DEVICE_CUDA, M);
        cpu->rmsnorm_fwd(cpu, &yh, &rh, &xh, &wh, 1e-5);
        bf->rmsnorm_fwd(bf, &yd, &rd, &xd, &wd, 1e-5);
        record("rmsnorm_fwd bf16 y", "y", err16(&y), ONE_ROUNDING, sh);
        record("rmsnorm_fwd bf16 y", "rstd", relerr(&rs), TOL, sh);

        poison16(&y), poison(&rs), poison(&h);
        md_tensor_t ah = th(&xa), ad = td(&xa), hh = th(&h), hd = td(&h);
        cpu->add_rmsnorm_fwd(cpu, &hh, &yh, &rh, &xh, &ah, &wh, 1e-5);
        bf->add_rmsnorm_fwd(bf, &hd, &yd, &rd, &xd, &ad, &wd, 1e-5);
        record("add_rmsnorm_fwd bf16 y", "y", err16(&y), ONE_ROUNDING, sh);
        record("add_rmsnorm_fwd bf16 y", "h_out", relerr(&h), TOL, sh);
        record("add_rmsnorm_fwd bf16 y", "rstd", relerr(&rs), TOL, sh);
        /* the Mamba backward's recompute of hn: rmsnorm_fwd of h_out gives
         * the same bits, y and rstd */
        uint16_t *yfwd = download16(&y);
        float *rfwd = md_malloc((size_t)M * sizeof(float));
        gpu->copy(gpu, rfwd, rs.d, (size_t)M * sizeof(float), MD_COPY_D2H);
        poison16(&y), poison(&rs);
        bf->rmsnorm_fwd(bf, &yd, &rd, &hd, &wd, 1e-5);
        uint16_t *yre = download16(&y);
        record("add_rmsnorm_fwd bf16 y", "rmsnorm_fwd of h_out != y, rstd",
               (double)(memcmp(yre, yfwd, (size_t)(M * y.ld) * 2) != 0) + !same_bits(&rs, rfwd), 0, sh);
        free(yfwd), free(yre), free(rfwd);

        for (int acc = 0; acc < 2; acc++) {
            b16_t dy = mk16(M, D, D + (al ? 0 : 3), -1, 1);
            buf_t dx = mk(M, D, D + 4, -1, 1), dw = mk(1, D, D, -1, 1);
            if (!acc) poison(&dx);
            md_tensor_t dyh = h16(&dy), dyd = d16(&dy), dxh = th(&dx), dxd = td(&dx), dwh = th(&dw), dwd = td(&dw);
            gpu->copy(gpu, rs.d, rs.h, (size_t)M * 4, MD_COPY_H2D);   /* the CPU's rstd on both sides */
            b16_t copy = mk16(M, D, D + (al ? 4 : 2), -1, 1);
            poison16(&copy);
            md_tensor_t cd = d16(&copy);
            cpu->rmsnorm_bwd(cpu, &dxh, &dwh, &dyh, &hh, &wh, &rh, acc, NULL);
            bf->rmsnorm_bwd(bf, &dxd, &dwd, &dyd, &hd, &wd, &rd, acc, &cd);
            record("rmsnorm_bwd bf16 dy", "dx", relerr(&dx), TOL, sh);
            record("rmsnorm_bwd bf16 dy", "dw", relerr(&dw), TOL, sh);
            /* dx_act: the GPU's final dx rounded to bf16 bit for bit (as
             * convert rounds), its padding as it was */
            float *dxg = md_malloc((size_t)(M * dx.ld) * sizeof(float));
            gpu->copy(gpu, dxg, dx.d, (size_t)(M * dx.ld) * sizeof(float), MD_COPY_D2H);
            uint16_t *cg = download16(&copy);
            int64_t differ = 0;
            for (int64_t r = 0; r < M; r++)
                for (int64_t c = 0; c < copy.ld; c++)
                    differ += cg[r * copy.ld + c] !=
                              md_test_f2bf(c < D ? dxg[r * dx.ld + c] : copy.h[r * copy.ld + c]);
            record("rmsnorm_bwd bf16 dy", "dx_act != bf16(dx) (count)", (double)differ, 0, sh);
            free(dxg), free(cg);
            drop16(&dy), drop16(&copy), drop(&dx), drop(&dw);
        }
        drop(&x), drop(&xa), drop(&w), drop(&h), drop(&rs), drop16(&y);
    }
}

/* x the first half of an xz-like bf16 matrix, as the model's; B, L, E and
 * dy's row padding: tiles staged through shared memory where E and the
 * strides are multiples of 8 (E 136 a part of a 256-channel block, B 2
 * L 8191 several tiles a block), channel pairs where even (70), single
 * channels else (padding 1) */
static void check_conv16(const md_backend_t *bf)
{
    static const int64_t shapes[][4] = {{1, 1, 8, 0},     {2, 3, 70, 0},   {3, 777, 128, 0},  {3, 777, 128, 1},
                                        {1, 4096, 64, 1}, {4, 5, 136, 0}, {2, 8191, 64, 0}};
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int64_t B = shapes[s][0], L = shapes[s][1], E = shapes[s][2], K = 4, M = B * L;
        char sh[80];
        snprintf(sh, sizeof sh, "B=%lld L=%lld E=%lld dy pad %lld", (long long)B, (long long)L, (long long)E,
                 (long long)shapes[s][3]);
        b16_t xz = mk16(M, 2 * E, 2 * E, -2, 2), y = mk16(M, E, E, 0, 1);
        buf_t w = mk(E, K, K, -0.5, 0.5), b = mk(1, E, E, -0.5, 0.5);
        poison16(&y);
        md_tensor_t xh = cols16(&xz, 0, 0, E), xd = cols16(&xz, 1, 0, E), wh = th(&w), wd = td(&w), bh = th(&b), bd = td(&b);
        md_tensor_t yh = h16(&y), yd = d16(&y);
        cpu->conv1d_silu_fwd(cpu, &yh, &xh, &wh, &bh, B);
        bf->conv1d_silu_fwd(bf, &yd, &xd, &wd, &bd, B);
        record("conv1d_silu_fwd bf16", "y", err16(&y), ONE_ROUNDING, sh);
        b16_t dy = mk16(M, E, E + shapes[s][3], -1, 1), dxz = mk16(M, 2 * E, 2 * E, -1, 1);
        buf_t dw = mk(E, K, K, -1, 1), db = mk(1, E, E, -1, 1);
        poison16_cols(&dxz, 0, E);   /* dx, the x half; the z half stays as it was */
        md_tensor_t dyh = h16(&dy), dyd = d16(&dy), dxh = cols16(&dxz, 0, 0, E), dxd = cols16(&dxz, 1, 0, E);
        md_tensor_t dwh = th(&dw), dwd = td(&dw), dbh = th(&db), dbd = td(&db);
        cpu->conv1d_silu_bwd(cpu, &dxh, &dwh, &dbh, &dyh, &xh, &wh, &bh, B);
        bf->conv1d_silu_bwd(bf, &dxd, &dwd, &dbd, &dyd, &xd, &wd, &bd, B);
        record("conv1d_silu_bwd bf16", "dx (of dxz)", err16(&dxz), ONE_ROUNDING, sh);
        record("conv1d_silu_bwd bf16", "dw", relerr(&dw), TOL, sh);
        record("conv1d_silu_bwd bf16", "dbias", relerr(&db), TOL, sh);
        drop16(&xz), drop16(&y), drop(&w), drop(&b), drop16(&dy), drop16(&dxz), drop(&dw), drop(&db);
    }
}

/* in_proj fused with conv1d + SiLU (the inference forward's): z and u
 * against the CPU's twin (gemm, then conv1d_silu_fwd) on the same inputs,
 * with x rounded to bf16 between them as the GPU rounds it (z, u: one
 * rounding), and u against the twin as it is (x unrounded: two). Shapes:
 * the kernel's (d, E) with B above its threshold of 2 sequences an SM (the
 * H200's 132: 264), L = 1, shorter than its 64-row tile, one tile, not a
 * multiple of it, many tiles; B below the threshold and a (d, E) it lacks,
 * where the op returns 0 and the caller's ops run (so here too). Where the
 * op runs, xz's x half is its scratch: only z's columns are compared. */
static void check_in_proj_conv16(const md_backend_t *bf)
{
    static const int64_t shapes[][4] = {{300, 1, 128, 256}, {264, 50, 128, 256}, {265, 64, 64, 256},
                                        {270, 130, 64, 128}, {300, 200, 128, 256}, {600, 129, 128, 256},
                                        {8, 300, 128, 256},  {264, 70, 96, 192}};
    const int n_shapes = (int)(sizeof shapes / sizeof shapes[0]);
    int taken_big = 0;
    for (int s = 0; s < n_shapes; s++) {
        int64_t B = shapes[s][0], L = shapes[s][1], d = shapes[s][2], E = shapes[s][3], K = 4, M = B * L;
        b16_t hn = mk16(M, d, d, -2, 2), w_in = mk16(2 * E, d, d, -0.2, 0.2);
        b16_t xz = mk16(M, 2 * E, 2 * E, -1, 1), u = mk16(M, E, E, -1, 1);
        buf_t w = mk(E, K, K, -0.5, 0.5), b = mk(1, E, E, -0.5, 0.5);
        poison16(&xz), poison16(&u);
        md_tensor_t hnh = h16(&hn), hnd = d16(&hn), wih = h16(&w_in), wid = d16(&w_in);
        md_tensor_t xzh = h16(&xz), xzd = d16(&xz), uh = h16(&u), ud = d16(&u);
        md_tensor_t wh = th(&w), wd = td(&w), bh = th(&b), bd = td(&b);
        int taken = bf->in_proj_conv_fwd(bf, &ud, &xzd, &hnd, &wid, &wd, &bd, B);
        if (!taken) {   /* what the model runs then */
            md_tensor_t xd = cols16(&xz, 1, 0, E);
            bf->gemm(bf, 0, 1, 1.0, &hnd, &wid, 0.0, &xzd);
            bf->conv1d_silu_fwd(bf, &ud, &xd, &wd, &bd, B);
        }
        if (B >= 600) taken_big = taken;
        char sh[96];
        snprintf(sh, sizeof sh, "B=%lld L=%lld d=%lld E=%lld (%s)", (long long)B, (long long)L, (long long)d,
                 (long long)E, taken ? "fused" : "not taken");
        /* the twin as it is, then x rounded between its two ops */
        CHECK(cpu->in_proj_conv_fwd(cpu, &uh, &xzh, &hnh, &wih, &wh, &bh, B) == 1, "cpu in_proj_conv_fwd");
        record("in_proj_conv_fwd bf16", "u (x unrounded)", err16(&u), 2 * ONE_ROUNDING, sh);
        for (int64_t r = 0; r < M; r++)
            for (int64_t c = 0; c < E; c++) xz.h[r * xz.ld + c] = md_test_bf2f(md_test_f2bf(xz.h[r * xz.ld + c]));
        md_tensor_t xh = cols16(&xz, 0, 0, E);
        cpu->conv1d_silu_fwd(cpu, &uh, &xh, &wh, &bh, B);
        record("in_proj_conv_fwd bf16", "u", err16(&u), ONE_ROUNDING, sh);
        record("in_proj_conv_fwd bf16", "z (of xz)", err16_cols(&xz, E, E), ONE_ROUNDING, sh);
        drop16(&hn), drop16(&w_in), drop16(&xz), drop16(&u), drop(&w), drop(&b);
    }
    CHECK(cpu->in_proj_conv_fwd != NULL && bf->in_proj_conv_fwd != NULL, "in_proj_conv_fwd in both tables");
    CHECK(taken_big, "in_proj_conv_fwd takes B 600 x L 129, d 128, E 256");
}

/* every sequence tensor bf16, in the model's views (z of xz, B and C of
 * xdbl); A_log, D, dt_bias and their gradients f32 */
static void check_scan16(const md_backend_t *bf)
{
    static const int64_t shapes[][4] = {{1, 1, 16, 16}, {2, 777, 64, 16}, {3, 300, 32, 5}, {1, 2048, 128, 16}};
    for (int s = 0; s < 4; s++) {
        int64_t B = shapes[s][0], L = shapes[s][1], E = shapes[s][2], N = shapes[s][3], M = B * L, R = 4, X = R + 2 * N;
        char sh[64];
        snprintf(sh, sizeof sh, "B=%lld L=%lld E=%lld N=%lld", (long long)B, (long long)L, (long long)E, (long long)N);
        b16_t u = mk16(M, E, E, -1, 1), xz = mk16(M, 2 * E, 2 * E, -1, 1), delta = mk16(M, E, E, -1, 1);
        b16_t xdbl = mk16(M, X, X, -1, 1), y = mk16(M, E, E, 0, 1);
        buf_t dtb = mk(1, E, E, -4, -2), Al = mk(E, N, N, 0, 2.77), Dp = mk(1, E, E, -1, 1);
        poison16(&y);
        size_t sc = cpu->scan_states_size(cpu, MD_DTYPE_F32, B, L, E, N), sg = bf->scan_states_size(bf, MD_DTYPE_BF16, B, L, E, N);
        size_t wc = cpu->scan_bwd_workspace(cpu, MD_DTYPE_F32, B, L, E, N), wg = bf->scan_bwd_workspace(bf, MD_DTYPE_BF16, B, L, E, N);
        void *stc = md_malloc(sc + 64), *wsc = md_malloc(wc + 64), *stg = gpu->alloc(gpu, sg + 64), *wsg = gpu->alloc(gpu, wg + 64);
        poison_bytes(stg, sg), poison_bytes(wsg, wg);
        md_tensor_t uh = h16(&u), ud = d16(&u), dh = h16(&delta), dd = d16(&delta), yh = h16(&y), yd = d16(&y);
        md_tensor_t zh = cols16(&xz, 0, E, E), zd = cols16(&xz, 1, E, E);
        md_tensor_t Bh = cols16(&xdbl, 0, R, N), Bd = cols16(&xdbl, 1, R, N), Ch = cols16(&xdbl, 0, R + N, N), Cd = cols16(&xdbl, 1, R + N, N);
        md_tensor_t tbh = th(&dtb), tbd = td(&dtb), Ah = th(&Al), Ad = td(&Al), Dh = th(&Dp), Dd = td(&Dp);
        cpu->scan_fwd(cpu, &yh, &uh, &dh, NULL, NULL, &tbh, &Ah, &Bh, &Ch, &Dh, &zh, B, stc, NULL);
        bf->scan_fwd(bf, &yd, &ud, &dd, NULL, NULL, &tbd, &Ad, &Bd, &Cd, &Dd, &zd, B, stg, NULL);
        record("scan_fwd bf16", "y", err16(&y), ONE_ROUNDING, sh);

        b16_t dy = mk16(M, E, E, -1, 1), du = mk16(M, E, E, 0, 1), ddl = mk16(M, E, E, 0, 1);
        b16_t dxz = mk16(M, 2 * E, 2 * E, 0, 1), dxdbl = mk16(M, X, X, 0, 1);
        buf_t dA = mk(E, N, N, -1, 1), dD = mk(1, E, E, -1, 1), ddtb = mk(1, E, E, -1, 1);
        poison16(&du), poison16(&ddl), poison16_cols(&dxz, E, E), poison16_cols(&dxdbl, R, 2 * N);
        md_tensor_t dyh = h16(&dy), dyd = d16(&dy), duh = h16(&du), dud = d16(&du), ddh = h16(&ddl), ddd = d16(&ddl);
        md_tensor_t dzh = cols16(&dxz, 0, E, E), dzd = cols16(&dxz, 1, E, E);
        md_tensor_t dBh = cols16(&dxdbl, 0, R, N), dBd = cols16(&dxdbl, 1, R, N);
        md_tensor_t dCh = cols16(&dxdbl, 0, R + N, N), dCd = cols16(&dxdbl, 1, R + N, N);
        md_tensor_t dAh = th(&dA), dAd = td(&dA), dDh = th(&dD), dDd = td(&dD), dth = th(&ddtb), dtd = td(&ddtb);
        buf_t *pg[] = {&dA, &dD, &ddtb};   /* added into: their values before, for the rerun */
        float *pg0[3];
        for (int i = 0; i < 3; i++) pg0[i] = md_malloc((size_t)(pg[i]->rows * pg[i]->ld) * sizeof(float));
        for (int i = 0; i < 3; i++) memcpy(pg0[i], pg[i]->h, (size_t)(pg[i]->rows * pg[i]->ld) * sizeof(float));
        cpu->scan_bwd(cpu, &duh, &ddh, &dAh, &dBh, &dCh, &dDh, &dzh, &dth, NULL, &dyh, &uh, &dh, NULL, NULL, &tbh, &Ah, &Bh,
                      &Ch, &Dh, &zh, B,
                      stc, NULL, wsc);
        bf->scan_bwd(bf, &dud, &ddd, &dAd, &dBd, &dCd, &dDd, &dzd, &dtd, NULL, &dyd, &ud, &dd, NULL, NULL, &tbd, &Ad, &Bd,
                     &Cd, &Dd, &zd, B,
                     stg, NULL, wsg);
        record("scan_bwd bf16", "du", err16(&du), ONE_ROUNDING, sh);
        record("scan_bwd bf16", "ddelta", err16(&ddl), ONE_ROUNDING, sh);
        record("scan_bwd bf16", "dz (of dxz)", err16(&dxz), ONE_ROUNDING, sh);
        record("scan_bwd bf16", "dBm, dCm (of dxdbl)", err16(&dxdbl), ONE_ROUNDING, sh);
        record("scan_bwd bf16", "dA_log", relerr(&dA), TOL, sh);
        record("scan_bwd bf16", "dD", relerr(&dD), TOL, sh);
        record("scan_bwd bf16", "ddt_bias", relerr(&ddtb), TOL, sh);

        /* again through segment states (poisoned first): the same bits */
        size_t ss = bf->scan_seg_states_size(bf, MD_DTYPE_BF16, B, L, E, N);
        b16_t *outs[] = {&y, &du, &ddl, &dxz, &dxdbl};
        uint16_t *first16[5];
        float *first32[3];
        for (int i = 0; i < 5; i++) first16[i] = download16(outs[i]);
        for (int i = 0; i < 3; i++) {
            size_t n = (size_t)(pg[i]->rows * pg[i]->ld) * sizeof(float);
            first32[i] = md_malloc(n);
            gpu->copy(gpu, first32[i], pg[i]->d, n, MD_COPY_D2H);
            gpu->copy(gpu, pg[i]->d, pg0[i], n, MD_COPY_H2D);
        }
        void *seg = gpu->alloc(gpu, ss + 64);
        poison_bytes(seg, ss), poison_bytes(stg, sg), poison_bytes(wsg, wg);
        poison16(&y), poison16(&du), poison16(&ddl), poison16_cols(&dxz, E, E), poison16_cols(&dxdbl, R, 2 * N);
        bf->scan_fwd(bf, &yd, &ud, &dd, NULL, NULL, &tbd, &Ad, &Bd, &Cd, &Dd, &zd, B, stg, seg);
        bf->scan_bwd(bf, &dud, &ddd, &dAd, &dBd, &dCd, &dDd, &dzd, &dtd, NULL, &dyd, &ud, &dd, NULL, NULL, &tbd, &Ad, &Bd,
                     &Cd, &Dd, &zd, B, stg, seg, wsg);
        int same = 1;
        for (int i = 0; i < 5; i++) {
            uint16_t *t = download16(outs[i]);
            same &= !memcmp(t, first16[i], (size_t)(outs[i]->rows * outs[i]->ld) * 2);
            free(t), free(first16[i]);
        }
        for (int i = 0; i < 3; i++) same &= same_bits(pg[i], first32[i]), free(first32[i]), free(pg0[i]);
        record("scan_fwd, scan_bwd bf16", "again from segment states (bits)", same ? 0 : INFINITY, 0, sh);
        gpu->free(gpu, seg);
        b16_t *b16s[] = {&u, &xz, &delta, &xdbl, &y, &dy, &du, &ddl, &dxz, &dxdbl};
        buf_t *b32s[] = {&dtb, &Al, &Dp, &dA, &dD, &ddtb};
        for (size_t i = 0; i < sizeof b16s / sizeof b16s[0]; i++) drop16(b16s[i]);
        for (size_t i = 0; i < sizeof b32s / sizeof b32s[0]; i++) drop(b32s[i]);
        free(stc), free(wsc);
        gpu->free(gpu, stg), gpu->free(gpu, wsg);
    }
}

/* lowrank_bwd (dt_proj's backward) with dy, x, w and dx bf16 (dw f32,
 * preloaded: it accumulates), x and dx column slices of xdbl-like
 * matrices (R + 2N wide): dx one rounding, dw the fp32 sums of exact
 * products (TOL). The tensor-core kernel's shapes: E 256 and 512 by R 8 and
 * 16, M 1, M not a multiple of a tile, dy's rows padded, and M large enough
 * that every block runs many tiles through its pipeline; the fallback's:
 * R 1, 3, 12, 17, E 64, 255, 1024, 2048, dy's row stride not a multiple of 8.
 * Run twice: the same bits. */
static void check_lowrank16(const md_backend_t *bf)
{
    /* M, E, R, dy's row padding */
    static const int64_t shapes[][4] = {{1, 256, 8, 0},      {5, 64, 1, 0},      {1000, 256, 8, 0},  {4097, 512, 16, 0},
                                        {333, 512, 8, 8},    {77, 256, 16, 4},   {2000, 2048, 3, 0}, {130, 32, 12, 0},
                                        {300, 256, 17, 0},   {130, 255, 8, 0},   {200, 256, 8, 4},   {513, 1024, 16, 0},
                                        {50001, 256, 8, 0},  {40000, 512, 16, 0}, {20001, 256, 16, 8}, {9000, 512, 8, 0},
                                        {77, 256, 16, 8}};
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int64_t M = shapes[s][0], E = shapes[s][1], R = shapes[s][2], dyp = shapes[s][3], ld = R + 32;
        char sh[80];
        snprintf(sh, sizeof sh, "M=%lld E=%lld R=%lld dy ld %lld", (long long)M, (long long)E, (long long)R,
                 (long long)(E + dyp));
        double a = sqrt(3.0 / (double)E);
        b16_t dy = mk16(M, E, E + dyp, -1, 1), x = mk16(M, ld, ld, -1, 1), w = mk16(E, R, R, -a, a);
        b16_t dx = mk16(M, ld, ld, -1, 1);
        buf_t dw = mk(E, R, R, -1, 1);
        poison16_cols(&dx, 0, R);
        md_tensor_t dyh = h16(&dy), dyd = d16(&dy), xh = cols16(&x, 0, 0, R), xd = cols16(&x, 1, 0, R);
        md_tensor_t wh = h16(&w), wd = d16(&w), dxh = cols16(&dx, 0, 0, R), dxd = cols16(&dx, 1, 0, R);
        md_tensor_t dwh = th(&dw), dwd = td(&dw);
        size_t nw = (size_t)(E * R);
        float *dw0 = md_malloc(nw * sizeof(float)), *first_dw = md_malloc(nw * sizeof(float));
        memcpy(dw0, dw.h, nw * sizeof(float));
        cpu->lowrank_bwd(cpu, &dxh, &dwh, &dyh, &xh, &wh);
        bf->lowrank_bwd(bf, &dxd, &dwd, &dyd, &xd, &wd);
        record("lowrank_bwd bf16", "dx bf16", err16(&dx), ONE_ROUNDING, sh);
        record("lowrank_bwd bf16", "dw f32", relerr(&dw), TOL, sh);
        uint16_t *first_dx = download16(&dx);
        gpu->copy(gpu, first_dw, dw.d, nw * sizeof(float), MD_COPY_D2H);
        gpu->copy(gpu, dw.d, dw0, nw * sizeof(float), MD_COPY_H2D);
        poison16_cols(&dx, 0, R);
        bf->lowrank_bwd(bf, &dxd, &dwd, &dyd, &xd, &wd);
        uint16_t *again = download16(&dx);
        int same = !memcmp(again, first_dx, (size_t)(M * ld) * 2) && same_bits(&dw, first_dw);
        record("lowrank_bwd bf16", "dx, dw again (bits)", same ? 0 : INFINITY, 0, sh);
        free(dw0), free(first_dw), free(first_dx), free(again);
        drop16(&dy), drop16(&x), drop16(&w), drop16(&dx), drop(&dw);
    }
}

/* x_dt_proj_fwd (the Mamba block's x_proj then dt_proj) with every tensor
 * bf16: xdbl one rounding; delta 2 roundings, since the CPU forms it from
 * xdbl before rounding and the op from xdbl as stored (its contract). The
 * tensor-core kernel's shapes: E 256 with R 8 (J 40) and R 16 (J 48), M 1,
 * M not a multiple of a tile, padded rows of u, xdbl and delta, and M
 * large enough that every warp runs many tiles through its pipeline; the
 * fallback's: E 512 (the two GEMMs are faster there), 255 and 128, R 12,
 * u's row stride not a multiple of 8. Run twice: the same bits. */
static void check_x_dt_proj16(const md_backend_t *bf)
{
    /* M, E, R, J, u's, xdbl's and delta's row padding */
    static const int64_t shapes[][7] = {{1, 256, 8, 40, 0, 0, 0},      {1000, 256, 8, 40, 0, 0, 0},
                                        {50001, 256, 8, 40, 0, 0, 0},  {40000, 512, 16, 48, 0, 0, 0},
                                        {333, 512, 8, 40, 8, 2, 8},    {77, 256, 16, 48, 16, 0, 8},
                                        {9000, 512, 16, 48, 0, 6, 0},  {130, 255, 8, 40, 0, 0, 0},
                                        {200, 256, 12, 44, 0, 0, 0},   {100, 128, 8, 40, 0, 0, 0},
                                        {120, 256, 8, 40, 4, 0, 0},    {20001, 256, 16, 48, 8, 0, 0}};
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int64_t M = shapes[s][0], E = shapes[s][1], R = shapes[s][2], J = shapes[s][3];
        char sh[96];
        snprintf(sh, sizeof sh, "M=%lld E=%lld R=%lld J=%lld u ld %lld", (long long)M, (long long)E, (long long)R,
                 (long long)J, (long long)(E + shapes[s][4]));
        double ax = sqrt(3.0 / (double)E), ad = sqrt(3.0 / (double)R);
        b16_t u = mk16(M, E, E + shapes[s][4], -1, 1), wx = mk16(J, E, E, -ax, ax), wdt = mk16(E, R, R, -ad, ad);
        b16_t xdbl = mk16(M, J, J + shapes[s][5], -1, 1), delta = mk16(M, E, E + shapes[s][6], -1, 1);
        poison16_cols(&xdbl, 0, J), poison16_cols(&delta, 0, E);
        md_tensor_t uh = h16(&u), ud = d16(&u), wxh = h16(&wx), wxd = d16(&wx), wdh = h16(&wdt), wdd = d16(&wdt);
        md_tensor_t xh = h16(&xdbl), xd = d16(&xdbl), dh = h16(&delta), dd = d16(&delta);
        cpu->x_dt_proj_fwd(cpu, &xh, &dh, &uh, &wxh, &wdh);
        bf->x_dt_proj_fwd(bf, &xd, &dd, &ud, &wxd, &wdd);
        record("x_dt_proj_fwd bf16", "xdbl", err16(&xdbl), ONE_ROUNDING, sh);
        record("x_dt_proj_fwd bf16", "delta", err16(&delta), 2 * ONE_ROUNDING, sh);
        uint16_t *first_x = download16(&xdbl), *first_d = download16(&delta);
        poison16_cols(&xdbl, 0, J), poison16_cols(&delta, 0, E);
        bf->x_dt_proj_fwd(bf, &xd, &dd, &ud, &wxd, &wdd);
        uint16_t *again_x = download16(&xdbl), *again_d = download16(&delta);
        int same = !memcmp(again_x, first_x, (size_t)(M * xdbl.ld) * 2) &&
                   !memcmp(again_d, first_d, (size_t)(M * delta.ld) * 2);
        record("x_dt_proj_fwd bf16", "xdbl, delta again (bits)", same ? 0 : INFINITY, 0, sh);
        free(first_x), free(first_d), free(again_x), free(again_d);
        drop16(&u), drop16(&wx), drop16(&wdt), drop16(&xdbl), drop16(&delta);
    }
}

/* linear_add_rmsnorm_fwd (the Mamba inference forward's out_proj with the
 * residual add and the next RMSNorm) against the CPU's composition: bf16 x
 * and w, y bf16 (the next block's hn) or f32 (norm_f's hf). The
 * tensor-core kernel's shapes, with the row-layout epilogue (x pad 8: rows
 * of h, h_in and y 4-wide, K >= 2 x D's kernel width) and the fragment
 * one: M not a multiple of its 16-row tiles, M 1, M 50001 and 40007
 * (more tiles than the grid's warps: each warp's loop, its x copies and
 * h_in loads ahead of the tile it multiplies), D 48 and 144 (columns
 * past D in the 64 and 256 wide kernels), D 256 (fewer warps beside the
 * larger weight); the fallback's: D 72 (not a multiple of 16), D 512, a
 * weight over shared memory (D 256, K 512), x's row stride not a multiple
 * of 8 (no 16-byte rows), and f32 x and w on the fp32 table. */
static void check_linear_add_rmsnorm16(const md_backend_t *bf)
{
    /* M, D, K, x's row padding, y bf16, x bf16 */
    static const int64_t shapes[][6] = {
        {1000, 128, 256, 8, 1, 1}, {1000, 128, 256, 8, 0, 1}, {1, 128, 256, 8, 1, 1},  {500, 64, 128, 8, 1, 1},
        {77, 48, 128, 8, 1, 1},    {1000, 128, 256, 0, 1, 1}, {1000, 128, 256, 0, 0, 1}, {1, 128, 256, 0, 1, 1},
        {77, 48, 64, 8, 1, 1},     {333, 144, 96, 0, 1, 1},   {2049, 256, 256, 8, 1, 1}, {100, 72, 128, 0, 1, 1},
        {50, 512, 64, 0, 1, 1},    {333, 256, 512, 0, 1, 1},  {300, 128, 256, 3, 1, 1},  {300, 128, 256, 0, 0, 0},
        {50001, 128, 256, 8, 1, 1}, {40007, 64, 128, 8, 0, 1}};
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int64_t M = shapes[s][0], D = shapes[s][1], K = shapes[s][2], xp = shapes[s][3], y16 = shapes[s][4];
        int x16 = (int)shapes[s][5];
        const md_backend_t *be = x16 ? bf : gpu;
        double a = sqrt(3.0 / (double)K);
        char sh[96];
        snprintf(sh, sizeof sh, "M=%lld D=%lld K=%lld x pad %lld y %s x %s", (long long)M, (long long)D, (long long)K,
                 (long long)xp, y16 ? "bf16" : "f32", x16 ? "bf16" : "f32");
        const int64_t rp = xp == 8 ? 4 : 2;   /* row padding: 4-wide rows for x pad 8 */
        b16_t x = mk16(M, K, K + xp, -1, 1), w = mk16(D, K, K, -a, a), yb = mk16(M, D, D + 2 * rp, -1, 1);
        buf_t x32 = mk(M, K, K + xp, -1, 1), w32 = mk(D, K, K, -a, a);
        buf_t hin = mk(M, D, D + rp, -2, 2), h = mk(M, D, D + 4, -1, 1), yf = mk(M, D, D + rp, -1, 1);
        buf_t nw = mk(1, D, D, 0.5, 1.5), rs = mk(1, M, M, 0, 1);
        poison16(&yb), poison(&yf), poison(&h), poison(&rs);
        md_tensor_t xh = x16 ? h16(&x) : th(&x32), xd = x16 ? d16(&x) : td(&x32);
        md_tensor_t wh = x16 ? h16(&w) : th(&w32), wd = x16 ? d16(&w) : td(&w32);
        md_tensor_t yh = y16 ? h16(&yb) : th(&yf), yd = y16 ? d16(&yb) : td(&yf);
        md_tensor_t ih = th(&hin), id = td(&hin), hh = th(&h), hd = td(&h), nh = th(&nw), nd = td(&nw);
        md_tensor_t rh = md_tensor_1d(rs.h, MD_DTYPE_F32, MD_DEVICE_CPU, M), rd = md_tensor_1d(rs.d, MD_DTYPE_F32, MD_DEVICE_CUDA, M);
        cpu->linear_add_rmsnorm_fwd(cpu, &hh, &yh, &rh, &xh, &wh, &ih, &nh, 1e-5);
        be->linear_add_rmsnorm_fwd(be, &hd, &yd, &rd, &xd, &wd, &id, &nd, 1e-5);
        record("linear_add_rmsnorm_fwd", "h_out", relerr(&h), TOL, sh);
        record("linear_add_rmsnorm_fwd", y16 ? "y bf16" : "y f32", y16 ? err16(&yb) : relerr(&yf),
               y16 ? ONE_ROUNDING : TOL, sh);
        record("linear_add_rmsnorm_fwd", "rstd", relerr(&rs), TOL, sh);
        record("linear_add_rmsnorm_fwd", "h_in (untouched)", relerr(&hin), 0, sh);
        drop16(&x), drop16(&w), drop16(&yb);
        drop(&x32), drop(&w32), drop(&hin), drop(&h), drop(&yf), drop(&nw), drop(&rs);
    }
}

int main(void)
{
    const md_backend_t *bf = gpu_bf16_test_start();
    if (!bf) return md_test_done();
    check_convert(bf);
    check_gemm16(bf);
    check_rmsnorm16(bf);
    check_conv16(bf);
    check_in_proj_conv16(bf);
    check_scan16(bf);
    check_lowrank16(bf);
    check_x_dt_proj16(bf);
    check_linear_add_rmsnorm16(bf);
    gpu->sync(gpu);
    print_worst();
    return md_test_done();
}
