/* md_backend_cuda(): the CUDA backend. Unwraps tensors, checks them, and
 * queues the kernels of kernels/ (backend_kernels.h, scan_api.h) and cuBLAS
 * on one stream of the backend's (cuda_internal.h), so every op runs in
 * program order and a D2H copy (which the host waits for) sees everything
 * before it.
 *
 * Tensors are fp32, except the bf16 storage that the ops ops.h names take
 * (gemm, the RMSNorms' y and dy, conv1d, the scan's sequence tensors,
 * RoPE, attention and SwiGLU, convert): the bf16 table's act_dtype. The
 * fp32 table's GEMMs run
 * cublasSgemm in cuBLAS's default math mode, which uses no TF32 (unless
 * NVIDIA_TF32_OVERRIDE=1 is set in the environment), so fp32 training
 * matches the CPU up to summation order. The
 * bf16 table (md_backend_cuda_ex, MD_PRECISION_BF16) differs in its
 * act_dtype (bf16: the blocks' activations and weight copies), in its
 * gemm on f32 operands (cublasGemmEx with CUBLAS_COMPUTE_32F_FAST_16BF;
 * bf16 operands take the same path in both tables) and in its attention
 * (kernels/attention_mma.cu's tensor-core kernels for head dims 32, 64 and
 * 128; the fp32 kernels otherwise).
 *
 * The Hyena ops are cuda_hyena.c's, the Transformer++ ops (RoPE,
 * attention, SwiGLU) cuda_transformer.c's; each installs its section of
 * the table.
 *
 * Every call is checked (CK, cuda_internal.h); a failure is one md_error
 * line naming the op and a size, then exit 1 when the user's settings or
 * the machine caused it, abort when it is a bug (cuda_check.h). */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ops.h"
#include "backend_kernels.h"
#include "cuda_internal.h"
#include "op_timer.h"
#include "scan_api.h"
#include "util/xalloc.h"

/* ---- memory ---- */

/* Each block carries its size in a 256-byte header so that free can keep
 * the in-use count (for the peak reported by bench train). */
enum { HDR = 256 };

static void *cu_alloc(const md_backend_t *be, size_t bytes)
{
    cuda_ctx_t *c = CTX(be);
    void *p = NULL;
    size_t n = (bytes + 255) & ~(size_t)255;
    md_cuda_note_bytes("alloc", n);
    if (md_cuda_fault_alloc() || cudaMalloc(&p, n + HDR) != cudaSuccess) {
        cudaGetLastError();   /* out of memory is reported by the caller */
        return NULL;
    }
    CK(cudaMemcpy(p, &n, sizeof n, cudaMemcpyHostToDevice), "alloc");
    c->in_use += n;
    if (c->in_use > c->peak) c->peak = c->in_use;
    return (char *)p + HDR;
}

static void cu_free(const md_backend_t *be, void *p)
{
    if (!p) return;
    cuda_ctx_t *c = CTX(be);
    size_t n = 0;
    char *base = (char *)p - HDR;
    CK(cudaMemcpy(&n, base, sizeof n, cudaMemcpyDeviceToHost), "free");
    md_cuda_note_bytes("free", n);
    c->in_use -= n;
    CK(cudaFree(base), "free");
}

static void cu_memset0(const md_backend_t *be, void *p, size_t bytes)
{
    if (!bytes) return;
    md_cuda_note_bytes("memset0", bytes);
    CK(cudaMemsetAsync(p, 0, bytes, STREAM(be)), "memset0");
}

static void cu_copy(const md_backend_t *be, void *dst, const void *src, size_t bytes, md_copy_kind_t kind)
{
    if (!bytes || dst == src) return;
    md_cuda_note_bytes("copy", bytes);
    enum cudaMemcpyKind k = kind == MD_COPY_H2D ? cudaMemcpyHostToDevice
                          : kind == MD_COPY_D2H ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
    /* synchronous for host memory: the caller may reuse or read it at once */
    if (kind == MD_COPY_D2D) CK(cudaMemcpyAsync(dst, src, bytes, k, STREAM(be)), "copy");
    else CK(cudaMemcpy(dst, src, bytes, k), "copy");
}

static void cu_sync(const md_backend_t *be) { CK(cudaDeviceSynchronize(), "sync"); }

static void cu_convert(const md_backend_t *be, md_tensor_t *dst, const md_tensor_t *src)
{
    int d16 = fb_dev(dst, "convert"), s16 = fb_dev(src, "convert");
    OP_REQUIRE(NROWS(dst) == NROWS(src) && NCOLS(dst) == NCOLS(src), "convert");
    CK(mdk_convert(dst->data, d16, dst->ld, src->data, s16, src->ld, NROWS(src), NCOLS(src), STREAM(be)), "convert");
}

/* ---- dense ---- */

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: the same
 * buffers with the operands swapped. fast16 (the bf16 table): fp32 in and
 * out, operands rounded to bf16 inside cuBLAS, fp32 accumulation on the
 * tensor cores. bf16 A and B (either table): read as they are, fp32
 * accumulation, C f32 or bf16. */
