/* The Hyena section of the CUDA backend (ops.h): shape checks around the
 * kernels of kernels/hyena.cu and kernels/fftconv.cu, and the cuFFT plans of
 * the long convolution.
 *
 * cuFFT: fp32 R2C / C2R, batched over (batch, channel) sequences, out of
 * place between a real and a spectrum buffer (on the H200 the in-place
 * layout, sequences n + 2 floats apart, took 1.6x as long at n = 2^21),
 * whatever the table's matmul precision. A plan is made once per (size,
 * count, direction) and kept in the backend's context; plans are made
 * without a work area (cufftSetAutoAllocation 0) and given the caller's
 * workspace before each run, so the op never allocates. fftconv_workspace
 * makes the shape's plans up front (it must ask cuFFT for their work
 * sizes), so a model's planning also does the planning of cuFFT.
 *
 * Activations may be bf16 (the bf16 table's storage, ops.h): every (M, C)
 * tensor of an op shares one dtype, f32 or bf16, checked by act_*() below;
 * LayerNorm's input and dx, the filter's tensors (Sin, the modulation, k,
 * dk), parameters, their gradients and statistics are f32. */
#include <cuda_runtime_api.h>
#include <cufft.h>

#include "backend_kernels.h"
#include "cuda_internal.h"
#include "cuda_linear.h"
#include "util/xalloc.h"

/* ---- the plan cache ---- */

enum { MAX_PLANS = 32 };

typedef struct {
    int64_t n, count;   /* FFT size, sequences */
    cufftType type;     /* CUFFT_R2C or CUFFT_C2R */
    cufftHandle plan;
    size_t work;        /* bytes of its work area */
    uint64_t last_use;
} fft_plan_t;

/* When full, the least recently used plan is replaced: the six plans of
 * one shape, asked for in a row, never push each other out. */
struct cuda_fft_cache {
    fft_plan_t p[MAX_PLANS];
    int used;
    uint64_t clock;
};

/* Reports a failed cuFFT call (cuda_check.h) with the transform's size;
 * planning and execution are MD_CUDA_FAULT's cufft check points. */
static void cufft_check(cufftResult r, const char *op, const char *what, int64_t n, int64_t count)
{
    if (r != CUFFT_SUCCESS) md_cuda_fail_cufft(op, r, what, n, count);
}

/* The plan for `count` transforms of size n, real sequences n floats
 * apart, spectra mdk_fftconv_pitch(n) complex apart (n / 2 + 1 of them
 * used), made on first use. */
static fft_plan_t *get_plan(const md_backend_t *be, int64_t n, int64_t count, cufftType type, const char *op)
{
    cuda_ctx_t *c = CTX(be);
    if (!c->fft) c->fft = md_calloc(1, sizeof *c->fft);
    struct cuda_fft_cache *fc = c->fft;
    for (int i = 0; i < fc->used; i++)
        if (fc->p[i].n == n && fc->p[i].count == count && fc->p[i].type == type) {
            fc->p[i].last_use = ++fc->clock;
            return &fc->p[i];
        }
    fft_plan_t *e;
    if (fc->used < MAX_PLANS) {
        e = &fc->p[fc->used++];
    } else {   /* full: replace the least recently used, once nothing queued can still use it */
        e = &fc->p[0];
        for (int i = 1; i < MAX_PLANS; i++)
            if (fc->p[i].last_use < e->last_use) e = &fc->p[i];
        CK(cudaDeviceSynchronize(), op);
        cufftDestroy(e->plan);
        c->plan_evictions++;
    }
    long long len = n, real_embed = n, cplx_embed = mdk_fftconv_pitch(n);
    int r2c = type == CUFFT_R2C;
    cufft_check(cufftCreate(&e->plan), op, "creating the plan", n, count);
    cufft_check(cufftSetAutoAllocation(e->plan, 0), op, "setting up the plan", n, count);
    cufftResult r = cufftMakePlanMany64(e->plan, 1, &len, r2c ? &real_embed : &cplx_embed, 1,
                                        r2c ? real_embed : cplx_embed, r2c ? &cplx_embed : &real_embed, 1,
                                        r2c ? cplx_embed : real_embed, type, count, &e->work);
    cufft_check(md_cuda_fault_cufft(r), op, "planning", n, count);
    cufft_check(cufftSetStream(e->plan, c->stream), op, "setting up the plan", n, count);
    e->n = n, e->count = count, e->type = type, e->last_use = ++fc->clock;
    return e;
}

