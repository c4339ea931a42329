/* The fused Linear ops of the CUDA backend through cuBLASLt epilogues:
 * the bias (CUBLASLT_EPILOGUE_BIAS; no bias: DEFAULT), the bias and GELU
 * with its input kept for the backward (GELU_AUX_BIAS, or GELU_AUX without
 * a bias), so that neither is a pass of its own; a
 * residual comes in as the product's C operand (beta = 1) instead of a
 * copy. cuBLASLt's GELU is the tanh form, as gelu_fwd.
 *
 * Row-major y = x w^T is column-major y^T = w^T x^T: A = w (stored K x N,
 * transposed), B = x (stored K x M), D = y (N x M), so the bias runs along
 * D's rows as cuBLASLt's epilogues want it. The arithmetic is the table's:
 * CUBLAS_COMPUTE_32F (no TF32) for fp32, CUBLAS_COMPUTE_32F_FAST_16BF for
 * bf16, fp32 in and out as the gemm op; bf16 operands (the bf16 table's
 * stored activations and weight copies) are read as they are, with
 * CUBLAS_COMPUTE_32F, and y may then be bf16 too, its bias (cuBLASLt wants
 * the bias in D's type) and GELU's aux with it. The bias gradient stays with
 * bias_bwd: cuBLASLt's BGRAD epilogues overwrite rather than add and give
 * no promise about their summation order. The backward's input gradient
 * is the table's gemm then gelu_bwd, not the DGELU epilogue: on the H200
 * (M = 2^17, d = 256, F = 1024) DGELU took 2.49 ms fp32 / 1.29 ms bf16
 * against 1.95 / 0.76 composed.
 *
 * When cuBLASLt offers no algorithm for a call (an aux leading dimension
 * not divisible by 8, pointers it cannot align to), the op composes the
 * table's own gemm, bias_add and GELU ops instead (MD_CUDA_OP_TIMES shows
 * them under their own names, the fused calls as "linear lt"). Descriptors are
 * made per call (host work of some microseconds, overlapping the device's).
 * cuBLASLt's work area is the backend's scratch, which no other op uses
 * while it runs (one stream).
 *
 * linear_add_rmsnorm_fwd (the Mamba inference forward's out_proj with the
 * residual add and the next RMSNorm) is kernels/linear_add_rmsnorm.cu's
 * tensor-core kernel where it takes the call, else the CPU's composition
 * of the table's gemm and add_rmsnorm_fwd (cpu_linear.h).
 *
 * lowrank_bwd (dt_proj's backward) is kernels/lowrank_bwd.cu's one
 * tensor-core pass over dy where it takes the call (bf16, the Mamba
 * presets' widths), else the CPU's two gemm calls; x_dt_proj_fwd (x_proj
 * then dt_proj, forward) likewise kernels/x_dt_proj.cu's pass over u. */
#include <cublasLt.h>
#include <stdint.h>

#include "backend/cpu/cpu_linear.h"
#include "backend_kernels.h"
#include "cuda_internal.h"
#include "cuda_linear.h"

enum { MAX_LT_GPUS = 64 };
static cublasLtHandle_t lt_handles[MAX_LT_GPUS];

static cublasLtHandle_t lt_handle(const md_backend_t *be, const char *op)
{
    int g = CTX(be)->ordinal;
    OP_REQUIRE(g >= 0 && g < MAX_LT_GPUS, op);
    cublasStatus_t st;
    if (!lt_handles[g] && (st = cublasLtCreate(&lt_handles[g])) != CUBLAS_STATUS_SUCCESS)
        md_cuda_fail_cublas(op, st, "cublasLtCreate");
    return lt_handles[g];
}

/* Reports a failed cuBLASLt call (cuda_check.h). */
static void lt_check(cublasStatus_t st, const char *op, const char *what)
{
    if (st != CUBLAS_STATUS_SUCCESS) md_cuda_fail_cublas(op, st, "cuBLASLt's %s", what);
}

/* The largest power of two (up to 256) dividing a pointer's address. */
static uint32_t align_of(const void *p)
{
    uint32_t a = 256;
    while (a > 1 && ((uintptr_t)p & (a - 1))) a >>= 1;
    return a;
}

/* D (m x n) = epilogue(op(A) B + beta C), column-major; A and B of
 * ab_type, C, D, the bias and the aux of cd_type. */