static void gemm_impl(const md_backend_t *be, int ta, int tb, double alpha, const md_tensor_t *a,
                      const md_tensor_t *b, double beta, md_tensor_t *c, int fast16)
{
    int a16 = fb_dev(a, "gemm"), c16 = fb_dev(c, "gemm");
    OP_REQUIRE(fb_dev(b, "gemm") == a16 && (a16 || !c16), "gemm");
    int64_t m = NROWS(c), n = NCOLS(c);
    int64_t k = ta ? NROWS(a) : NCOLS(a);
    OP_REQUIRE((ta ? NCOLS(a) : NROWS(a)) == m, "gemm");
    OP_REQUIRE((tb ? NCOLS(b) : NROWS(b)) == k, "gemm");
    OP_REQUIRE(m < INT32_MAX && n < INT32_MAX && k < INT32_MAX, "gemm");
    if (m == 0 || n == 0) return;
    float al = (float)alpha, bt = (float)beta;
    size_t ces = md_dtype_size(c->dtype);
    if (k == 0) {   /* C = beta C; beta = 0 ignores C's contents */
        if (beta == 0) {
            CK(cudaMemset2DAsync(c->data, (size_t)c->ld * ces, 0, (size_t)n * ces, (size_t)m, STREAM(be)), "gemm");
        } else if (beta != 1) {
            OP_REQUIRE(c->ld == n && !c16, "gemm");
            CK(mdk_scale(F(c), m * n, beta, STREAM(be)), "gemm");
        }
        return;
    }
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasStatus_t st;
    const char *name = a16 ? "gemm bf16 storage" : fast16 ? "gemm bf16" : "gemm";
    int timed = md_op_timer_on();
    if (timed && md_op_timer_shapes()) name = md_op_timer_shape_name(name, m, n, k, ta, tb);
    if (timed) md_op_timer_mark(name, 0);
    if (a16)
        st = cublasGemmEx(CTX(be)->blas, opb, opa, (int)n, (int)m, (int)k, &al, b->data, CUDA_R_16BF, (int)b->ld,
                          a->data, CUDA_R_16BF, (int)a->ld, &bt, c->data, c16 ? CUDA_R_16BF : CUDA_R_32F, (int)c->ld,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    else if (fast16)
        st = cublasGemmEx(CTX(be)->blas, opb, opa, (int)n, (int)m, (int)k, &al, CF(b), CUDA_R_32F, (int)b->ld, CF(a),
                          CUDA_R_32F, (int)a->ld, &bt, F(c), CUDA_R_32F, (int)c->ld, CUBLAS_COMPUTE_32F_FAST_16BF,
                          CUBLAS_GEMM_DEFAULT);
    else
        st = cublasSgemm(CTX(be)->blas, opb, opa, (int)n, (int)m, (int)k, &al, CF(b), (int)b->ld, CF(a), (int)a->ld,
                         &bt, F(c), (int)c->ld);
    if (timed) md_op_timer_mark(name, 1);
    if ((st = md_cuda_fault_cublas(st)) != CUBLAS_STATUS_SUCCESS)
        md_cuda_fail_cublas("gemm", st, "%s for a %lld x %lld x %lld product",
                            a16 || fast16 ? "cublasGemmEx" : "cublasSgemm", (long long)m, (long long)n, (long long)k);
}

static void cu_gemm(const md_backend_t *be, int ta, int tb, double alpha, const md_tensor_t *a, const md_tensor_t *b,
                    double beta, md_tensor_t *c)
{
    gemm_impl(be, ta, tb, alpha, a, b, beta, c, 0);
}

static void cu_gemm_bf16(const md_backend_t *be, int ta, int tb, double alpha, const md_tensor_t *a,
                         const md_tensor_t *b, double beta, md_tensor_t *c)
{
    gemm_impl(be, ta, tb, alpha, a, b, beta, c, 1);
}

static void cu_add(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x)
{
    f32_dev(y, "add");
    f32_dev(x, "add");
    OP_REQUIRE(NROWS(x) == NROWS(y) && NCOLS(x) == NCOLS(y), "add");
    CK(mdk_add(F(y), y->ld, CF(x), x->ld, NROWS(y), NCOLS(y), STREAM(be)), "add");
}

static void cu_scale(const md_backend_t *be, md_tensor_t *x, double alpha)
{
    f32_dev(x, "scale");
    OP_REQUIRE(x->ld == NCOLS(x), "scale");
    CK(mdk_scale(F(x), md_tensor_numel(x), alpha, STREAM(be)), "scale");
}

static double cu_sumsq(const md_backend_t *be, const md_tensor_t *x)
{
    f32_dev(x, "sumsq");
    OP_REQUIRE(x->ld == NCOLS(x), "sumsq");
    cuda_ctx_t *c = CTX(be);
    double r = 0;
    CK(mdk_sumsq(CF(x), md_tensor_numel(x), c->result, c->scratch, STREAM(be)), "sumsq");
    CK(cudaMemcpy(&r, c->result, sizeof r, cudaMemcpyDeviceToHost), "sumsq");
    return r;
}

static void cu_adamw(const md_backend_t *be, md_tensor_t *p, const md_tensor_t *g, md_tensor_t *m, md_tensor_t *v,
                     int64_t n_decay, const md_adamw_hparams_t *hp)
{
    const md_tensor_t *all[] = {p, g, m, v};
    for (int i = 0; i < 4; i++) f32_dev(all[i], "adamw");
    int64_t n = md_tensor_numel(p);
    OP_REQUIRE(md_tensor_numel(g) == n && md_tensor_numel(m) == n && md_tensor_numel(v) == n, "adamw");
    OP_REQUIRE(hp->step >= 1, "adamw");
    mdk_step_block_t b;
    md_cuda_adamw_scalars(hp, &b);
    if (n_decay > n) n_decay = n;
    CK(mdk_adamw(F(p), CF(g), F(m), F(v), n, n_decay, b.decay_mul, b.b1, b.b2, (float)hp->grad_scale, b.step_size,
                 b.bc2_sqrt, b.eps, STREAM(be)),
       "adamw");
}

void md_cuda_adamw_scalars(const md_adamw_hparams_t *hp, mdk_step_block_t *b)
{
    /* the scalars exactly as the CPU rounds them */
    double bc1 = 1.0 - pow(hp->beta1, (double)hp->step);
    double bc2 = 1.0 - pow(hp->beta2, (double)hp->step);
    b->decay_mul = (float)(1.0 - hp->lr * hp->weight_decay);
    b->b1 = (float)hp->beta1;
    b->b2 = (float)hp->beta2;
    b->step_size = (float)(hp->lr / bc1);
    b->bc2_sqrt = (float)sqrt(bc2);
    b->eps = (float)hp->eps;
}

/* ---- embedding ---- */

static void cu_embedding_fwd(const md_backend_t *be, md_tensor_t *out, const md_tensor_t *tok, const md_tensor_t *w)
{
    f32_dev(out, "embedding_fwd");
    f32_dev(w, "embedding_fwd");
    OP_REQUIRE(tok->dtype == MD_DTYPE_U8 && md_tensor_numel(tok) == NROWS(out), "embedding_fwd");
    OP_REQUIRE(NCOLS(w) == NCOLS(out) && w->ld == NCOLS(w), "embedding_fwd");
    CK(mdk_embedding_fwd(F(out), out->ld, tok->data, CF(w), NROWS(out), NCOLS(out), STREAM(be)), "embedding_fwd");
}

static void cu_embedding_bwd(const md_backend_t *be, md_tensor_t *dw, const md_tensor_t *dout, const md_tensor_t *tok)
{
    f32_dev(dw, "embedding_bwd");
    f32_dev(dout, "embedding_bwd");
    OP_REQUIRE(tok->dtype == MD_DTYPE_U8 && md_tensor_numel(tok) == NROWS(dout), "embedding_bwd");
    OP_REQUIRE(NCOLS(dw) == NCOLS(dout) && dw->ld == NCOLS(dw), "embedding_bwd");
    OP_REQUIRE(NROWS(dw) <= MDK_EMB_MAX_VOCAB, "embedding_bwd");
    CK(mdk_embedding_bwd(F(dw), CF(dout), dout->ld, tok->data, NROWS(dout), NCOLS(dout), NROWS(dw),
                         CTX(be)->scratch, SCRATCH_FLOATS, STREAM(be)),
       "embedding_bwd");
}

/* ---- RMSNorm ---- */

static void cu_rmsnorm_fwd(const md_backend_t *be, md_tensor_t *y, md_tensor_t *rstd, const md_tensor_t *x,
                           const md_tensor_t *w, double eps)
{
    const md_tensor_t *all[] = {rstd, x, w};
    for (int i = 0; i < 3; i++) f32_dev(all[i], "rmsnorm_fwd");
    int y16 = fb_dev(y, "rmsnorm_fwd");
    int64_t rows = NROWS(x), dim = NCOLS(x);
    OP_REQUIRE(NROWS(y) == rows && NCOLS(y) == dim && md_tensor_numel(w) == dim && md_tensor_numel(rstd) == rows,
               "rmsnorm_fwd");
    if (y16)
        CK(mdk_rmsnorm_fwd_bf16(y->data, y->ld, F(rstd), CF(x), x->ld, CF(w), rows, dim, eps, STREAM(be)),
           "rmsnorm_fwd");
    else
        CK(mdk_rmsnorm_fwd(F(y), y->ld, F(rstd), CF(x), x->ld, CF(w), rows, dim, eps, STREAM(be)), "rmsnorm_fwd");
}

static void cu_add_rmsnorm_fwd(const md_backend_t *be, md_tensor_t *h, md_tensor_t *y, md_tensor_t *rstd,
                               const md_tensor_t *hin, const md_tensor_t *xadd, const md_tensor_t *w, double eps)
{
    const md_tensor_t *all[] = {h, rstd, hin, xadd, w};
    for (int i = 0; i < 5; i++) f32_dev(all[i], "add_rmsnorm_fwd");
    int y16 = fb_dev(y, "add_rmsnorm_fwd");
    int64_t rows = NROWS(h), dim = NCOLS(h);
    OP_REQUIRE(NROWS(y) == rows && NCOLS(y) == dim && NROWS(hin) == rows && NCOLS(hin) == dim, "add_rmsnorm_fwd");
    OP_REQUIRE(NROWS(xadd) == rows && NCOLS(xadd) == dim, "add_rmsnorm_fwd");
    OP_REQUIRE(md_tensor_numel(w) == dim && md_tensor_numel(rstd) == rows, "add_rmsnorm_fwd");
    if (y16)
        CK(mdk_add_rmsnorm_fwd_bf16(F(h), h->ld, y->data, y->ld, F(rstd), CF(hin), hin->ld, CF(xadd), xadd->ld, CF(w),
                                    rows, dim, eps, STREAM(be)),
           "add_rmsnorm_fwd");
    else
        CK(mdk_add_rmsnorm_fwd(F(h), h->ld, F(y), y->ld, F(rstd), CF(hin), hin->ld, CF(xadd), xadd->ld, CF(w), rows,
                               dim, eps, STREAM(be)),
           "add_rmsnorm_fwd");
}

static void cu_rmsnorm_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, const md_tensor_t *dy,
                           const md_tensor_t *x, const md_tensor_t *w, const md_tensor_t *rstd, int accumulate,
                           md_tensor_t *dx_act)
{
    const md_tensor_t *all[] = {dx, dw, x, w, rstd};
    for (int i = 0; i < 5; i++) f32_dev(all[i], "rmsnorm_bwd");
    int dy16 = fb_dev(dy, "rmsnorm_bwd");
    int64_t rows = NROWS(x), dim = NCOLS(x);
    OP_REQUIRE(NROWS(dx) == rows && NCOLS(dx) == dim && NROWS(dy) == rows && NCOLS(dy) == dim, "rmsnorm_bwd");
    OP_REQUIRE(md_tensor_numel(w) == dim && md_tensor_numel(dw) == dim && md_tensor_numel(rstd) == rows,
               "rmsnorm_bwd");
    /* the bf16 table's copy for its GEMMs; an f32 copy is convert's business */
    if (dx_act)
        OP_REQUIRE(fb_dev(dx_act, "rmsnorm_bwd") && NROWS(dx_act) == rows && NCOLS(dx_act) == dim, "rmsnorm_bwd");
    void *d16 = dx_act ? dx_act->data : NULL;
    int64_t ld16 = dx_act ? dx_act->ld : 0;
    if (dy16)
        CK(mdk_rmsnorm_bwd_bf16(F(dx), dx->ld, F(dw), dy->data, dy->ld, CF(x), x->ld, CF(w), CF(rstd), rows, dim,
                                accumulate, d16, ld16, CTX(be)->scratch, SCRATCH_FLOATS, STREAM(be)),
           "rmsnorm_bwd");
    else
        CK(mdk_rmsnorm_bwd(F(dx), dx->ld, F(dw), CF(dy), dy->ld, CF(x), x->ld, CF(w), CF(rstd), rows, dim,
                           accumulate, d16, ld16, CTX(be)->scratch, SCRATCH_FLOATS, STREAM(be)),
           "rmsnorm_bwd");
}

