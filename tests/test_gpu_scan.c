/* The CUDA selective scan (kernels/scan_api.h) against the CPU op.
 *
 * For each shape and dtype: fresh random inputs (rounded to the dtype), the
 * reference from md_backend_cpu()'s scan_fwd/scan_bwd in f64 on the same
 * rounded values, GPU outputs poisoned (all-ones bytes, a NaN) before every
 * run and the padding between strided rows checked untouched afterwards,
 * input padding filled with NaN so that a read outside a view shows (each
 * view padded by its own amount, so that one view's stride used for
 * another's reads the wrong rows). Every
 * output and gradient must have ||gpu - ref|| / ||ref|| under 1e-5 (f32) or
 * 1e-2 (bf16); the forward for inference (neither states nor workspace)
 * too, also with delta's rows unpadded so that it takes channel pairs
 * where the strides allow, and with delta formed inside it from dt_proj's
 * input and weight (delta NULL; R from 1 to MD_SCAN_MAX_DT_RANK over the
 * shapes), against the CPU op forming delta too and given delta formed
 * here. Then, on the GPU alone: the backward from the
 * forward's saved chunk states equals the one that recomputes them, bit
 * for bit; two runs
 * give identical bits; a forward without y (the states alone) followed by
 * a backward that writes y (y_out) gives them too, y included; so does a
 * backward from the forward's segment states (seg_states), which must
 * change when they are overwritten; and a sequence split in two, carried through
 * h0/hT and dhT/dh0 (its second part through segment states), matches the
 * whole. All of it for both training schemes
 * (md_scan_pass_t CHUNKED and WHOLE), whichever AUTO would pick.
 *
 * Exits 77 (skipped) without CUDA or a GPU. MD_GPU_SCAN_QUICK=1 keeps the
 * small shapes only (for compute-sanitizer runs).
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "testutil.h"

#if !MD_HAVE_CUDA
int main(void)
{
    printf("skipped: built without CUDA\n");
    return 77;
}
#else

#include "gpu_scan_harness.h"

/* 4c: the forward-only scan forming delta = dt_low dt_w^T itself (delta
 * NULL): y against the CPU op forming it too and against the CPU op given
 * that delta formed here in f64; dt_low a column slice as in the model
 * (row stride R + 2N, NaN in the rest: a read past R shows). */