/* Runs a plan between the real buffer and the spectrum buffer (either
 * way by its type) with its work area at `work`. */
static void run_plan(fft_plan_t *p, float *real, float *spec, void *work, const char *op)
{
    cufftResult r = cufftSetWorkArea(p->plan, work);
    /* timed apart from the op's kernels: the transforms are most of its GPU time */
    const char *name = p->type == CUFFT_R2C ? "cufft r2c" : "cufft c2r";
    int timed = md_op_timer_on();
    if (timed) md_op_timer_mark(name, 0);
    if (r == CUFFT_SUCCESS)
        r = p->type == CUFFT_R2C ? cufftExecR2C(p->plan, (cufftReal *)real, (cufftComplex *)spec)
                                 : cufftExecC2R(p->plan, (cufftComplex *)spec, (cufftReal *)real);
    if (timed) md_op_timer_mark(name, 1);
    cufft_check(md_cuda_fault_cufft(r), op, "running the transform", p->n, p->count);
}

/* The plans of a shape: forward [S K] -> spectra, S <- convolution;
 * backward [S G K] both ways, or, when the forward kept its S and K
 * spectra and its convolution, G alone forward and [G K] back. */
typedef struct {
    fft_plan_t *fwd_r2c, *fwd_c2r, *bwd_r2c, *bwd_c2r, *g_r2c, *gk_c2r;
    /* the backward's sequences (the more), real and spectra; the largest
     * work area; what the forward keeps for the backward: its [S][K]
     * spectra (kept_spec_bytes), then its convolution in (B L, C) fp32
     * rows (kept_bytes in all) */
    size_t real_bytes, spec_bytes, work_bytes, kept_spec_bytes, kept_bytes;
} fft_shape_t;

/* The workspace: [real sequences][spectra][cuFFT's work area].
 * Keeping the convolution spares the backward a third of its inverse
 * transform (the S sequences) for B L C floats of the kept buffer. */

static fft_shape_t fft_shape(const md_backend_t *be, int64_t batch, int64_t len, int64_t C, const char *op)
{
    fft_shape_t s;
    int64_t n = mdk_fftconv_size(len), bc = batch * C;
    s.fwd_r2c = get_plan(be, n, bc + C, CUFFT_R2C, op);
    s.fwd_c2r = get_plan(be, n, bc, CUFFT_C2R, op);
    s.bwd_r2c = get_plan(be, n, 2 * bc + C, CUFFT_R2C, op);
    s.bwd_c2r = get_plan(be, n, 2 * bc + C, CUFFT_C2R, op);
    s.g_r2c = get_plan(be, n, bc, CUFFT_R2C, op);
    s.gk_c2r = get_plan(be, n, bc + C, CUFFT_C2R, op);
    s.real_bytes = round256((size_t)(2 * bc + C) * (size_t)n * sizeof(float));
    size_t pitch = (size_t)mdk_fftconv_pitch(n);
    s.spec_bytes = round256((size_t)(2 * bc + C) * pitch * 2 * sizeof(float));
    s.kept_spec_bytes = round256((size_t)(bc + C) * pitch * 2 * sizeof(float));
    s.kept_bytes = s.kept_spec_bytes + round256((size_t)bc * (size_t)len * sizeof(float));
    s.work_bytes = s.fwd_r2c->work;
    fft_plan_t *all[] = {s.fwd_c2r, s.bwd_r2c, s.bwd_c2r, s.g_r2c, s.gk_c2r};
    for (int i = 0; i < 5; i++)
        if (all[i]->work > s.work_bytes) s.work_bytes = all[i]->work;
    return s;
}

/* ---- ops ---- */