/* ---- conv1d ---- */

/* returns 1 when y and x are bf16 */
static int conv_check(const md_tensor_t *y, const md_tensor_t *x, const md_tensor_t *w, const md_tensor_t *bias,
                      int64_t batch, const char *op)
{
    f32_dev(w, op);
    f32_dev(bias, op);
    int x16 = fb_dev(x, op);
    OP_REQUIRE(fb_dev(y, op) == x16, op);
    int64_t dim = NCOLS(x);
    OP_REQUIRE(batch >= 1 && NROWS(x) % batch == 0, op);
    OP_REQUIRE(NROWS(y) == NROWS(x) && NCOLS(y) == dim, op);
    OP_REQUIRE(md_tensor_numel(w) % dim == 0 && md_tensor_numel(w) / dim <= MDK_CONV_MAXK &&
                   md_tensor_numel(bias) == dim, op);
    return x16;
}

static void cu_conv1d_silu_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x, const md_tensor_t *w,
                               const md_tensor_t *bias, int64_t batch)
{
    int x16 = conv_check(y, x, w, bias, batch, "conv1d_silu_fwd");
    int64_t dim = NCOLS(x), len = NROWS(x) / batch, K = md_tensor_numel(w) / dim;
    if (x16)
        CK(mdk_conv1d_silu_fwd_bf16(y->data, y->ld, x->data, x->ld, CF(w), CF(bias), batch, len, dim, K, STREAM(be)),
           "conv1d_silu_fwd");
    else
        CK(mdk_conv1d_silu_fwd(F(y), y->ld, CF(x), x->ld, CF(w), CF(bias), batch, len, dim, K, STREAM(be)),
           "conv1d_silu_fwd");
}