static void check_fold(const problem_t *p, gpu_t *G, const char *what, int64_t R, double tol, uint64_t seed)
{
    const int64_t M = p->B * p->L, E = p->E, N = p->N;
    const int bf = p->bf16;
    const char *dn = bf ? "bf16" : "f32";
    md_rng_t r;
    md_rng_seed(&r, seed);
    double *dl = rand_vec(&r, M * R, -1, 1, bf), *w = rand_vec(&r, E * R, -1, 1, bf);
    double *delta = md_malloc((size_t)(M * E) * sizeof(double));
    for (int64_t i = 0; i < M; i++)
        for (int64_t e = 0; e < E; e++) {
            double acc = 0;
            for (int64_t k = 0; k < R; k++) acc += w[e * R + k] * dl[i * R + k];
            delta[i * E + e] = acc;
        }
    const md_backend_t *cpu = md_backend_cpu();
    const md_dtype_t F = MD_DTYPE_F64;
    const md_device_kind_t H = MD_DEVICE_CPU;
    double *y_fold = md_malloc((size_t)(M * E) * 8), *y_delta = md_malloc((size_t)(M * E) * 8);
    double *y_gpu = md_malloc((size_t)(M * E) * 8);
    md_tensor_t u = md_tensor_2d(p->u, F, H, M, E), z = md_tensor_2d(p->z, F, H, M, E);
    md_tensor_t Bm = md_tensor_2d(p->Bm, F, H, M, N), Cm = md_tensor_2d(p->Cm, F, H, M, N);
    md_tensor_t A_log = md_tensor_2d(p->A_log, F, H, E, N), D = md_tensor_1d(p->D, F, H, E);
    md_tensor_t dtb = md_tensor_1d(p->dt_bias, F, H, E), tdl = md_tensor_2d(dl, F, H, M, R);
    md_tensor_t tw = md_tensor_2d(w, F, H, E, R), td = md_tensor_2d(delta, F, H, M, E);
    md_tensor_t yf = md_tensor_2d(y_fold, F, H, M, E), yd = md_tensor_2d(y_delta, F, H, M, E);
    cpu->scan_fwd(cpu, &yf, &u, NULL, &tdl, &tw, &dtb, &A_log, &Bm, &Cm, &D, &z, p->B, NULL, NULL);
    cpu->scan_fwd(cpu, &yd, &u, &td, NULL, NULL, &dtb, &A_log, &Bm, &Cm, &D, &z, p->B, NULL, NULL);

    dmat_t gdl = dmat_new(M, R, 2 * N, bf), gw = dmat_new(E, R, 0, bf);
    dmat_upload(&gdl, dl), dmat_upload(&gw, w);
    md_scan_args_t a = G->a;
    a.states = NULL, a.workspace = NULL, a.workspace_bytes = 0;
    a.delta = NULL, a.dt_low = gdl.p, a.ld_dt_low = gdl.ld, a.dt_w = gw.p, a.dt_rank = R;
    dmat_poison(&G->y);
    CU(md_scan_fwd(&a, 0));
    CU(cudaDeviceSynchronize());
    int pad_ok;
    dmat_download(&G->y, y_gpu, &pad_ok);
    const double e_fold = relerr(y_gpu, y_fold, M * E), e_delta = relerr(y_gpu, y_delta, M * E);
    const double e_cpu = relerr(y_fold, y_delta, M * E);
    printf("%-34s %-4s fold   R=%lld: y %.1e vs the CPU forming delta, %.1e vs delta given (CPU's two %.1e)\n",
           what, dn, (long long)R, e_fold, e_delta, e_cpu);
    CHECK(e_fold < tol && e_delta < tol, "%s %s: forward forming delta (R %lld), y relative error %.3g / %.3g >= %g",
          what, dn, (long long)R, e_fold, e_delta, tol);
    CHECK(e_cpu < 1e-12, "%s %s: the CPU's forward forming delta differs from it given delta: %.3g", what, dn, e_cpu);
    CHECK(pad_ok, "%s %s: the forward forming delta wrote into the padding between rows", what, dn);
    /* not for training: a forward keeping states must be given delta */
    a.states = G->states, a.workspace = G->ws, a.workspace_bytes = G->ws_bytes;
    CHECK(md_scan_fwd(&a, 0) == cudaErrorInvalidValue, "%s %s: a training forward without delta accepted", what, dn);
    dmat_free(&gdl), dmat_free(&gw);
    free(dl), free(w), free(delta), free(y_fold), free(y_delta), free(y_gpu);
}

typedef struct {
    const char *what;
    int64_t B, L, E, N, pad;
    double dlo, dhi;   /* range of delta */
    int quick;
} shape_t;

static const shape_t shapes[] = {
    {"L=1", 1, 1, 64, 16, 0, -1, 1, 1},
    {"L=1 batch 2, strided", 2, 1, 37, 16, 3, -1, 1, 1},
    {"odd L, 2 channel blocks, strided", 3, 777, 96, 16, 5, -1, 1, 1},
    {"one full chunk", 2, 128, 64, 16, 0, -1, 1, 1},
    {"a chunk and a step", 2, 129, 64, 16, 0, -1, 1, 1},
    {"softplus past 20", 2, 300, 70, 16, 0, -3, 28, 1},
    {"N=5 (padded states)", 2, 300, 48, 5, 2, -1, 1, 1},
    {"N=24", 1, 500, 40, 24, 0, -1, 1, 1},
    {"N=64, strided", 2, 333, 33, 64, 1, -1, 1, 1},
    {"batch 4, E=256", 4, 1000, 256, 16, 0, -1, 1, 0},
    /* 4 channel blocks at N % 4 != 0: dbc_reduce a sum a thread */
    {"N=6, 4 channel blocks", 2, 300, 200, 6, 0, -1, 1, 1},
    {"L=65537", 1, 65537, 64, 16, 3, -1, 1, 0},
    {"L=2^18, E=32", 1, 262144, 32, 16, 0, -1, 1, 0},
    {"L=2^20, E=16", 1, 1048576, 16, 16, 0, -1, 1, 0},
};