static void same_shape(const md_tensor_t *x, const md_tensor_t *ref, const char *op)
{
    f32_dev(x, op);
    OP_REQUIRE(NROWS(x) == NROWS(ref) && NCOLS(x) == NCOLS(ref), op);
}

/* An activation tensor (f32 or bf16); returns 1 for bf16. */
static int act_dev(const md_tensor_t *t, const char *op)
{
    int b = fb_dev(t, op);
    md_cuda_note_tensor(op, NROWS(t), NCOLS(t));
    return b;
}

/* An activation tensor of ref's shape; returns 1 for bf16. */
static int act_shape(const md_tensor_t *x, const md_tensor_t *ref, const char *op)
{
    OP_REQUIRE(NROWS(x) == NROWS(ref) && NCOLS(x) == NCOLS(ref), op);
    return act_dev(x, op);
}

/* An activation tensor of ref's shape and dtype. */
static void act_like(const md_tensor_t *x, const md_tensor_t *ref, const char *op)
{
    OP_REQUIRE(act_shape(x, ref, op) == (ref->dtype == MD_DTYPE_BF16), op);
}

static void vec(const md_tensor_t *x, int64_t n, const char *op)
{
    f32_dev(x, op);
    OP_REQUIRE(md_tensor_numel(x) == n && x->ld == NCOLS(x), op);
}

static void cu_bias_add(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *bias)
{
    int b16 = act_dev(y, "bias_add");
    OP_REQUIRE(act_dev(bias, "bias_add") == b16 && md_tensor_numel(bias) == NCOLS(y) && bias->ld == NCOLS(bias),
               "bias_add");
    CK(mdk_bias_add(y->data, y->ld, bias->data, NROWS(y), NCOLS(y), b16, STREAM(be)), "bias_add");
}

static void cu_bias_bwd(const md_backend_t *be, md_tensor_t *dbias, const md_tensor_t *dy)
{
    int b16 = act_dev(dy, "bias_bwd");
    vec(dbias, NCOLS(dy), "bias_bwd");
    CK(mdk_bias_bwd(F(dbias), dy->data, dy->ld, NROWS(dy), NCOLS(dy), CTX(be)->scratch, SCRATCH_FLOATS, b16,
                    STREAM(be)),
       "bias_bwd");
}

static void cu_layernorm_fwd(const md_backend_t *be, md_tensor_t *y, md_tensor_t *mean, md_tensor_t *rstd,
                             const md_tensor_t *x, const md_tensor_t *w, const md_tensor_t *b, double eps)
{
    const char *op = "layernorm_fwd";
    f32_dev(x, op);
    int y16 = act_shape(y, x, op);
    int64_t rows = NROWS(x), dim = NCOLS(x);
    vec(mean, rows, op), vec(rstd, rows, op), vec(w, dim, op), vec(b, dim, op);
    CK(mdk_layernorm_fwd(y->data, y->ld, F(mean), F(rstd), CF(x), x->ld, CF(w), CF(b), rows, dim, eps, y16,
                         STREAM(be)),
       op);
}

static void cu_layernorm_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, md_tensor_t *db,
                             const md_tensor_t *dy, const md_tensor_t *x, const md_tensor_t *w,
                             const md_tensor_t *mean, const md_tensor_t *rstd, int accumulate)
{
    const char *op = "layernorm_bwd";
    f32_dev(x, op);
    same_shape(dx, x, op);
    int dy16 = act_shape(dy, x, op);
    int64_t rows = NROWS(x), dim = NCOLS(x);
    vec(mean, rows, op), vec(rstd, rows, op), vec(w, dim, op), vec(dw, dim, op), vec(db, dim, op);
    CK(mdk_layernorm_bwd(F(dx), dx->ld, F(dw), F(db), dy->data, dy->ld, CF(x), x->ld, CF(w), CF(mean), CF(rstd), rows,
                         dim, accumulate, CTX(be)->scratch, SCRATCH_FLOATS, dy16, STREAM(be)),
       op);
}