/* kernels/mamba_in_proj.cu where it takes the call (bf16, its shapes, a
 * batch that fills the GPU); else 0 and the caller runs gemm and
 * conv1d_silu_fwd */
static int cu_in_proj_conv_fwd(const md_backend_t *be, md_tensor_t *u, md_tensor_t *xz, const md_tensor_t *hn,
                               const md_tensor_t *w_in, const md_tensor_t *w, const md_tensor_t *bias, int64_t batch)
{
    const md_tensor_t *bf[] = {u, xz, hn, w_in};
    for (int i = 0; i < 4; i++)
        if (!fb_dev(bf[i], "in_proj_conv_fwd")) return 0;
    int64_t E = NCOLS(u), d = NCOLS(hn), rows = NROWS(hn);
    OP_REQUIRE(NCOLS(xz) == 2 * E && NROWS(xz) == rows && NROWS(u) == rows, "in_proj_conv_fwd");
    OP_REQUIRE(NROWS(w_in) == 2 * E && NCOLS(w_in) == d, "in_proj_conv_fwd");
    md_tensor_t x = md_tensor_cols(*xz, 0, E), z = md_tensor_cols(*xz, E, E);
    conv_check(u, &x, w, bias, batch, "in_proj_conv_fwd");
    int64_t len = rows / batch, K = md_tensor_numel(w) / E;
    if (!mdk_in_proj_conv_takes(batch, len, d, E, K, u->data, u->ld, z.data, z.ld, hn->data, hn->ld, w_in->data,
                                w_in->ld))
        return 0;
    CK(mdk_in_proj_conv_fwd_bf16(u->data, u->ld, z.data, z.ld, hn->data, hn->ld, w_in->data, w_in->ld, CF(w),
                                 CF(bias), batch, len, d, E, STREAM(be)),
       "in_proj_conv_fwd");
    return 1;
}