static void check_shape(const shape_t *s, int bf16, uint64_t seed)
{
    problem_t p;
    problem_init(&p, s->B, s->L, s->E, s->N, bf16, s->dlo, s->dhi, seed);
    const int64_t M = p.B * p.L, E = p.E, N = p.N;
    grads_t ref, got, again;
    grads_alloc(&ref, M, E, N), grads_alloc(&got, M, E, N), grads_alloc(&again, M, E, N);
    double t0 = md_realtime();
    reference(&p, &ref);
    double t_ref = md_realtime() - t0;

    gpu_t G;
    gpu_setup(&G, &p, s->pad, 0);
    const double tol = bf16 ? 1e-2 : 1e-5;
    const char *dn = bf16 ? "bf16" : "f32";
    int pad_ok;
    for (int pass = MD_SCAN_PASS_CHUNKED; pass <= MD_SCAN_PASS_WHOLE; pass++) {
        G.a.pass = (md_scan_pass_t)pass;
        const char *pn = pass == MD_SCAN_PASS_WHOLE ? "whole" : "chunked";

        /* 1: against the reference, states saved by the forward */
        poison_outputs(&G);
        reset_param_grads(&G, &p);
        run_fwd_bwd(&G, 1);
        gpu_results(&G, &p, &got, &pad_ok);
        struct {
            const char *name;
            const double *x, *r;
            int64_t n;
        } outs[] = {{"y", got.y, ref.y, M * E},         {"du", got.du, ref.du, M * E},
                    {"ddelta", got.ddelta, ref.ddelta, M * E}, {"dz", got.dz, ref.dz, M * E},
                    {"dBm", got.dB, ref.dB, M * N},       {"dCm", got.dC, ref.dC, M * N},
                    {"dA_log", got.dA, ref.dA, E * N},    {"dD", got.dD, ref.dD, E},
                    {"ddt_bias", got.db, ref.db, E}};
        printf("%-34s %-4s %-7s B=%lld L=%lld E=%lld N=%lld (cpu ref %.1fs):", s->what, dn, pn, (long long)p.B,
               (long long)p.L, (long long)E, (long long)N, t_ref);
        for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
            double err = relerr(outs[i].x, outs[i].r, outs[i].n);
            printf(" %s %.1e", outs[i].name, err);
            CHECK(err < tol, "%s %s %s %s: relative error %.3g >= %g", s->what, dn, pn, outs[i].name, err, tol);
        }
        printf("\n");
        CHECK(pad_ok, "%s %s %s: an output wrote into the padding between rows", s->what, dn, pn);

        /* 2: recomputed chunk states give the same bits; 3: a second run too */
        poison_outputs(&G);
        reset_param_grads(&G, &p);
        run_fwd_bwd(&G, 0);
        gpu_results(&G, &p, &again, &pad_ok);
        CHECK(same_bits(&G, &got, &again, &p), "%s %s %s: backward from saved states differs from recomputed", s->what,
              dn, pn);
        poison_outputs(&G);
        reset_param_grads(&G, &p);
        run_fwd_bwd(&G, 1);
        gpu_results(&G, &p, &again, &pad_ok);
        CHECK(same_bits(&G, &got, &again, &p), "%s %s %s: two identical runs differ", s->what, dn, pn);
        /* 3b: a forward given a workspace and no states leaves them at the
         * workspace's start, for a backward to take (scan_api.h; the CUDA
         * backend's scan_fwd relies on it) */
        size_t fwd_bytes = md_scan_fwd_workspace(p.B, p.L, E, N);
        if (md_scan_states_bytes(p.B, p.L, E, N)) {
            float *fwd_ws = NULL;
            CU(cudaMalloc((void **)&fwd_ws, fwd_bytes));
            poison_outputs(&G);
            reset_param_grads(&G, &p);
            G.a.states = NULL, G.a.workspace = fwd_ws, G.a.workspace_bytes = fwd_bytes;
            CU(md_scan_fwd(&G.a, 0));
            G.a.states = fwd_ws, G.a.workspace = G.ws, G.a.workspace_bytes = G.ws_bytes;
            CU(md_scan_bwd(&G.a, 0));
            CU(cudaDeviceSynchronize());
            gpu_results(&G, &p, &again, &pad_ok);
            CHECK(same_bits(&G, &got, &again, &p), "%s %s %s: backward from the states in the forward's workspace differs",
                  s->what, dn, pn);
            CU(cudaFree(fwd_ws));
        }
        /* 3c: ddelta written over delta (scan_api.h allows it; the model does
         * it) gives the same bits; delta is uploaded again afterwards */
        {
            dmat_t own = G.ddelta;
            poison_outputs(&G);
            reset_param_grads(&G, &p);
            G.ddelta = G.delta;
            G.a.ddelta = G.delta.p, G.a.ld_ddelta = G.delta.ld;
            run_fwd_bwd(&G, 1);
            gpu_results(&G, &p, &again, &pad_ok);
            CHECK(same_bits(&G, &got, &again, &p), "%s %s %s: backward with ddelta over delta differs", s->what, dn,
                  pn);
            G.ddelta = own;
            G.a.ddelta = own.p, G.a.ld_ddelta = own.ld;
            dmat_upload(&G.delta, p.delta);
        }
        /* 3d: a forward without y (the states alone) and a backward that
         * writes y itself (y_out), as the model's recompute runs them: the
         * forward's bits, y's included; apart, then over dy as the model
         * has it (dy is uploaded again afterwards) */
        for (int over = 0; over < 2; over++) {
            poison_outputs(&G);
            reset_param_grads(&G, &p);
            G.a.y = NULL;
            const dmat_t *yo = over ? &G.dy : &G.y;
            G.a.y_out = yo->p, G.a.ld_y_out = yo->ld;
            run_fwd_bwd(&G, 1);
            gpu_results(&G, &p, &again, &pad_ok);
            int dy_pad;   /* NaN there, not the poison: the case apart checks y's padding */
            if (over) dmat_download(&G.dy, again.y, &dy_pad);
            CHECK(same_bits(&G, &got, &again, &p), "%s %s %s: y from the backward (forward without y%s) differs",
                  s->what, dn, pn, over ? ", y over dy" : "");
            CHECK(pad_ok, "%s %s %s: the backward's y wrote into the padding between rows", s->what, dn, pn);
            G.a.y = G.y.p;
            G.a.y_out = NULL, G.a.ld_y_out = 0;
            if (over) dmat_upload(&G.dy, p.dy);
        }
        /* 3e: segment states (poisoned first) written by the forward and
         * read by the backward instead of its walk to them: the same bits;
         * and the backward does read them (overwritten between the two
         * with 0x3f3f3f3f = 0.75, not a state the forward can leave at
         * every segment, the results change) */
        {
            size_t sb = md_scan_seg_states_bytes(p.B, p.L, E, N);
            float *seg = NULL;
            CU(cudaMalloc((void **)&seg, sb));
            CU(cudaMemset(seg, 0xff, sb));
            poison_outputs(&G);
            reset_param_grads(&G, &p);
            G.a.seg_states = seg;
            run_fwd_bwd(&G, 1);
            gpu_results(&G, &p, &again, &pad_ok);
            CHECK(same_bits(&G, &got, &again, &p), "%s %s %s: backward from the segment states differs", s->what, dn,
                  pn);
            CHECK(pad_ok, "%s %s %s: an output wrote into the padding between rows (segment states)", s->what, dn, pn);
            poison_outputs(&G);
            reset_param_grads(&G, &p);
            G.a.states = G.states;
            CU(md_scan_fwd(&G.a, 0));
            CU(cudaMemset(seg, 0x3f, sb));
            CU(md_scan_bwd(&G.a, 0));
            CU(cudaDeviceSynchronize());
            gpu_results(&G, &p, &again, &pad_ok);
            CHECK(!same_bits(&G, &got, &again, &p), "%s %s %s: the backward ignored the segment states", s->what, dn,
                  pn);
            /* segment states off 16-byte alignment are refused, not a fault */
            G.a.seg_states = seg + 1;
            CHECK(md_scan_fwd(&G.a, 0) == cudaErrorInvalidValue && md_scan_bwd(&G.a, 0) == cudaErrorInvalidValue,
                  "%s %s %s: segment states off 16-byte alignment accepted", s->what, dn, pn);
            CU(cudaDeviceSynchronize());
            G.a.seg_states = NULL;
            CU(cudaFree(seg));
        }
        /* 3f: the workspace and the states 4 bytes past a 16-byte boundary
         * (scan_api.h asks for no more than a float's alignment): the
         * kernels that move them 16 bytes at a time take their scalar
         * paths, with the same bits */
        {
            const size_t sb = md_scan_states_bytes(p.B, p.L, E, N);
            char *ws_off = NULL, *st_off = NULL;
            CU(cudaMalloc((void **)&ws_off, G.ws_bytes + 16));
            CU(cudaMalloc((void **)&st_off, sb + 16));
            CU(cudaMemset(ws_off, 0xff, G.ws_bytes + 16));
            float *st_keep = G.states;
            if (st_keep) G.states = (float *)(st_off + 4);
            poison_outputs(&G);
            reset_param_grads(&G, &p);
            G.a.workspace = ws_off + 4;
            run_fwd_bwd(&G, 1);
            gpu_results(&G, &p, &again, &pad_ok);
            CHECK(same_bits(&G, &got, &again, &p), "%s %s %s: workspace and states off 16-byte alignment differ",
                  s->what, dn, pn);
            G.states = st_keep, G.a.workspace = G.ws;
            CU(cudaFree(ws_off));
            CU(cudaFree(st_off));
        }
    }

    /* 4: forward only (no states, no workspace): one pass per sequence */
    poison_outputs(&G);
    G.a.states = NULL, G.a.workspace = NULL, G.a.workspace_bytes = 0;
    CU(md_scan_fwd(&G.a, 0));
    CU(cudaDeviceSynchronize());
    dmat_download(&G.y, again.y, &pad_ok);
    double err1 = relerr(again.y, ref.y, M * E);
    CHECK(err1 < tol, "%s %s: one-pass forward y relative error %.3g >= %g", s->what, dn, err1, tol);
    CHECK(pad_ok, "%s %s: the one-pass forward wrote into the padding between rows", s->what, dn);
    /* 4b: the same with delta's rows unpadded (the others keep theirs;
     * gpu_setup pads delta by one more): even row strides everywhere, as in
     * the model (v5's inference kernel moved channel pairs only then) */
    dmat_t delta2 = dmat_new(M, E, 0, bf16);
    dmat_upload(&delta2, p.delta);
    poison_outputs(&G);
    G.a.delta = delta2.p, G.a.ld_delta = delta2.ld;
    CU(md_scan_fwd(&G.a, 0));
    CU(cudaDeviceSynchronize());
    dmat_download(&G.y, again.y, &pad_ok);
    err1 = relerr(again.y, ref.y, M * E);
    CHECK(err1 < tol, "%s %s: one-pass forward, delta unpadded, y relative error %.3g >= %g", s->what, dn, err1, tol);
    CHECK(pad_ok, "%s %s: the one-pass forward (delta unpadded) wrote into the padding between rows", s->what, dn);
    dmat_free(&delta2);
    check_fold(&p, &G, s->what, 1 + (int64_t)(seed % MD_SCAN_MAX_DT_RANK), tol, seed ^ 0x5eed);

    gpu_free(&G);
    grads_free(&ref), grads_free(&got), grads_free(&again);
    problem_free(&p);
}