static void cu_gelu_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x)
{
    int b16 = act_dev(x, "gelu_fwd");
    act_like(y, x, "gelu_fwd");
    CK(mdk_gelu_fwd(y->data, y->ld, x->data, x->ld, NROWS(x), NCOLS(x), b16, STREAM(be)), "gelu_fwd");
}

static void cu_gelu_bwd(const md_backend_t *be, md_tensor_t *dx, const md_tensor_t *dy, const md_tensor_t *x)
{
    int b16 = act_dev(x, "gelu_bwd");
    act_like(dx, x, "gelu_bwd");
    act_like(dy, x, "gelu_bwd");
    CK(mdk_gelu_bwd(dx->data, dx->ld, dy->data, dy->ld, x->data, x->ld, NROWS(x), NCOLS(x), b16, STREAM(be)),
       "gelu_bwd");
}

static void cu_sin_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x, const md_tensor_t *freq)
{
    f32_dev(x, "sin_fwd");
    same_shape(y, x, "sin_fwd");
    vec(freq, NCOLS(x), "sin_fwd");
    CK(mdk_sin_fwd(F(y), y->ld, CF(x), x->ld, CF(freq), NROWS(x), NCOLS(x), STREAM(be)), "sin_fwd");
}

static void cu_sin_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dfreq, md_tensor_t *dbias,
                       const md_tensor_t *dy, const md_tensor_t *x, const md_tensor_t *freq)
{
    f32_dev(x, "sin_bwd");
    same_shape(dx, x, "sin_bwd");
    same_shape(dy, x, "sin_bwd");
    vec(freq, NCOLS(x), "sin_bwd"), vec(dfreq, NCOLS(x), "sin_bwd");
    if (dbias) vec(dbias, NCOLS(x), "sin_bwd");
    CK(mdk_sin_bwd(F(dx), dx->ld, F(dfreq), dbias ? F(dbias) : NULL, CF(dy), dy->ld, CF(x), x->ld, CF(freq),
                   NROWS(x), NCOLS(x), CTX(be)->scratch, SCRATCH_FLOATS, STREAM(be)),
       "sin_bwd");
}

static void cu_hyena_modulate(const md_backend_t *be, md_tensor_t *k, int64_t l_max, double target, double fast_pct,
                              double slow_pct)
{
    f32_dev(k, "hyena_modulate");
    OP_REQUIRE(k->ld == NCOLS(k) && NROWS(k) <= l_max, "hyena_modulate");
    CK(mdk_hyena_modulate(F(k), NROWS(k), NCOLS(k), l_max, target, fast_pct, slow_pct, STREAM(be)), "hyena_modulate");
}

/* returns the filter width */
static int64_t dwconv_check(const md_tensor_t *y, const md_tensor_t *x, const md_tensor_t *w, int64_t batch,
                            const char *op)
{
    act_dev(x, op);
    act_like(y, x, op);
    f32_dev(w, op);
    int64_t dim = NCOLS(x);
    OP_REQUIRE(batch >= 1 && NROWS(x) % batch == 0 && w->ld == NCOLS(w), op);
    OP_REQUIRE(md_tensor_numel(w) % dim == 0 && md_tensor_numel(w) / dim <= MDK_DWCONV_MAXK, op);
    return md_tensor_numel(w) / dim;
}

static void cu_dwconv_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x, const md_tensor_t *w,
                          const md_tensor_t *bias, int64_t batch)
{
    int64_t K = dwconv_check(y, x, w, batch, "dwconv_fwd"), dim = NCOLS(x);
    vec(bias, dim, "dwconv_fwd");
    CK(mdk_dwconv_fwd(y->data, y->ld, x->data, x->ld, CF(w), CF(bias), batch, NROWS(x) / batch, dim, K,
                      x->dtype == MD_DTYPE_BF16, STREAM(be)),
       "dwconv_fwd");
}