static void cu_conv1d_silu_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, md_tensor_t *dbias,
                               const md_tensor_t *dy, const md_tensor_t *x, const md_tensor_t *w,
                               const md_tensor_t *bias, int64_t batch)
{
    int x16 = conv_check(dx, x, w, bias, batch, "conv1d_silu_bwd");
    conv_check(dy, x, dw, dbias, batch, "conv1d_silu_bwd");
    int64_t dim = NCOLS(x), len = NROWS(x) / batch, K = md_tensor_numel(w) / dim;
    if (x16)
        CK(mdk_conv1d_silu_bwd_bf16(dx->data, dx->ld, F(dw), F(dbias), dy->data, dy->ld, x->data, x->ld, CF(w),
                                    CF(bias), batch, len, dim, K, CTX(be)->scratch, SCRATCH_FLOATS, STREAM(be)),
           "conv1d_silu_bwd");
    else
        CK(mdk_conv1d_silu_bwd(F(dx), dx->ld, F(dw), F(dbias), CF(dy), dy->ld, CF(x), x->ld, CF(w), CF(bias), batch,
                               len, dim, K, CTX(be)->scratch, SCRATCH_FLOATS, STREAM(be)),
           "conv1d_silu_bwd");
}

/* ---- the selective scan (scan_api.h) ----
 * The caller's states buffer is the forward's scratch
 * (md_scan_fwd_workspace): given no separate states, the forward keeps the
 * chunk-start states at the scratch's start (scan_api.h), where the
 * backward takes them. One buffer, not the states and a scratch holding a
 * second, unused region of the states' size. */

/* delta NULL: formed from dt_low and dt_w (ops.h), which the caller has
 * checked md_scan_forms_delta allows */
static void scan_fill(md_scan_args_t *s, const md_tensor_t *u, const md_tensor_t *delta, const md_tensor_t *dt_low,
                      const md_tensor_t *dt_w, const md_tensor_t *dt_bias, const md_tensor_t *A_log,
                      const md_tensor_t *Bm, const md_tensor_t *Cm, const md_tensor_t *D, const md_tensor_t *z,
                      int64_t batch, const char *op)
{
    memset(s, 0, sizeof *s);
    const md_tensor_t *params[] = {dt_bias, A_log, D}, *seq[] = {Bm, Cm, z};
    for (int i = 0; i < 3; i++) f32_dev(params[i], op);
    int u16 = fb_dev(u, op);
    for (int i = 0; i < 3; i++) OP_REQUIRE(fb_dev(seq[i], op) == u16, op);
    int64_t E = NCOLS(u), N = NCOLS(Bm), M = NROWS(u);
    OP_REQUIRE(batch >= 1 && M % batch == 0, op);
    OP_REQUIRE(NROWS(z) == M && NCOLS(z) == E, op);
    if (delta) {
        OP_REQUIRE(fb_dev(delta, op) == u16 && NROWS(delta) == M && NCOLS(delta) == E, op);
        s->delta = delta->data, s->ld_delta = delta->ld;
    } else {
        OP_REQUIRE(dt_low && dt_w && fb_dev(dt_low, op) == u16 && fb_dev(dt_w, op) == u16, op);
        OP_REQUIRE(NROWS(dt_low) == M && NROWS(dt_w) == E && NCOLS(dt_w) == NCOLS(dt_low), op);
        OP_REQUIRE(dt_w->ld == NCOLS(dt_w) && NCOLS(dt_w) <= MD_SCAN_MAX_DT_RANK, op);
        s->dt_low = dt_low->data, s->ld_dt_low = dt_low->ld;
        s->dt_w = dt_w->data, s->dt_rank = NCOLS(dt_w);
    }
    OP_REQUIRE(NROWS(Bm) == M && NROWS(Cm) == M && NCOLS(Cm) == N && N <= MD_SCAN_MAX_STATE, op);
    OP_REQUIRE(md_tensor_numel(A_log) == E * N && md_tensor_numel(D) == E && md_tensor_numel(dt_bias) == E, op);
    s->dtype = u16 ? MD_SCAN_BF16 : MD_SCAN_F32;
    s->batch = batch;
    s->len = M / batch;
    s->d_inner = E;
    s->d_state = N;
    s->u = u->data, s->ld_u = u->ld;
    s->z = z->data, s->ld_z = z->ld;
    s->Bm = Bm->data, s->ld_B = Bm->ld;
    s->Cm = Cm->data, s->ld_C = Cm->ld;
    s->A_log = CF(A_log);
    s->D = CF(D);
    s->dt_bias = CF(dt_bias);
}