typedef struct {
    cublasOperation_t op_a;
    const void *a, *b, *c;
    void *d;
    int64_t m, n, k, lda, ldb, ldc, ldd;
    float beta;
    cublasLtEpilogue_t epilogue;
    const void *bias;
    void *aux;   /* GELU's input, written by GELU_AUX_BIAS for the backward */
    int64_t ld_aux;
    cudaDataType_t ab_type, cd_type;
} lt_call_t;

/* Runs the call; returns 0, or -1 when cuBLASLt has no algorithm for it. */
static int lt_matmul(const md_backend_t *be, const lt_call_t *p, int bf16, const char *op)
{
    if (p->aux && p->ld_aux % 8) return -1;   /* cuBLASLt's rule for GELU's aux */
    cublasLtHandle_t h = lt_handle(be, op);
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc, ld;
    cublasLtMatmulPreference_t pref;
    /* bf16 storage is read as it is; fp32 operands round inside cuBLAS on the bf16 table */
    cublasComputeType_t ct = bf16 && p->ab_type == CUDA_R_32F ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
    cublasOperation_t op_b = CUBLAS_OP_N;
    lt_check(cublasLtMatmulDescCreate(&desc, ct, CUDA_R_32F), op, "descriptor");
    lt_check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &p->op_a, sizeof p->op_a), op, "transa");
    lt_check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b), op, "transb");
    lt_check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &p->epilogue, sizeof p->epilogue), op,
             "epilogue");
    if (p->bias)
        lt_check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p->bias, sizeof p->bias), op,
                 "bias");
    if (p->aux) {
        lt_check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &p->aux, sizeof p->aux),
                 op, "aux");
        lt_check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &p->ld_aux, sizeof p->ld_aux),
                 op, "aux ld");
    }
    int ta = p->op_a == CUBLAS_OP_T;
    lt_check(cublasLtMatrixLayoutCreate(&la, p->ab_type, ta ? p->k : p->m, ta ? p->m : p->k, p->lda), op, "layout");
    lt_check(cublasLtMatrixLayoutCreate(&lb, p->ab_type, p->k, p->n, p->ldb), op, "layout");
    lt_check(cublasLtMatrixLayoutCreate(&lc, p->cd_type, p->m, p->n, p->ldc), op, "layout");
    lt_check(cublasLtMatrixLayoutCreate(&ld, p->cd_type, p->m, p->n, p->ldd), op, "layout");
    lt_check(cublasLtMatmulPreferenceCreate(&pref), op, "preference");
    uint64_t ws = SCRATCH_BYTES;
    uint32_t al[4] = {align_of(p->a), align_of(p->b), align_of(p->c), align_of(p->d)};
    const cublasLtMatmulPreferenceAttributes_t al_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws), op,
             "workspace");
    for (int i = 0; i < 4; i++)
        lt_check(cublasLtMatmulPreferenceSetAttribute(pref, al_attr[i], &al[i], sizeof al[i]), op, "alignment");
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(h, desc, la, lb, lc, ld, pref, 1, &res, &found);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0) {
        const float one = 1.0f;
        int timed = md_op_timer_on();
        if (timed) md_op_timer_mark("linear lt", 0);
        st = cublasLtMatmul(h, desc, &one, p->a, la, p->b, lb, &p->beta, p->c, lc, p->d, ld, &res.algo,
                            CTX(be)->scratch, SCRATCH_BYTES, STREAM(be));
        if (timed) md_op_timer_mark("linear lt", 1);
        if ((st = md_cuda_fault_cublas(st)) != CUBLAS_STATUS_SUCCESS)   /* D is N x M column-major */
            md_cuda_fail_cublas(op, st, "cublasLtMatmul for a %lld x %lld x %lld product", (long long)p->n,
                                (long long)p->m, (long long)p->k);
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(ld), cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(la);
    cublasLtMatmulDescDestroy(desc);
    return st == CUBLAS_STATUS_SUCCESS && found > 0 ? 0 : -1;
}

/* an f32 or bf16 matrix of this shape; returns 1 for bf16 */
static int check_mat(const md_tensor_t *t, int64_t rows, int64_t cols, const char *op)
{
    OP_REQUIRE(NROWS(t) == rows && NCOLS(t) == cols, op);
    return fb_dev(t, op);
}