static void cu_dwconv_bwd(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, md_tensor_t *dbias,
                          const md_tensor_t *dy, const md_tensor_t *x, const md_tensor_t *w, int64_t batch)
{
    int64_t K = dwconv_check(dx, x, w, batch, "dwconv_bwd"), dim = NCOLS(x);
    act_like(dy, x, "dwconv_bwd");
    vec(dw, dim * K, "dwconv_bwd"), vec(dbias, dim, "dwconv_bwd");
    CK(mdk_dwconv_bwd(dx->data, dx->ld, F(dw), F(dbias), dy->data, dy->ld, x->data, x->ld, CF(w), batch,
                      NROWS(x) / batch, dim, K, CTX(be)->scratch, SCRATCH_FLOATS, x->dtype == MD_DTYPE_BF16,
                      STREAM(be)),
       "dwconv_bwd");
}

/* ---- the gated FFT long convolution ---- */

static size_t cu_fftconv_workspace(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                   int64_t channels)
{
    if (batch * len * channels == 0) return 0;
    fft_shape_t s = fft_shape(be, batch, len, channels, "fftconv_workspace");
    return s.real_bytes + s.spec_bytes + s.work_bytes;
}

static size_t cu_fftconv_spectra_bytes(const md_backend_t *be, int64_t batch, int64_t len, int64_t channels)
{
    if (batch * len * channels == 0) return 0;
    return fft_shape(be, batch, len, channels, "fftconv_spectra_bytes").kept_bytes;
}

/* returns len */
static int64_t fftconv_check(const md_tensor_t *x0, const md_tensor_t *x1, const md_tensor_t *v,
                             const md_tensor_t *k, const md_tensor_t *D, int64_t batch, const char *op)
{
    act_dev(x0, op);
    act_like(x1, x0, op);
    act_like(v, x0, op);
    f32_dev(k, op);
    OP_REQUIRE(batch >= 1 && NROWS(x0) % batch == 0, op);
    int64_t len = NROWS(x0) / batch, C = NCOLS(x0);
    OP_REQUIRE(NROWS(k) == len && NCOLS(k) == C && k->ld == C, op);
    vec(D, C, op);
    return len;
}

/* Everything between the op's inputs and its unpack kernel, in `workspace`
 * ([reals][spectra][cuFFT's work area]): pack, transform, multiply, transform
 * back. Forward (dy == NULL): the real buffer then holds the convolution of
 * each (batch, channel), and `kept` (if not NULL) S's and K's spectra;
 * backward: the convolution, the correlation with k and dk's sequences,
 * or, when `kept` holds what the forward kept, the last two alone (from G
 * alone transformed). Returns the real buffer and sets *n, the FFT size,
 * and *kept_conv, where in `kept` the convolution's rows go (NULL without
 * `kept`). */
static const float *fft_convolve(const md_backend_t *be, const md_tensor_t *x1, const md_tensor_t *v,
                                 const md_tensor_t *dy, const md_tensor_t *x0, const md_tensor_t *k, int64_t batch,
                                 int64_t len, void *workspace, float *kept, int64_t *n, float **kept_conv,
                                 const char *op)
{
    OP_REQUIRE(workspace != NULL, op);
    int64_t C = NCOLS(x1);
    int bwd = dy != NULL, g_only = bwd && kept;
    fft_shape_t s = fft_shape(be, batch, len, C, op);
    *n = s.fwd_r2c->n;
    float *buf = workspace, *spec = (float *)((char *)workspace + s.real_bytes);
    float *spec_g = spec + batch * C * mdk_fftconv_pitch(*n) * 2;   /* spec's G planes, then K */
    void *work = (char *)spec + s.spec_bytes;
    *kept_conv = kept ? (float *)((char *)kept + s.kept_spec_bytes) : NULL;
    CK(mdk_fftconv_pack(buf, x1->data, x1->ld, v->data, v->ld, bwd ? dy->data : NULL, bwd ? dy->ld : 0,
                        bwd ? x0->data : NULL, bwd ? x0->ld : 0, CF(k), batch, len, C, *n, g_only,
                        x1->dtype == MD_DTYPE_BF16, STREAM(be)),
       op);
    if (g_only)
        run_plan(s.g_r2c, buf, spec_g, work, op);
    else if (bwd)
        run_plan(s.bwd_r2c, buf, spec, work, op);
    else
        run_plan(s.fwd_r2c, buf, kept ? kept : spec, work, op);
    CK(mdk_fftconv_mul(spec, kept, bwd, batch, C, *n, STREAM(be)), op);
    if (g_only)
        run_plan(s.gk_c2r, buf, spec_g, work, op);
    else
        run_plan(bwd ? s.bwd_c2r : s.fwd_c2r, buf, spec, work, op);
    return buf;
}