static size_t cu_scan_states_size(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len, int64_t d_inner,
                                  int64_t d_state)
{
    return md_scan_fwd_workspace(batch, len, d_inner, d_state);
}

/* the chunk-start states, at the buffer's start (above) */
static size_t cu_scan_states_kept_size(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                       int64_t d_inner, int64_t d_state)
{
    return md_scan_states_bytes(batch, len, d_inner, d_state);
}

static size_t cu_scan_bwd_workspace(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                    int64_t d_inner, int64_t d_state)
{
    return md_scan_bwd_workspace(batch, len, d_inner, d_state);
}

static size_t cu_scan_seg_states_size(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                      int64_t d_inner, int64_t d_state)
{
    return md_scan_seg_states_bytes(batch, len, d_inner, d_state);
}

static void cu_scan_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *u, const md_tensor_t *delta,
                        const md_tensor_t *dt_low, const md_tensor_t *dt_w, const md_tensor_t *dt_bias,
                        const md_tensor_t *A_log, const md_tensor_t *Bm,
                        const md_tensor_t *Cm, const md_tensor_t *D, const md_tensor_t *z, int64_t batch,
                        void *states, void *seg_states)
{
    md_scan_args_t s;
    OP_REQUIRE(delta || (dt_low && md_scan_forms_delta(be, NCOLS(dt_low), states == NULL)), "scan_fwd");
    scan_fill(&s, u, delta, dt_low, dt_w, dt_bias, A_log, Bm, Cm, D, z, batch, "scan_fwd");
    OP_REQUIRE(y || states, "scan_fwd");
    if (y) {   /* NULL: the states alone (ops.h) */
        OP_REQUIRE(fb_dev(y, "scan_fwd") == (s.dtype == MD_SCAN_BF16), "scan_fwd");
        OP_REQUIRE(NROWS(y) == NROWS(u) && NCOLS(y) == NCOLS(u), "scan_fwd");
        s.y = y->data, s.ld_y = y->ld;
    }
    size_t wb = md_scan_fwd_workspace(s.batch, s.len, s.d_inner, s.d_state);
    /* states == NULL: forward only, the inference kernel (scan_api.h); else
     * the states land at the workspace's start. A training forward whose one
     * chunk needs neither still hands its states pointer on, so that it keeps
     * the training kernels (the inference kernel's y is not bit-identical). */
    s.workspace = wb && states ? states : NULL;
    if (states && !wb) s.states = (float *)states;
    s.workspace_bytes = s.workspace ? wb : 0;
    OP_REQUIRE(!seg_states || states, "scan_fwd");
    s.seg_states = (float *)seg_states;
    CK(md_scan_fwd(&s, STREAM(be)), "scan_fwd");
}