/* ---- streaming: a sequence cut at L1, carried through h0/hT, dhT/dh0 ---- */

/* Rows [t0, t1) of every sequence of a (B*L, cols) matrix. */
static double *slice_rows(const double *x, int64_t B, int64_t L, int64_t cols, int64_t t0, int64_t t1)
{
    double *o = md_malloc((size_t)(B * (t1 - t0) * cols) * sizeof(double) + 8);
    for (int64_t b = 0; b < B; b++)
        memcpy(o + b * (t1 - t0) * cols, x + (b * L + t0) * cols, (size_t)((t1 - t0) * cols) * sizeof(double));
    return o;
}

static void sub_problem(problem_t *q, const problem_t *p, int64_t t0, int64_t t1)
{
    *q = *p;
    q->L = t1 - t0;
    q->u = slice_rows(p->u, p->B, p->L, p->E, t0, t1), q->delta = slice_rows(p->delta, p->B, p->L, p->E, t0, t1);
    q->z = slice_rows(p->z, p->B, p->L, p->E, t0, t1), q->dy = slice_rows(p->dy, p->B, p->L, p->E, t0, t1);
    q->Bm = slice_rows(p->Bm, p->B, p->L, p->N, t0, t1), q->Cm = slice_rows(p->Cm, p->B, p->L, p->N, t0, t1);
}