static void linear_fwd(const md_backend_t *be, md_tensor_t *y, md_tensor_t *pre_act, const md_tensor_t *x,
                       const md_tensor_t *w, const md_tensor_t *bias, const md_tensor_t *residual, md_act_t act,
                       int bf16)
{
    const char *op = "linear_fwd";
    int64_t M = NROWS(x), K = NCOLS(x), N = NROWS(w);
    int x16 = check_mat(x, M, K, op), y16 = check_mat(y, M, N, op);
    OP_REQUIRE(check_mat(w, N, K, op) == x16 && (x16 || !y16), op);
    if (bias) OP_REQUIRE(check_mat(bias, 1, N, op) == y16, op);
    OP_REQUIRE(act == MD_ACT_NONE ? !pre_act : act == MD_ACT_GELU_TANH && pre_act && !residual, op);
    if (pre_act) OP_REQUIRE(check_mat(pre_act, M, N, op) == y16, op);
    if (residual) OP_REQUIRE(check_mat(residual, M, N, op) == y16, op);
    OP_REQUIRE(M < INT32_MAX && N < INT32_MAX && K < INT32_MAX, op);
    if (M == 0 || N == 0) return;
    const md_tensor_t *c = residual ? residual : y;
    lt_call_t p = {CUBLAS_OP_T, w->data, x->data, c->data, y->data, N, M, K, w->ld, x->ld, c->ld, y->ld,
                   residual ? 1.0f : 0.0f,
                   act == MD_ACT_GELU_TANH ? (bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX)
                                           : (bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT),
                   bias ? bias->data : NULL,
                   pre_act ? pre_act->data : NULL, pre_act ? pre_act->ld : 0, x16 ? CUDA_R_16BF : CUDA_R_32F,
                   y16 ? CUDA_R_16BF : CUDA_R_32F};
    if (K > 0 && lt_matmul(be, &p, bf16, op) == 0) return;
    md_tensor_t *z = pre_act ? pre_act : y;
    if (residual && residual->data != y->data) {
        size_t es = md_dtype_size(y->dtype);
        CK(cudaMemcpy2DAsync(y->data, (size_t)y->ld * es, residual->data, (size_t)residual->ld * es, (size_t)N * es,
                             (size_t)M, cudaMemcpyDeviceToDevice, STREAM(be)),
           op);
    }
    be->gemm(be, 0, 1, 1.0, x, w, residual ? 1.0 : 0.0, z);
    if (bias) be->bias_add(be, z, bias);
    if (pre_act) be->gelu_fwd(be, y, pre_act);
}

/* the table's own gemm (fp32 or bf16) and gelu_bwd, for either table */
static void cu_linear_bwd_dx(const md_backend_t *be, md_tensor_t *dx, const md_tensor_t *dy, const md_tensor_t *w,
                             const md_tensor_t *pre_act, md_act_t act)
{
    const char *op = "linear_bwd_dx";
    int64_t M = NROWS(dy), N = NCOLS(dy), K = NCOLS(w);
    check_mat(dy, M, N, op), check_mat(w, N, K, op);
    int dx16 = check_mat(dx, M, K, op);
    OP_REQUIRE(act == MD_ACT_NONE ? !pre_act : act == MD_ACT_GELU_TANH && pre_act, op);
    if (pre_act) OP_REQUIRE(check_mat(pre_act, M, K, op) == dx16, op);
    OP_REQUIRE(M < INT32_MAX && N < INT32_MAX && K < INT32_MAX, op);
    if (M == 0 || K == 0) return;
    be->gemm(be, 0, 0, 1.0, dy, w, 0.0, dx);
    if (act == MD_ACT_GELU_TANH) be->gelu_bwd(be, dx, dx, pre_act);
}

static void cu_linear_fwd(const md_backend_t *be, md_tensor_t *y, md_tensor_t *pre_act, const md_tensor_t *x,
                          const md_tensor_t *w, const md_tensor_t *bias, const md_tensor_t *residual, md_act_t act)
{
    linear_fwd(be, y, pre_act, x, w, bias, residual, act, 0);
}

static void cu_linear_fwd_bf16(const md_backend_t *be, md_tensor_t *y, md_tensor_t *pre_act, const md_tensor_t *x,
                               const md_tensor_t *w, const md_tensor_t *bias, const md_tensor_t *residual, md_act_t act)
{
    linear_fwd(be, y, pre_act, x, w, bias, residual, act, 1);
}