static void cu_scan_bwd(const md_backend_t *be, md_tensor_t *du, md_tensor_t *ddelta, md_tensor_t *dA_log,
                        md_tensor_t *dBm, md_tensor_t *dCm, md_tensor_t *dD, md_tensor_t *dz, md_tensor_t *ddt_bias,
                        md_tensor_t *y, const md_tensor_t *dy, const md_tensor_t *u, const md_tensor_t *delta,
                        const md_tensor_t *dt_low, const md_tensor_t *dt_w, const md_tensor_t *dt_bias,
                        const md_tensor_t *A_log, const md_tensor_t *Bm,
                        const md_tensor_t *Cm, const md_tensor_t *D, const md_tensor_t *z, int64_t batch,
                        const void *states, const void *seg_states, void *workspace)
{
    md_scan_args_t s;
    OP_REQUIRE(delta || (dt_low && md_scan_forms_delta(be, NCOLS(dt_low), 0)), "scan_bwd");
    scan_fill(&s, u, delta, dt_low, dt_w, dt_bias, A_log, Bm, Cm, D, z, batch, "scan_bwd");
    const md_tensor_t *pgrads[] = {dA_log, dD, ddt_bias}, *sgrads[] = {du, ddelta, dBm, dCm, dz, dy};
    for (int i = 0; i < 3; i++) f32_dev(pgrads[i], "scan_bwd");
    for (int i = 0; i < 6; i++) OP_REQUIRE(fb_dev(sgrads[i], "scan_bwd") == (s.dtype == MD_SCAN_BF16), "scan_bwd");
    int64_t M = NROWS(u), E = s.d_inner, N = s.d_state;
    OP_REQUIRE(NROWS(du) == M && NCOLS(du) == E && NROWS(ddelta) == M && NCOLS(ddelta) == E, "scan_bwd");
    OP_REQUIRE(NROWS(dz) == M && NCOLS(dz) == E && NROWS(dy) == M && NCOLS(dy) == E, "scan_bwd");
    OP_REQUIRE(NROWS(dBm) == M && NCOLS(dBm) == N && NROWS(dCm) == M && NCOLS(dCm) == N, "scan_bwd");
    OP_REQUIRE(md_tensor_numel(dA_log) == E * N && md_tensor_numel(dD) == E && md_tensor_numel(ddt_bias) == E,
               "scan_bwd");
    size_t wb = md_scan_bwd_workspace(s.batch, s.len, E, N);
    OP_REQUIRE(workspace != NULL || wb == 0, "scan_bwd");
    s.dy = dy->data, s.ld_dy = dy->ld;
    s.du = du->data, s.ld_du = du->ld;
    s.ddelta = ddelta->data, s.ld_ddelta = ddelta->ld;
    s.dz = dz->data, s.ld_dz = dz->ld;
    s.dBm = dBm->data, s.ld_dB = dBm->ld;
    s.dCm = dCm->data, s.ld_dC = dCm->ld;
    s.dA_log = F(dA_log);
    s.dD = F(dD);
    s.ddt_bias = F(ddt_bias);
    if (y) {   /* the forward's y again (ops.h) */
        OP_REQUIRE(fb_dev(y, "scan_bwd") == (s.dtype == MD_SCAN_BF16) && NROWS(y) == M && NCOLS(y) == E, "scan_bwd");
        s.y_out = y->data, s.ld_y_out = y->ld;
    }
    s.states = md_scan_states_bytes(s.batch, s.len, E, N) ? (float *)states : NULL;
    s.seg_states = (float *)seg_states;
    s.workspace = workspace;
    s.workspace_bytes = wb;
    CK(md_scan_bwd(&s, STREAM(be)), "scan_bwd");
}

/* ---- cross-entropy ---- */

static size_t cu_xent_workspace(const md_backend_t *be, int64_t rows) { return mdk_xent_workspace(rows); }

static void xent_check(const md_tensor_t *dlogits, const md_tensor_t *logits, const md_tensor_t *targets,
                       const void *workspace)
{
    f32_dev(logits, "xent");
    OP_REQUIRE(targets->dtype == MD_DTYPE_U8 && md_tensor_numel(targets) == NROWS(logits), "xent");
    if (dlogits) {
        f32_dev(dlogits, "xent");
        OP_REQUIRE(NROWS(dlogits) == NROWS(logits) && NCOLS(dlogits) == NCOLS(logits), "xent");
    }
    OP_REQUIRE(workspace != NULL, "xent");
}

static double cu_xent(const md_backend_t *be, md_tensor_t *dlogits, const md_tensor_t *logits,
                      const md_tensor_t *targets, double grad_scale, int64_t *n_counted, void *workspace)
{
    xent_check(dlogits, logits, targets, workspace);
    cuda_ctx_t *c = CTX(be);
    CK(mdk_xent(dlogits ? F(dlogits) : NULL, dlogits ? dlogits->ld : 0, CF(logits), logits->ld, targets->data,
                NROWS(logits), NCOLS(logits), grad_scale, workspace, c->result, STREAM(be)),
       "xent");
    double r[2];
    CK(cudaMemcpy(r, c->result, sizeof r, cudaMemcpyDeviceToHost), "xent");
    *n_counted = (int64_t)r[1];
    return r[0];
}

static void cu_xent_acc(const md_backend_t *be, md_tensor_t *dlogits, const md_tensor_t *logits,
                        const md_tensor_t *targets, double grad_scale, double *acc, void *workspace)
{
    xent_check(dlogits, logits, targets, workspace);
    CK(mdk_xent_acc(dlogits ? F(dlogits) : NULL, dlogits ? dlogits->ld : 0, CF(logits), logits->ld, targets->data,
                    NROWS(logits), NCOLS(logits), grad_scale, workspace, acc, STREAM(be)),
       "xent");
}