static void check_streaming(int64_t B, int64_t L, int64_t L1, int64_t E, md_scan_pass_t pass, uint64_t seed)
{
    problem_t p, p1, p2;
    problem_init(&p, B, L, E, 16, 0, -1, 1, seed);
    const int64_t N = p.N, S = B * E * N;
    md_rng_t r;
    md_rng_seed(&r, seed ^ 0x5eed);
    double *h0 = rand_vec(&r, S, -1, 1, 0), *dhT = rand_vec(&r, S, -1, 1, 0);
    for (int64_t i = 0; i < E * N; i++) p.dA0[i] = 0;
    for (int64_t i = 0; i < E; i++) p.dD0[i] = p.db0[i] = 0;
    sub_problem(&p1, &p, 0, L1);
    sub_problem(&p2, &p, L1, L);

    /* whole */
    gpu_t W, A, Bq;
    gpu_setup(&W, &p, 0, 1);
    W.a.pass = pass;
    reset_param_grads(&W, &p);
    poison_outputs(&W);
    dvec_upload(W.h0, h0, S), dvec_upload(W.dhT, dhT, S);
    W.a.h0 = W.h0, W.a.hT = W.hT, W.a.dhT = W.dhT, W.a.dh0 = W.dh0;
    run_fwd_bwd(&W, 1);

    /* second part first for the backward: its h0 is the first part's hT */
    gpu_setup(&A, &p1, 0, 1);
    gpu_setup(&Bq, &p2, 0, 1);
    A.a.pass = Bq.a.pass = pass;
    reset_param_grads(&A, &p), reset_param_grads(&Bq, &p);
    poison_outputs(&A), poison_outputs(&Bq);
    dvec_upload(A.h0, h0, S);
    A.a.h0 = A.h0, A.a.hT = A.hT;
    A.a.states = A.states;
    CU(md_scan_fwd(&A.a, 0));
    /* the second part through segment states (the first through chunk
     * states): they start from h0 too */
    size_t seg_bytes = md_scan_seg_states_bytes(B, L - L1, E, N);
    float *seg = NULL;
    CU(cudaMalloc((void **)&seg, seg_bytes));
    CU(cudaMemset(seg, 0xff, seg_bytes));
    Bq.a.h0 = A.hT, Bq.a.hT = Bq.hT, Bq.a.states = Bq.states, Bq.a.seg_states = seg;
    CU(md_scan_fwd(&Bq.a, 0));
    dvec_upload(Bq.dhT, dhT, S);
    Bq.a.dhT = Bq.dhT, Bq.a.dh0 = Bq.dh0;
    CU(md_scan_bwd(&Bq.a, 0));
    A.a.dhT = Bq.dh0, A.a.dh0 = A.dh0;
    CU(md_scan_bwd(&A.a, 0));
    CU(cudaDeviceSynchronize());
    CU(cudaFree(seg));

    grads_t gw, g1, g2;
    const int64_t M = B * L, M1 = B * L1, M2 = B * (L - L1);
    grads_alloc(&gw, M, E, N), grads_alloc(&g1, M1, E, N), grads_alloc(&g2, M2, E, N);
    int pad_ok;
    gpu_results(&W, &p, &gw, &pad_ok);
    gpu_results(&A, &p1, &g1, &pad_ok);
    gpu_results(&Bq, &p2, &g2, &pad_ok);
    double *hTw = md_malloc((size_t)S * 8), *hT2 = md_malloc((size_t)S * 8), *dh0w = md_malloc((size_t)S * 8),
           *dh01 = md_malloc((size_t)S * 8);
    dvec_download(W.hT, hTw, S), dvec_download(Bq.hT, hT2, S), dvec_download(W.dh0, dh0w, S),
        dvec_download(A.dh0, dh01, S);

    /* the parts laid back together */
    double *cat = md_malloc((size_t)(M * E) * 8);
    const double *w_[] = {gw.y, gw.du, gw.ddelta, gw.dz, gw.dB, gw.dC};
    const double *a_[] = {g1.y, g1.du, g1.ddelta, g1.dz, g1.dB, g1.dC};
    const double *b_[] = {g2.y, g2.du, g2.ddelta, g2.dz, g2.dB, g2.dC};
    const char *nm[] = {"y", "du", "ddelta", "dz", "dBm", "dCm"};
    printf("streaming %s B=%lld L=%lld cut at %lld E=%lld:", pass == MD_SCAN_PASS_WHOLE ? "whole" : "chunked",
           (long long)B, (long long)L, (long long)L1, (long long)E);
    for (int k = 0; k < 6; k++) {
        const int64_t cols = k < 4 ? E : N;
        for (int64_t b = 0; b < B; b++) {
            memcpy(cat + b * L * cols, a_[k] + b * L1 * cols, (size_t)(L1 * cols) * 8);
            memcpy(cat + (b * L + L1) * cols, b_[k] + b * (L - L1) * cols, (size_t)((L - L1) * cols) * 8);
        }
        double err = relerr(cat, w_[k], M * cols);
        printf(" %s %.1e", nm[k], err);
        CHECK(err < 1e-5, "streaming %s: split differs from whole by %.3g", nm[k], err);
    }
    /* each part added its share into the parameter gradients */
    for (int64_t i = 0; i < E * N; i++) g1.dA[i] += g2.dA[i];
    for (int64_t i = 0; i < E; i++) g1.dD[i] += g2.dD[i], g1.db[i] += g2.db[i];
    double errs[5] = {relerr(hT2, hTw, S), relerr(dh01, dh0w, S), relerr(g1.dA, gw.dA, E * N), relerr(g1.dD, gw.dD, E),
                      relerr(g1.db, gw.db, E)};
    const char *nm2[] = {"hT", "dh0", "dA_log", "dD", "ddt_bias"};
    for (int k = 0; k < 5; k++) {
        printf(" %s %.1e", nm2[k], errs[k]);
        CHECK(errs[k] < 1e-5, "streaming %s: split differs from whole by %.3g", nm2[k], errs[k]);
    }
    /* the forward for inference (neither states nor workspace) carries h0 and hT too */
    double *y0 = md_malloc((size_t)(M * E) * 8);
    W.a.states = NULL, W.a.workspace = NULL, W.a.workspace_bytes = 0;
    poison_outputs(&W);
    CU(cudaMemset(W.hT, 0xff, (size_t)S * sizeof(float)));
    CU(md_scan_fwd(&W.a, 0));
    CU(cudaDeviceSynchronize());
    dmat_download(&W.y, y0, NULL);
    dvec_download(W.hT, hT2, S);
    errs[0] = relerr(y0, gw.y, M * E), errs[1] = relerr(hT2, hTw, S);
    printf(" forward-only y %.1e hT %.1e\n", errs[0], errs[1]);
    CHECK(errs[0] < 1e-5 && errs[1] < 1e-5, "streaming: the forward for inference differs (y %.3g, hT %.3g)", errs[0],
          errs[1]);
    /* h0 and dhT matter: without them the whole run differs */
    W.a.h0 = NULL, W.a.hT = NULL;
    poison_outputs(&W);
    CU(md_scan_fwd(&W.a, 0));
    CU(cudaDeviceSynchronize());
    dmat_download(&W.y, y0, NULL);
    CHECK(relerr(y0, gw.y, M * E) > 1e-4, "streaming: h0 made no difference to y");

    free(y0), free(cat), free(hTw), free(hT2), free(dh0w), free(dh01), free(h0), free(dhT);
    grads_free(&gw), grads_free(&g1), grads_free(&g2);
    gpu_free(&W), gpu_free(&A), gpu_free(&Bq);
    free(p1.u), free(p1.delta), free(p1.z), free(p1.dy), free(p1.Bm), free(p1.Cm);
    free(p2.u), free(p2.delta), free(p2.z), free(p2.dy), free(p2.Bm), free(p2.Cm);
    problem_free(&p);
}