static void cu_linear_add_rmsnorm_fwd(const md_backend_t *be, md_tensor_t *h_out, md_tensor_t *y, md_tensor_t *rstd,
                                      const md_tensor_t *x, const md_tensor_t *w, const md_tensor_t *h_in,
                                      const md_tensor_t *nw, double eps)
{
    const char *op = "linear_add_rmsnorm_fwd";
    int64_t M = NROWS(x), K = NCOLS(x), D = NROWS(w);
    int x16 = check_mat(x, M, K, op), y16 = check_mat(y, M, D, op);
    OP_REQUIRE(check_mat(w, D, K, op) == x16, op);
    const md_tensor_t *f32s[] = {h_out, h_in, rstd, nw};
    for (int i = 0; i < 4; i++) f32_dev(f32s[i], op);
    OP_REQUIRE(NROWS(h_out) == M && NCOLS(h_out) == D && NROWS(h_in) == M && NCOLS(h_in) == D, op);
    OP_REQUIRE(md_tensor_numel(nw) == D && md_tensor_numel(rstd) == M, op);
    if (x16 && mdk_linear_add_rmsnorm_ok(CF(h_out), h_out->ld, y->data, y->ld, y16, x->data, x->ld, w->data, w->ld,
                                         CF(h_in), h_in->ld, D, K)) {
        CK(mdk_linear_add_rmsnorm_fwd(F(h_out), h_out->ld, y->data, y->ld, y16, F(rstd), x->data, x->ld, w->data,
                                      w->ld, CF(h_in), h_in->ld, CF(nw), M, D, K, eps, STREAM(be)),
           op);
        return;
    }
    md_cpu_linear_add_rmsnorm_fwd(be, h_out, y, rstd, x, w, h_in, nw, eps);
}

static void cu_lowrank_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, const md_tensor_t *dy,
                           const md_tensor_t *x, const md_tensor_t *w)
{
    const char *op = "lowrank_bwd";
    int64_t M = NROWS(dy), E = NCOLS(dy), R = NCOLS(x);
    int dy16 = check_mat(dy, M, E, op);
    int all16 = dy16 && check_mat(x, M, R, op) && check_mat(w, E, R, op) && check_mat(dx, M, R, op);
    f32_dev(dw, op);
    OP_REQUIRE(NROWS(dw) == E && NCOLS(dw) == R, op);
    OP_REQUIRE(dx->data != dy->data && dx->data != x->data && dx->data != w->data, op);
    if (all16 && dw->ld == R &&
        mdk_lowrank_bwd_ok(dx->data, dx->ld, dy->data, dy->ld, x->data, x->ld, w->data, w->ld, M, E, R,
                           SCRATCH_FLOATS)) {
        CK(mdk_lowrank_bwd(dx->data, dx->ld, F(dw), dy->data, dy->ld, x->data, x->ld, w->data, M, E, R,
                           CTX(be)->scratch, SCRATCH_FLOATS, STREAM(be)),
           op);
        return;
    }
    md_cpu_lowrank_bwd(be, dx, dw, dy, x, w);
}

static void cu_x_dt_proj_fwd(const md_backend_t *be, md_tensor_t *xdbl, md_tensor_t *delta, const md_tensor_t *u,
                             const md_tensor_t *w_x, const md_tensor_t *w_dt)
{
    const char *op = "x_dt_proj_fwd";
    int64_t M = NROWS(u), E = NCOLS(u), J = NROWS(w_x), R = NCOLS(w_dt);
    int u16 = check_mat(u, M, E, op);
    int all16 = u16 && check_mat(w_x, J, E, op) && check_mat(w_dt, E, R, op) && check_mat(xdbl, M, J, op) &&
                check_mat(delta, M, E, op);
    OP_REQUIRE(R <= J && xdbl->data != u->data && delta->data != u->data && delta->data != xdbl->data, op);
    if (all16 && mdk_x_dt_proj_ok(xdbl->data, xdbl->ld, delta->data, delta->ld, u->data, u->ld, w_x->data, w_x->ld,
                                  w_dt->data, w_dt->ld, M, E, R, J)) {
        CK(mdk_x_dt_proj(xdbl->data, xdbl->ld, delta->data, delta->ld, u->data, u->ld, w_x->data, w_dt->data, M, E, R,
                         J, STREAM(be)),
           op);
        return;
    }
    md_cpu_x_dt_proj_fwd(be, xdbl, delta, u, w_x, w_dt);
}

void md_cuda_linear_install(md_backend_t *be, int bf16)
{
    be->x_dt_proj_fwd = cu_x_dt_proj_fwd;
    be->lowrank_bwd = cu_lowrank_bwd;
    be->linear_fwd = bf16 ? cu_linear_fwd_bf16 : cu_linear_fwd;
    be->linear_bwd_dx = cu_linear_bwd_dx;
    be->linear_add_rmsnorm_fwd = cu_linear_add_rmsnorm_fwd;
}