static const md_backend_t cuda_template = {
    .name = "cuda",
    .device = MD_DEVICE_CUDA,
    /* the inference kernel forms delta; training keeps dt_proj's GEMM before the scan */
    .scan_max_dt_rank_infer = MD_SCAN_MAX_DT_RANK,
    .scan_max_dt_rank_train = 0,
    .alloc = cu_alloc,
    .free = cu_free,
    .memset0 = cu_memset0,
    .copy = cu_copy,
    .sync = cu_sync,
    .convert = cu_convert,
    .gemm = cu_gemm,
    .add = cu_add,
    .scale = cu_scale,
    .sumsq = cu_sumsq,
    .adamw = cu_adamw,
    .embedding_fwd = cu_embedding_fwd,
    .embedding_bwd = cu_embedding_bwd,
    .rmsnorm_fwd = cu_rmsnorm_fwd,
    .rmsnorm_bwd = cu_rmsnorm_bwd,
    .add_rmsnorm_fwd = cu_add_rmsnorm_fwd,
    .conv1d_silu_fwd = cu_conv1d_silu_fwd,
    .in_proj_conv_fwd = cu_in_proj_conv_fwd,
    .conv1d_silu_bwd = cu_conv1d_silu_bwd,
    .scan_fwd = cu_scan_fwd,
    .scan_states_size = cu_scan_states_size,
    .scan_states_kept_size = cu_scan_states_kept_size,
    .scan_bwd_workspace = cu_scan_bwd_workspace,
    .scan_seg_states_size = cu_scan_seg_states_size,
    .scan_bwd = cu_scan_bwd,
    .xent_workspace = cu_xent_workspace,
    .xent = cu_xent,
    .xent_acc = cu_xent_acc,
};

enum { MAX_GPUS = 64 };
static md_backend_t *backends[MAX_GPUS][2];   /* [ordinal][precision] */

const md_backend_t *md_backend_cuda_ex(int ordinal, md_precision_t prec)
{
    if (ordinal < 0 || ordinal >= MAX_GPUS || ordinal >= md_cuda_device_count()) {
        md_error("backend cuda: GPU %d does not exist; %d visible", ordinal, md_cuda_device_count());
        return NULL;
    }
    int pi = prec == MD_PRECISION_BF16;
    if (md_cuda_fault_init() < 0) return NULL;
    cudaError_t e;
    if ((e = cudaSetDevice(ordinal)) != cudaSuccess) {
        md_error("backend cuda: cannot use GPU %d: %s", ordinal, cudaGetErrorString(e));
        return NULL;
    }
    if (backends[ordinal][pi]) return backends[ordinal][pi];
    cuda_ctx_t *c = backends[ordinal][!pi] ? CTX(backends[ordinal][!pi]) : NULL;
    if (!c) {
        c = md_calloc(1, sizeof *c);
        c->ordinal = ordinal;
        if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) {
            md_error("backend cuda: cannot start cuBLAS on GPU %d", ordinal);
            free(c);
            return NULL;
        }
        cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH);   /* no TF32 in cublasSgemm */
        if (cudaMalloc((void **)&c->scratch, SCRATCH_BYTES) != cudaSuccess ||
            cudaMalloc((void **)&c->result, 2 * sizeof(double)) != cudaSuccess) {
            cudaGetLastError();
            md_error("backend cuda: out of GPU memory for the backend's %zu MiB of scratch", SCRATCH_BYTES >> 20);
            cublasDestroy(c->blas);
            free(c);
            return NULL;
        }
        if (cudaStreamCreate(&c->stream) != cudaSuccess) {
            md_error("backend cuda: cannot create a stream on GPU %d", ordinal);
            cudaFree(c->scratch);
            cudaFree(c->result);
            cublasDestroy(c->blas);
            free(c);
            return NULL;
        }
        /* cuBLAS's work area is the scratch, as cuBLASLt's (one stream: no
         * other op uses it while a product runs): set, not left to cuBLAS's
         * own pool, so that a product captured into a graph allocates
         * nothing. (cublasSetStream resets it: the stream first.) */
        cublasSetStream(c->blas, c->stream);
        cublasSetWorkspace(c->blas, c->scratch, SCRATCH_BYTES);
    }
    md_backend_t *be = md_malloc(sizeof *be);
    *be = cuda_template;
    be->ctx = c;
    md_cuda_hyena_install(be, pi);
    md_cuda_transformer_install(be, pi);
    if (pi) {
        be->name = "cuda-bf16";
        be->act_dtype = MD_DTYPE_BF16;
        be->gemm = cu_gemm_bf16;
    }
    backends[ordinal][pi] = be;
    return be;
}

const md_backend_t *md_backend_cuda(int ordinal) { return md_backend_cuda_ex(ordinal, MD_PRECISION_FP32); }

size_t md_cuda_peak_bytes(const md_backend_t *be)
{
    return be && be->device == MD_DEVICE_CUDA ? CTX(be)->peak + SCRATCH_BYTES : 0;
}

void md_cuda_reset_peak(const md_backend_t *be)
{
    if (be && be->device == MD_DEVICE_CUDA) CTX(be)->peak = CTX(be)->in_use;
}