static void cu_fftconv_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x0, const md_tensor_t *x1,
                           const md_tensor_t *v, const md_tensor_t *k, const md_tensor_t *D, int64_t batch,
                           void *workspace, void *spectra)
{
    const char *op = "fftconv_fwd";
    int64_t len = fftconv_check(x0, x1, v, k, D, batch, op), C = NCOLS(x0);
    act_like(y, x0, op);
    if (len * C == 0) return;
    int64_t n;
    float *conv;
    const float *buf = fft_convolve(be, x1, v, NULL, NULL, k, batch, len, workspace, spectra, &n, &conv, op);
    CK(mdk_fftconv_unpack_fwd(y->data, y->ld, conv, x0->data, x0->ld, x1->data, x1->ld, v->data, v->ld, CF(D), buf,
                              batch, len, C, n, x0->dtype == MD_DTYPE_BF16, STREAM(be)),
       op);
}

static void cu_fftconv_bwd(const md_backend_t *be, md_tensor_t *dx0, md_tensor_t *dx1, md_tensor_t *dv,
                           md_tensor_t *dk, md_tensor_t *dD, const md_tensor_t *dy, const md_tensor_t *x0,
                           const md_tensor_t *x1, const md_tensor_t *v, const md_tensor_t *k, const md_tensor_t *D,
                           int64_t batch, void *workspace, const void *spectra)
{
    const char *op = "fftconv_bwd";
    int64_t len = fftconv_check(x0, x1, v, k, D, batch, op), C = NCOLS(x0);
    act_like(dx0, x0, op);
    act_like(dx1, x0, op);
    act_like(dv, x0, op);
    act_like(dy, x0, op);
    same_shape(dk, k, op);
    OP_REQUIRE(dk->ld == C, op);
    vec(dD, C, op);
    if (len * C == 0) return;
    int64_t n;
    float *conv;
    /* read only: the mul kernel takes S and K from it and writes spec, the
     * unpack reads the convolution */
    const float *buf = fft_convolve(be, x1, v, dy, x0, k, batch, len, workspace, (float *)spectra, &n, &conv, op);
    CK(mdk_fftconv_unpack_bwd(dx0->data, dx0->ld, dx1->data, dx1->ld, dv->data, dv->ld, F(dk), F(dD), dy->data,
                              dy->ld, x0->data, x0->ld, x1->data, x1->ld, v->data, v->ld, CF(D), conv, buf, batch,
                              len, C, n, CTX(be)->scratch, SCRATCH_FLOATS, x0->dtype == MD_DTYPE_BF16, STREAM(be)),
       op);
}

void md_cuda_hyena_install(md_backend_t *be, int bf16)
{
    md_cuda_linear_install(be, bf16);
    be->bias_add = cu_bias_add;
    be->bias_bwd = cu_bias_bwd;
    be->layernorm_fwd = cu_layernorm_fwd;
    be->layernorm_bwd = cu_layernorm_bwd;
    be->gelu_fwd = cu_gelu_fwd;
    be->gelu_bwd = cu_gelu_bwd;
    be->sin_fwd = cu_sin_fwd;
    be->sin_bwd = cu_sin_bwd;
    be->hyena_modulate = cu_hyena_modulate;
    be->dwconv_fwd = cu_dwconv_fwd;
    be->dwconv_bwd = cu_dwconv_bwd;
    be->fftconv_workspace = cu_fftconv_workspace;
    be->fftconv_spectra_bytes = cu_fftconv_spectra_bytes;
    be->fftconv_fwd = cu_fftconv_fwd;
    be->fftconv_bwd = cu_fftconv_bwd;
}