/* Bad arguments are refused, not run. */
static void check_refusals(void)
{
    md_scan_args_t a;
    memset(&a, 0, sizeof a);
    CHECK(md_scan_fwd(&a, 0) == cudaErrorInvalidValue, "all-zero arguments accepted");
    a.batch = 1, a.len = 1000, a.d_inner = 8, a.d_state = 65;
    CHECK(md_scan_fwd(&a, 0) == cudaErrorInvalidValue, "d_state 65 accepted");
    CHECK(md_scan_bwd_workspace(1, 1000, 8, 65) == 0, "workspace for d_state 65");
    /* the inference forward's row strides must fit in an int (refused
     * before any launch, so the pointers are never read) */
    static float dummy[4];
    a.d_state = 16;
    a.u = a.delta = a.z = a.Bm = a.Cm = a.y = dummy;
    a.A_log = a.D = a.dt_bias = dummy;
    a.ld_u = a.ld_delta = a.ld_y = 8, a.ld_z = (int64_t)INT_MAX + 1, a.ld_B = a.ld_C = 16;
    CHECK(md_scan_fwd(&a, 0) == cudaErrorInvalidValue, "inference forward: a row stride above INT_MAX accepted");
    /* delta NULL: dt_proj's input and weight needed, dt_rank within bounds */
    a.ld_z = 16, a.delta = NULL, a.ld_dt_low = 40;
    CHECK(md_scan_fwd(&a, 0) == cudaErrorInvalidValue, "delta NULL without dt_low accepted");
    a.dt_low = a.dt_w = dummy;
    a.dt_rank = MD_SCAN_MAX_DT_RANK + 1;
    CHECK(md_scan_fwd(&a, 0) == cudaErrorInvalidValue, "dt_rank %d accepted", MD_SCAN_MAX_DT_RANK + 1);
    a.dt_rank = 0;
    CHECK(md_scan_fwd(&a, 0) == cudaErrorInvalidValue, "dt_rank 0 accepted");
    /* segment states belong to a training forward (states or workspace) */
    a.delta = dummy, a.ld_z = 8, a.seg_states = dummy;
    CHECK(md_scan_fwd(&a, 0) == cudaErrorInvalidValue, "segment states accepted by the inference forward");
    a.seg_states = NULL;
    CHECK(md_scan_seg_states_bytes(2, 1000, 8, 16) == 2 * 125 * 8 * 16 * sizeof(float) &&
              md_scan_seg_states_bytes(1, 1001, 8, 64) == 63 * 8 * 64 * sizeof(float),
          "segment states' size");
    CHECK(md_scan_bwd_workspace(1, 1000, 8, 16) >= md_scan_bwd_workspace(1, 999, 8, 16) &&
              md_scan_bwd_workspace(2, 1000, 8, 16) >= md_scan_bwd_workspace(1, 1000, 8, 16),
          "workspace not monotone");
    cudaGetLastError();
}

int main(void)
{
    md_test_need_gpu();
    md_cpu_set_threads(0);
    const char *q = getenv("MD_GPU_SCAN_QUICK");
    const int quick = q && *q && strcmp(q, "0");
    check_refusals();
    uint64_t seed = 20240611;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (quick && !shapes[i].quick) continue;
        for (int bf = 0; bf < 2; bf++) check_shape(&shapes[i], bf, seed++);
        fflush(stdout);
    }
    for (int pass = MD_SCAN_PASS_CHUNKED; pass <= MD_SCAN_PASS_WHOLE; pass++) {
        check_streaming(2, 777, 300, 96, (md_scan_pass_t)pass, seed++);
        check_streaming(2, 200, 1, 40, (md_scan_pass_t)pass, seed++);
        if (!quick) check_streaming(1, 5000, 2345, 64, (md_scan_pass_t)pass, seed++);
    }
    return md_test_done();
}

#endif
