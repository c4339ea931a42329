/* The one interface the model code calls: tensors and a backend vtable.
 *
 * The model (src/nn) is written once against md_backend_t. The CPU backend
 * (src/backend/cpu) implements every op on the host with OpenMP and
 * OpenBLAS; the CUDA backend (src/backend/cuda, kernels/NAME.cu) implements the
 * same table on a GPU. The model never dereferences tensor data itself: it
 * allocates, copies, zeroes and computes only through these pointers.
 *
 * Tensors are row-major with 64-bit sizes. The only non-contiguity allowed is
 * a row stride: every op sees a tensor as a 2-D matrix of
 *   rows = product of all dimensions but the last,  cols = last dimension,
 * with consecutive rows md_tensor_t.ld elements apart (ld >= cols). That is
 * what a column slice of a wider matrix needs (the x and z halves of
 * in_proj's output; dt, B and C inside x_proj's output) and what BLAS
 * takes natively. Layouts are named at each op: (B, L, D) is batch, position,
 * channel with channel fastest; "(M, D)" is the same flattened, M = B*L.
 *
 * Dtypes: f32 trains; f64 runs the very same model code in double precision
 * for the gradient checks; bf16 is the GPU's storage dtype for activations
 * and weight copies (md_backend_t.act_dtype). Unless an op says otherwise
 * all its floating tensors share one dtype. The ops that accept bf16
 * tensors say so; no CPU op accepts bf16 (its act_dtype is f32).
 *
 * Determinism: every op gives bit-identical results for identical inputs on
 * one machine whatever the thread count. Reductions are done by a fixed
 * partition of the data (never by the thread schedule) and combined in a
 * fixed order. CPU ops called from inside an OpenMP parallel region run
 * serially on the calling thread (the model runs sequences in parallel).
 *
 * Ops never allocate. Those needing scratch take a workspace whose size the
 * caller obtains up front from the matching *_workspace query, so that a
 * model can plan every buffer before its first step.
 *
 * Gradient conventions: an op's backward WRITES the gradients of its
 * activation inputs (dx) unless the parameter `accumulate` says to add, and
 * always ADDS into parameter gradients (dw, dbias, ...), so that micro-batch
 * accumulation and tied weights work without extra copies.
 *
 * Programming errors (mismatched shapes or dtypes) are caught by the
 * backends with md_error + abort in debug builds only; ops do not return
 * status. The user-visible failures are allocation (alloc returns NULL)
 * and, on the GPU, a library or launch failing inside an op (out of
 * memory, beyond the GPU's limits, the device failing): the CUDA backend
 * then prints one error line naming the op and a size and exits with
 * status 1 (src/backend/cuda/cuda_check.h).
 */
#ifndef MD_BACKEND_OPS_H
#define MD_BACKEND_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "backend/device.h"

typedef enum {
    MD_DTYPE_F32 = 0,
    MD_DTYPE_F64 = 1,
    MD_DTYPE_BF16 = 2,   /* GPU storage only (act_dtype); no CPU op accepts it */
    MD_DTYPE_U8 = 3      /* token ids */
} md_dtype_t;

/* Bytes per element; "f32", "f64", "bf16", "u8". */
size_t md_dtype_size(md_dtype_t dt);
const char *md_dtype_name(md_dtype_t dt);

#define MD_MAX_DIMS 4

typedef struct md_tensor {
    void *data;                 /* memory of the backend's device */
    md_dtype_t dtype;
    md_device_kind_t device;
    int ndim;                   /* 1..MD_MAX_DIMS */
    int64_t shape[MD_MAX_DIMS];
    int64_t ld;                 /* row stride in elements (see above); == last dim when contiguous */
} md_tensor_t;

/* Tensor views over existing memory (no allocation). ld is set to the last
 * dimension (contiguous). */
md_tensor_t md_tensor_1d(void *data, md_dtype_t dt, md_device_kind_t dev, int64_t n0);
md_tensor_t md_tensor_2d(void *data, md_dtype_t dt, md_device_kind_t dev, int64_t n0, int64_t n1);
md_tensor_t md_tensor_3d(void *data, md_dtype_t dt, md_device_kind_t dev, int64_t n0, int64_t n1, int64_t n2);
/* Columns [c0, c0+nc) of t, keeping t's row stride: a view, no copy. */
md_tensor_t md_tensor_cols(md_tensor_t t, int64_t c0, int64_t nc);
/* The 2-D view every op takes: cols = the last dimension, rows = the
 * product of the others; consecutive rows are ld elements apart. */
static inline int64_t md_tensor_ncols(const md_tensor_t *t) { return t->shape[t->ndim - 1]; }
int64_t md_tensor_nrows(const md_tensor_t *t);
/* Elements covered, ignoring the row stride (rows * cols). */
int64_t md_tensor_numel(const md_tensor_t *t);

typedef enum { MD_COPY_H2D = 0, MD_COPY_D2H = 1, MD_COPY_D2D = 2 } md_copy_kind_t;

/* The activation fused after a Linear layer (linear_fwd). */
typedef enum { MD_ACT_NONE = 0, MD_ACT_GELU_TANH = 1 } md_act_t;

/* Hyper-parameters of one AdamW step (torch.optim.AdamW semantics):
 *   g  = grad * grad_scale                    (clip coefficient / target count)
 *   p -= lr * weight_decay * p                (decoupled; only elements < n_decay)
 *   m  = beta1 m + (1-beta1) g;   v = beta2 v + (1-beta2) g^2
 *   p -= lr * (m / (1-beta1^step)) / (sqrt(v / (1-beta2^step)) + eps)
 * step counts from 1. */
typedef struct md_adamw_hparams {
    double lr, beta1, beta2, eps, weight_decay, grad_scale;
    int64_t step;
} md_adamw_hparams_t;

typedef struct md_backend md_backend_t;

struct md_backend {
    const char *name;              /* "cpu", "cuda" */
    md_device_kind_t device;
    void *ctx;                     /* the backend's private state */
    /* The dtype in which an f32 model stores the blocks' activations
     * (Mamba, Transformer++, Hyena), their gradients and the copies of the
     * GEMM weights: f32 (0) on the CPU
     * and the fp32 CUDA table, bf16 on the bf16 CUDA table (the model asks
     * md_act_dtype and plans with it; it never looks at the device). */
    md_dtype_t act_dtype;
    /* The largest dt_rank for which the scan forms delta itself from
     * dt_proj's input and weight (delta NULL: see scan_fwd), per pass;
     * 0: never, the caller computes delta with a GEMM. _infer: scan_fwd
     * with states NULL (forward only); _train: scan_fwd with states and
     * scan_bwd. The CPU forms it in both (64); CUDA in its inference
     * forward alone (16; its training kernels read delta). Callers ask
     * md_scan_forms_delta below. */
    int64_t scan_max_dt_rank_infer, scan_max_dt_rank_train;

    /* ---- memory ---- */
    /* Returns NULL (no message) when the device is out of memory. Memory is
     * aligned to at least 64 bytes. */
    void *(*alloc)(const md_backend_t *be, size_t bytes);
    void (*free)(const md_backend_t *be, void *p);
    void (*memset0)(const md_backend_t *be, void *p, size_t bytes);
    void (*copy)(const md_backend_t *be, void *dst, const void *src, size_t bytes, md_copy_kind_t kind);
    /* Waits for all queued work (a no-op on the CPU). */
    void (*sync)(const md_backend_t *be);
    /* dst = src elementwise between dtypes (f32 -> bf16 rounds to nearest
     * even; bf16 -> f32 is exact); (rows, cols) views of the same shape,
     * row-strided allowed, no overlap. NULL on the CPU (no bf16 there):
     * the model calls it only where md_act_dtype differs from its dtype
     * (the bf16 weight copies; the residual stream's gradient before a
     * bf16 GEMM). */
    void (*convert)(const md_backend_t *be, md_tensor_t *dst, const md_tensor_t *src);

    /* ---- dense algebra ---- */
    /* c = alpha * op(a) @ op(b) + beta * c, op(x) = x or x^T by trans_*.
     * All three are 2-D (rows, cols) views with their own ld; beta = 0
     * ignores c's previous contents (NaN included). The CPU splits c into
     * fixed blocks of rows (or columns) over its threads, one
     * single-threaded BLAS call each. CUDA also takes bf16 a and b (both),
     * with c bf16 or f32: fp32 accumulation, c rounded once at the end. */
    void (*gemm)(const md_backend_t *be, int trans_a, int trans_b, double alpha, const md_tensor_t *a,
                 const md_tensor_t *b, double beta, md_tensor_t *c);
    /* The backward of a Linear without bias whose input has few columns
     * (the Mamba block's dt_proj: R = dt_rank): dx (M, R) = dy w and
     * dw (E, R) += dy^T x, given dy (M, E), x (M, R), w (E, R); all
     * row-strided views (x and dx typically column slices of x_proj's
     * output and its gradient) but dw, contiguous. dx is written (beta 0:
     * its old contents, NaN included, are ignored), dw accumulates. dx
     * aliases none of the others; dw aliases nothing. The CPU calls
     * gemm(0,0, dy, w, 0, dx) then gemm(1,0, dy, x, 1, dw): the same bits.
     * CUDA: dy, x, w and dx all bf16 or all f32 (dw f32); with bf16, R 8
     * or 16 and E 256 or 512 (the Mamba presets' dt_proj), one
     * tensor-core pass over dy (kernels/lowrank_bwd.cu: fp32 sums in
     * another order than cuBLAS's, in a fixed one), else the same two gemm
     * calls. */
    void (*lowrank_bwd)(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, const md_tensor_t *dy,
                        const md_tensor_t *x, const md_tensor_t *w);
    /* The Mamba block's x_proj then dt_proj, forward: xdbl (M, J) = u
     * w_x^T and delta (M, E) = xdbl[:, :R] w_dt^T, given u (M, E), w_x (J,
     * E), w_dt (E, R), R <= J; all row-strided views. xdbl and delta are
     * written (beta 0) and alias nothing; delta reads xdbl's first R
     * columns as stored (rounded to xdbl's dtype). The CPU calls gemm(0,1,
     * u, w_x, 0, xdbl) then gemm(0,1, xdbl[:, :R], w_dt, 0, delta): the
     * same bits. CUDA: with bf16 operands, E 256 and R 8, J 40 (d_model
     * 128) or R 16, J 48, one tensor-core pass that keeps xdbl's
     * first columns on chip (kernels/x_dt_proj.cu: fp32 sums in another
     * order than cuBLAS's), else the same two gemm calls. */
    void (*x_dt_proj_fwd)(const md_backend_t *be, md_tensor_t *xdbl, md_tensor_t *delta, const md_tensor_t *u,
                          const md_tensor_t *w_x, const md_tensor_t *w_dt);
    /* y += x (same shape), elementwise; both may be row-strided. */
    void (*add)(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x);
    /* x *= alpha over a contiguous tensor. */
    void (*scale)(const md_backend_t *be, md_tensor_t *x, double alpha);
    /* Sum of squares over a contiguous tensor, accumulated in double in fixed
     * blocks whose size depends only on the element count. For the global
     * gradient norm. */
    double (*sumsq)(const md_backend_t *be, const md_tensor_t *x);
    /* One AdamW step over flat contiguous buffers of n elements (param, grad,
     * m, v share the dtype); elements [0, n_decay) take weight decay. */
    void (*adamw)(const md_backend_t *be, md_tensor_t *param, const md_tensor_t *grad, md_tensor_t *m,
                  md_tensor_t *v, int64_t n_decay, const md_adamw_hparams_t *hp);

    /* ---- embedding ---- */
    /* out (M, D) row m = weight (V, D) row tokens[m]; tokens: u8 (M), ids < V. */
    void (*embedding_fwd)(const md_backend_t *be, md_tensor_t *out, const md_tensor_t *tokens,
                          const md_tensor_t *weight);
    /* dweight (V, D) += sum over m with tokens[m] = v of dout (M, D) row m. */
    void (*embedding_bwd)(const md_backend_t *be, md_tensor_t *dweight, const md_tensor_t *dout,
                          const md_tensor_t *tokens);

    /* ---- RMSNorm over the last dimension ---- */
    /* y (M, D) = x * rstd * w, rstd (M) = 1/sqrt(mean(x^2) + eps) is saved
     * for the backward. rstd is always f32 for f32 x (f64 for f64 x).
     * CUDA: y may be bf16 (x, w, rstd f32), here and in add_rmsnorm_fwd. */
    void (*rmsnorm_fwd)(const md_backend_t *be, md_tensor_t *y, md_tensor_t *rstd, const md_tensor_t *x,
                        const md_tensor_t *w, double eps);
    /* dx (M, D) (= or += by accumulate) and dw (D) += from dy (M, D).
     * CUDA: dy may be bf16 (the others f32). dx_act: NULL, or an (M, D)
     * view that also receives dx's final values, in its own dtype (the
     * model's activation dtype: bf16 on the bf16 CUDA table, rounded to
     * nearest even as convert does; dx's dtype on the CPU): the copy a
     * bf16 GEMM reads, without a convert pass of its own. It aliases
     * nothing else. */
    void (*rmsnorm_bwd)(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, const md_tensor_t *dy,
                        const md_tensor_t *x, const md_tensor_t *w, const md_tensor_t *rstd, int accumulate,
                        md_tensor_t *dx_act);
    /* The residual add fused with the RMSNorm that follows it (prenorm
     * blocks: h = h + branch; y = norm(h)): h_out (M, D) = h_in + x_add, then
     * y and rstd as rmsnorm_fwd(y, rstd, h_out, w, eps) (on the CPU the
     * same bits as add then rmsnorm_fwd), in one pass over the rows. h_out may
     * alias h_in or x_add (the residual stream updated in place); y aliases
     * none of them. The backward needs no op of its own: d h_in = d x_add =
     * d h_out, to which rmsnorm_bwd(dx = that gradient, x = h_out,
     * accumulate = 1) adds the norm's part in its one pass. */
    void (*add_rmsnorm_fwd)(const md_backend_t *be, md_tensor_t *h_out, md_tensor_t *y, md_tensor_t *rstd,
                            const md_tensor_t *h_in, const md_tensor_t *x_add, const md_tensor_t *w, double eps);
    /* A Linear fused with the residual add and the RMSNorm after it (the
     * Mamba block's out_proj and the next block's prenorm, inference):
     * h_out (M, D) = h_in + x w^T, x (M, K), w (D, K), then y and rstd as
     * rmsnorm_fwd(y, rstd, h_out, nw, eps). h_out and y alias nothing (each
     * other, x, h_in). The CPU composes gemm (beta 0, into h_out) and
     * add_rmsnorm_fwd(h_out, y, rstd, h_out, h_in): the same bits as the
     * unfused block end. CUDA: x and w bf16 (both), y bf16 or f32 (h_in,
     * h_out, rstd, nw f32); one tensor-core kernel where D is a multiple of
     * 16 up to 256 and w fits in shared memory
     * (kernels/linear_add_rmsnorm.cu: the sums in another order than
     * gemm's and rmsnorm_fwd's), else (and for f32 x) the table's gemm and
     * add_rmsnorm_fwd as the CPU composes them. */
    void (*linear_add_rmsnorm_fwd)(const md_backend_t *be, md_tensor_t *h_out, md_tensor_t *y, md_tensor_t *rstd,
                                   const md_tensor_t *x, const md_tensor_t *w, const md_tensor_t *h_in,
                                   const md_tensor_t *nw, double eps);

    /* ---- depthwise causal conv1d + SiLU, (B, L, E) layout ---- */
    /* y[b,t,e] = silu(bias[e] + sum_k w[e,k] x[b,t-K+1+k,e]), x taken as 0
     * before t = 0. x and y are (B*L, E) views (row-strided allowed), w is
     * (E, K) (HF's [E,1,K] squeezed), bias (E). batch = B. CUDA: x and y
     * (and in the backward dx, dy) may be bf16, all four alike; w, bias and
     * their gradients stay f32. */
    void (*conv1d_silu_fwd)(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x, const md_tensor_t *w,
                            const md_tensor_t *bias, int64_t batch);
    /* Recomputes the pre-activation from x; dx is written, dw/dbias added. */
    void (*conv1d_silu_bwd)(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, md_tensor_t *dbias,
                            const md_tensor_t *dy, const md_tensor_t *x, const md_tensor_t *w,
                            const md_tensor_t *bias, int64_t batch);
    /* The Mamba block's in_proj and conv1d + SiLU in one, for the forward
     * whose x is never needed again (inference): with x and z the halves
     * of xz (M, 2E) = hn (M, d) w_in^T (w_in (2E, d), in_proj's weight),
     * writes z into xz's columns [E, 2E) and u (M, E) = conv1d_silu_fwd(x)
     * (w, bias, batch as there). xz's columns [0, E) are the op's scratch:
     * the backend may leave x there (the CPU does) or never write them
     * (CUDA). Numerics: as gemm into xz then conv1d_silu_fwd, x rounded to
     * xz's dtype before the conv; a fused kernel differs only by the
     * product's accumulation order (the CPU composes those two ops: the
     * same bits). Returns 1 when done, 0 when this backend does not take
     * these shapes (nothing written: the caller runs gemm and
     * conv1d_silu_fwd itself). CUDA takes bf16 hn, w_in, xz and u only,
     * for the shapes and batch sizes its kernel covers
     * (kernels/backend_kernels.h, mdk_in_proj_conv_takes). u, xz, hn and
     * w_in must not overlap. NULL: as 0 always (a table may leave it out;
     * tests clear it to run the unfused ops). */
    int (*in_proj_conv_fwd)(const md_backend_t *be, md_tensor_t *u, md_tensor_t *xz, const md_tensor_t *hn,
                            const md_tensor_t *w_in, const md_tensor_t *w, const md_tensor_t *bias, int64_t batch);

    /* ---- the selective scan (S6), fused as mamba_ssm's selective_scan_fn
     *      with delta_softplus=True, delta_bias, D and z ---- */
    /* All sequence tensors are (B*L, ·) views in (B, L, ·) layout, row-strided
     * allowed: u, delta, z, y (B*L, E); Bm, Cm (B*L, N). A_log (E, N),
     * D (E), dt_bias (E).
     *   dt = softplus(delta + dt_bias)     (softplus(x) = x for x > 20)
     * delta NULL (only where md_scan_forms_delta(be, R, states == NULL),
     * and for scan_bwd where md_scan_forms_delta(be, R, 0)): formed from
     * dt_low (B*L, R), dt_proj's input (row-strided allowed), and dt_w
     * (E, R) contiguous, dt_proj's weight, as
     *   delta[t, e] = sum_r dt_w[e, r] dt_low[t, r]   (r ascending)
     * and never stored: the forward and the backward each form it again.
     * dt_low and dt_w are ignored (may be NULL) when delta is given.
     *   A  = -exp(A_log)
     *   h_t = exp(dt_t A) h_{t-1} + dt_t Bm_t u_t,  h_{-1} = 0   (per channel, N states)
     *   y_t = (Cm_t . h_t + D u_t) * silu(z_t)
     * states: scan_states_size bytes where the forward leaves what the
     * backward needs to rebuild the states cheaply (the CPU: the state
     * entering every ~sqrt(L)-step segment; CUDA: the fp32 state entering
     * every 128-step chunk; the layout is the backend's). The size also
     * covers the forward's scratch: the CUDA forward needs some when L > 128
     * and keeps the states at its start, so one query plans both and
     * scan_fwd keeps no separate workspace argument. states ==
     * NULL: forward only, nothing kept (the CPU's backward then recomputes
     * the states; CUDA's forward walks each sequence in one pass, with
     * B x E lanes of parallelism instead of B x E x L/128: for inference
     * over many sequences). The model passes NULL only when planned for
     * inference (model.h). y NULL (only with states): the states alone,
     * for a backward that writes y itself (scan_bwd's y); CUDA then skips
     * its chunked forward's output pass. CUDA: the
     * sequence tensors (u, delta, z, Bm, Cm, y, and in the backward dy and
     * du, ddelta, dz, dBm, dCm) may be bf16, all of them alike; A_log, D,
     * dt_bias, their gradients and the states stay f32 (sums are fp32).
     * seg_states: NULL, or (with states, where scan_seg_states_size is not
     * 0) scan_seg_states_size bytes where the forward also leaves the state
     * entering every few steps, which a scan_bwd given the same buffer
     * reads instead of walking to them: CUDA's backward 10-13% faster, for
     * 8 bytes per channel and step (N <= 16; 16 above), 16x its chunk
     * states. The backward's bits do not depend on it. */
    void (*scan_fwd)(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *u, const md_tensor_t *delta,
                     const md_tensor_t *dt_low, const md_tensor_t *dt_w, const md_tensor_t *dt_bias,
                     const md_tensor_t *A_log, const md_tensor_t *Bm,
                     const md_tensor_t *Cm, const md_tensor_t *D, const md_tensor_t *z, int64_t batch,
                     void *states, void *seg_states);
    /* Bytes of the forward's states buffer and of scan_bwd's workspace for
     * these sizes and dtype; each is enough for any smaller batch and len. */
    size_t (*scan_states_size)(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                               int64_t d_inner, int64_t d_state);
    /* The leading bytes of that buffer which scan_bwd reads; the rest is
     * the forward's scratch, dead once scan_fwd returns, so a copy of
     * these bytes serves the backward as the states, and a buffer may
     * keep several forwards' states this far apart as long as each
     * forward has its whole scan_states_size from where it starts (the
     * later states are then written after it). The CPU's buffer is all
     * states (= scan_states_size); CUDA's, the chunk-start states. */
    size_t (*scan_states_kept_size)(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                    int64_t d_inner, int64_t d_state);
    size_t (*scan_bwd_workspace)(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                 int64_t d_inner, int64_t d_state);
    /* Bytes of scan_fwd's seg_states for these sizes; 0 (or the function
     * NULL): the backend keeps none (the CPU, whose states are already one
     * per ~sqrt(L)-step segment). */
    size_t (*scan_seg_states_size)(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                   int64_t d_inner, int64_t d_state);
    /* Writes du, ddelta, dBm, dCm, dz (same layouts as their inputs); adds
     * into dA_log, dD, ddt_bias. The states h_t are recomputed, segment by
     * segment in reverse, from `states` as left by scan_fwd on the same
     * inputs (or, when states is NULL, from a first forward pass of its
     * own); memory O(sqrt(L)) per channel, not O(L). ddelta may be delta
     * itself (the same view: each element is read before its gradient is
     * written over it, which lets the model drop a buffer); no other output
     * may overlap an input. delta NULL: formed from dt_low and dt_w as in
     * scan_fwd; ddelta is still written (for dt_proj's backward products).
     * y: NULL, or (M, E) of the sequence dtype, row-strided allowed, that
     * receives the forward's output y_t again, the bits scan_fwd writes for
     * the same inputs: the backward forms C . h_t + D u_t for dz anyway,
     * so a caller that recomputes its forward can leave y to the backward
     * (scan_fwd with y NULL) and pay a store instead of a walk. y may be dy
     * itself (the same view, as ddelta over delta); it overlaps nothing
     * else. seg_states: NULL, or the forward's (scan_fwd). */
    void (*scan_bwd)(const md_backend_t *be, md_tensor_t *du, md_tensor_t *ddelta, md_tensor_t *dA_log,
                     md_tensor_t *dBm, md_tensor_t *dCm, md_tensor_t *dD, md_tensor_t *dz,
                     md_tensor_t *ddt_bias, md_tensor_t *y, const md_tensor_t *dy, const md_tensor_t *u,
                     const md_tensor_t *delta, const md_tensor_t *dt_low, const md_tensor_t *dt_w,
                     const md_tensor_t *dt_bias, const md_tensor_t *A_log, const md_tensor_t *Bm,
                     const md_tensor_t *Cm, const md_tensor_t *D, const md_tensor_t *z, int64_t batch,
                     const void *states, const void *seg_states, void *workspace);

    /* ---- cross-entropy over logits (M, V) ---- */
    /* Targets u8 (M); a row counts only when md_tok_is_base(target) (A, C,
     * G, T), all others (N, PAD, specials) add nothing and get zero gradient.
     * Returns the loss SUM over counted rows (natural log, accumulated in
     * double in a fixed order) and sets *n_counted. When dlogits is not NULL
     * it is written (not added) with grad_scale * d(loss sum)/d(logits).
     * Workspace: xent_workspace(M) bytes. */
    size_t (*xent_workspace)(const md_backend_t *be, int64_t rows);
    double (*xent)(const md_backend_t *be, md_tensor_t *dlogits, const md_tensor_t *logits,
                   const md_tensor_t *targets, double grad_scale, int64_t *n_counted, void *workspace);
    /* xent that ADDS the loss sum and the count (as a double) to acc[0]
     * and acc[1], two doubles of the backend's device memory, instead of
     * returning them: on a GPU nothing waits for the result, so that the
     * micro-batches of a training step can be queued, or captured into a
     * graph (backend/devstep.h), without a copy to the host each. The same
     * bits as acc[0] += xent(...), acc[1] += *n_counted. */
    void (*xent_acc)(const md_backend_t *be, md_tensor_t *dlogits, const md_tensor_t *logits,
                     const md_tensor_t *targets, double grad_scale, double *acc, void *workspace);

    /* ================= Transformer (Transformer++ blocks) =================
     * Entries a backend lacks are NULL; the model refuses the transformer
     * architecture on such a backend with one error line.
     *
     * Layout: q, k, v, o and their gradients are (B*L, H*dh) views in
     * (B, L, H, dh) layout -- head h of token t is columns [h dh, (h+1) dh)
     * of row t -- row-strided allowed, so q, k and v may be column slices of
     * one (B*L, 3 H dh) projection. batch = B, n_heads = H; L = rows / B.
     */
    /* RoPE in place, HF Llama's rotate_half convention (CUDA: x may be
     * bf16): within each head,
     * for i < dh/2 and position t (the row's index within its sequence),
     *   a = t * theta^(-2i/dh);
     *   (x_i, x_{i+dh/2}) <- (x_i cos a - x_{i+dh/2} sin a, x_{i+dh/2} cos a + x_i sin a).
     * inverse = 1 rotates by -a: the backward (the rotation is orthogonal). */
    void (*rope)(const md_backend_t *be, md_tensor_t *x, int64_t batch, int64_t n_heads, double theta,
                 int inverse);
    /* Causal multi-head attention, per sequence and head:
     *   o_t = sum_{s <= t} softmax_s(scale q_t . k_s) v_s
     * computed flash-style (tiles of queries and keys, online softmax); the
     * L x L matrix is never formed. lse (B, H, L) contiguous receives the
     * natural-log sum of exp(scale q_t . k_s) over s <= t, for the backward
     * (same dtype as q on the CPU). workspace: attention_workspace bytes
     * (the GPU's tensor-core kernels keep bf16 copies of q, k, v there).
     * CUDA: q, k, v, o (and in the backward dq, dk, dv, dout) may be bf16,
     * all alike; lse stays f32. */
    void (*attention_fwd)(const md_backend_t *be, md_tensor_t *o, md_tensor_t *lse, const md_tensor_t *q,
                          const md_tensor_t *k, const md_tensor_t *v, int64_t batch, int64_t n_heads, double scale,
                          void *workspace);
    /* Bytes of attention_fwd's and attention_bwd's workspace for these
     * sizes (enough for any smaller batch and len); the workspace pointer
     * must be 16-byte aligned. */
    size_t (*attention_workspace)(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                  int64_t n_heads, int64_t head_dim);
    /* Writes dq, dk, dv from do, recomputing the probabilities tile by tile
     * from q, k and the forward's lse; o is the forward's output (for
     * rowsum(do * o)). dq, dk, dv must not overlap the inputs (CUDA reads
     * bf16 inputs in place while it writes them). */
    void (*attention_bwd)(const md_backend_t *be, md_tensor_t *dq, md_tensor_t *dk, md_tensor_t *dv,
                          const md_tensor_t *dout, const md_tensor_t *q, const md_tensor_t *k, const md_tensor_t *v,
                          const md_tensor_t *o, const md_tensor_t *lse, int64_t batch, int64_t n_heads,
                          double scale, void *workspace);
    /* SwiGLU: y = silu(gate) * up, all (M, F) views (row-strided allowed).
     * CUDA: the tensors of either call may be bf16, all alike. */
    void (*swiglu_fwd)(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *gate, const md_tensor_t *up);
    /* Writes dgate = dy * up * silu'(gate) and dup = dy * silu(gate). */
    void (*swiglu_bwd)(const md_backend_t *be, md_tensor_t *dgate, md_tensor_t *dup, const md_tensor_t *dy,
                       const md_tensor_t *gate, const md_tensor_t *up);
    /* ================= end of the Transformer section ================= */

    /* ================= Hyena (HyenaDNA operator, order 2) =================
     * Entries a backend lacks are NULL; the model refuses the hyena
     * architecture on such a backend with one error line (as for the
     * Transformer section). All (M, C) tensors are views in (B, L, C) layout,
     * row-strided allowed, M = batch * L. CUDA takes the activations in
     * bf16 where an op says so (the bf16 table's storage): the tensors an
     * op names as bf16-capable then share one dtype, f32 or bf16;
     * parameters, their gradients, statistics and the filter (k, dk) are
     * f32 always.
     */
    /* y (M, C) += bias (C) on every row. CUDA: y and bias may be bf16
     * (both). */
    void (*bias_add)(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *bias);
    /* dbias (C) += column sums of dy (M, C), summed over a fixed partition
     * of the rows whatever the thread count (the Linear layers' bias
     * gradients). CUDA: dy may be bf16. */
    void (*bias_bwd)(const md_backend_t *be, md_tensor_t *dbias, const md_tensor_t *dy);
    /* LayerNorm over the last dimension (torch.nn.LayerNorm, biased
     * variance): y = (x - mean) * rstd * w + b; mean and rstd (M) are saved
     * for the backward (f32 for f32 x, f64 for f64 x). CUDA: y may be bf16
     * (x f32). */
    void (*layernorm_fwd)(const md_backend_t *be, md_tensor_t *y, md_tensor_t *mean, md_tensor_t *rstd,
                          const md_tensor_t *x, const md_tensor_t *w, const md_tensor_t *b, double eps);
    /* dx (= or += by accumulate); dw and db added. CUDA: dy may be bf16
     * (x, dx f32). */
    void (*layernorm_bwd)(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, md_tensor_t *db,
                          const md_tensor_t *dy, const md_tensor_t *x, const md_tensor_t *w,
                          const md_tensor_t *mean, const md_tensor_t *rstd, int accumulate);
    /* GELU in its tanh form, as HyenaDNA's MLP (F.gelu(approximate='tanh')):
     *   y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)));
     * y may alias x. The backward writes dx = dy * gelu'(x) (the derivative
     * of this tanh form); dx may alias dy. CUDA: x, y (dx, dy) may be bf16,
     * all alike. */
    void (*gelu_fwd)(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x);
    void (*gelu_bwd)(const md_backend_t *be, md_tensor_t *dx, const md_tensor_t *dy, const md_tensor_t *x);
    /* Sine activation with a trainable frequency per column (HyenaDNA's Sin):
     * y[m, c] = sin(freq[c] * x[m, c]); y may alias x. The backward writes
     * dx = dy * freq cos(freq x) (dx may alias dy) and adds
     * dfreq[c] += sum_m dy x cos(freq x) (fixed row partition); dbias, NULL
     * or (C): += the column sums of dx, as bias_bwd(dbias, dx) would add
     * them (the bias gradient of the Linear before the sine, in the same
     * pass on CUDA). */
    void (*sin_fwd)(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x, const md_tensor_t *freq);
    void (*sin_bwd)(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dfreq, md_tensor_t *dbias,
                    const md_tensor_t *dy, const md_tensor_t *x, const md_tensor_t *freq);
    /* HyenaDNA's ExponentialModulation, in place on a filter k (L, C),
     * contiguous, whose row l is position l of a filter of length l_max:
     *   k[l, c] *= exp(-t_l |delta_c|),  t_l = l / (l_max - 1)  (0 when l_max = 1),
     *   delta_c = linspace(ln(target)/slow_pct, ln(target)/fast_pct, C)[c]
     * (HyenaDNA: target 1e-2, fast_pct 0.3, slow_pct 1.5). Linear in k, so
     * the backward is the same call on dk. */
    void (*hyena_modulate)(const md_backend_t *be, md_tensor_t *k, int64_t l_max, double target, double fast_pct,
                           double slow_pct);
    /* Depthwise causal conv1d with bias and no activation (the Hyena short
     * filter): y[b,t,c] = bias[c] + sum_j w[c,j] x[b,t-K+1+j,c], x taken as 0
     * before t = 0; w (C, K), bias (C); x, y (B*L, C) views, y not aliasing
     * x. The backward writes dx and adds dw, dbias. CUDA: x, y (dx, dy) may
     * be bf16, all alike; w, bias and their gradients f32. */
    void (*dwconv_fwd)(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x, const md_tensor_t *w,
                       const md_tensor_t *bias, int64_t batch);
    void (*dwconv_bwd)(const md_backend_t *be, md_tensor_t *dx, md_tensor_t *dw, md_tensor_t *dbias,
                       const md_tensor_t *dy, const md_tensor_t *x, const md_tensor_t *w, int64_t batch);
    /* The gated long convolution of the order-2 Hyena operator, per
     * sequence b and channel c, with s = x1 * v:
     *   y[b,t,c] = x0[b,t,c] * ( sum_{j<=t} k[j,c] s[b,t-j,c]  +  D[c] s[b,t,c] )
     * x0, x1, v, y: (B*L, C) views (x0, x1, v typically column slices of one
     * (M, 3C) matrix); k (L, C) contiguous: the first L rows of the filter;
     * D (C). The convolution goes through real FFTs of size 2L (zero padded,
     * so nothing wraps around), in fp32 or better, whatever the backend's
     * precision. Workspace: fftconv_workspace bytes for these sizes (enough
     * for any smaller batch and len); FFT plans are made once per shape and
     * kept by the backend, and use this workspace rather than allocating.
     * CUDA: x0, x1, v, y (and in the backward dy, dx0, dx1, dv) may be
     * bf16, all alike; k, dk, D, dD and the transforms are f32.
     *
     * Spectra kept for the backward: fftconv_spectra_bytes is the size of
     * what the forward keeps that the backward can reuse instead of redoing
     * it (CUDA: the transforms of s and k and the convolution itself; 0: the
     * backend keeps none and ignores the spectra arguments; CPU).
     * fftconv_fwd writes them to `spectra` when it is not NULL; fftconv_bwd
     * reads them from `spectra` when it is not NULL (then they must be what
     * fftconv_fwd wrote for the same x1, v, k and batch, unchanged since),
     * else transforms s and k again. The buffer is not the workspace's: it
     * lives from the forward to the backward. */
    size_t (*fftconv_workspace)(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                int64_t channels);
    size_t (*fftconv_spectra_bytes)(const md_backend_t *be, int64_t batch, int64_t len, int64_t channels);
    void (*fftconv_fwd)(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *x0, const md_tensor_t *x1,
                        const md_tensor_t *v, const md_tensor_t *k, const md_tensor_t *D, int64_t batch,
                        void *workspace, void *spectra);
    /* Writes dx0, dx1, dv (views like their inputs; they may be column
     * slices of one matrix) and adds dk (L, C) (summed over the batch) and
     * dD (C), from dy; recomputes the convolution from x1, v and k (or
     * their kept spectra). */
    void (*fftconv_bwd)(const md_backend_t *be, md_tensor_t *dx0, md_tensor_t *dx1, md_tensor_t *dv,
                        md_tensor_t *dk, md_tensor_t *dD, const md_tensor_t *dy, const md_tensor_t *x0,
                        const md_tensor_t *x1, const md_tensor_t *v, const md_tensor_t *k, const md_tensor_t *D,
                        int64_t batch, void *workspace, const void *spectra);
    /* A Linear layer (torch.nn.Linear, weight w (N, K)) with what follows
     * its product fused in, where the backend can (cuBLASLt epilogues on
     * CUDA):
     *   pre = x w^T [+ bias] [+ residual],   y = act(pre)
     * x (M, K), y (M, N), bias NULL (none) or (N); residual NULL or (M, N),
     * which may alias y (the residual stream updated in place) but not x;
     * without an alias it is the product's C operand, so that y = residual +
     * x w^T costs no copy (Transformer++'s residual adds). act MD_ACT_NONE:
     * y = pre and pre_act is NULL. MD_ACT_GELU_TANH (gelu_fwd's tanh form):
     * pre is also written to pre_act (M, N) for the backward; residual must
     * be NULL; pre_act aliases neither x nor y. All row-strided views. The
     * CPU composes its own ops (row copy of the residual, gemm with beta 1,
     * bias_add where there is a bias, gelu_fwd): the same bits as calling
     * them. CUDA: x and w may be bf16 (both); y then too, with bias,
     * residual and pre_act of y's dtype (an f32 y keeps an f32 bias and
     * residual). */
    void (*linear_fwd)(const md_backend_t *be, md_tensor_t *y, md_tensor_t *pre_act, const md_tensor_t *x,
                       const md_tensor_t *w, const md_tensor_t *bias, const md_tensor_t *residual, md_act_t act);
    /* The input gradient of the Linear that produced pre_act, through the
     * activation that followed it: dx (M, K) = act'(pre_act) * (dy w), dy
     * (M, N), w (N, K); MD_ACT_NONE: dx = dy w and pre_act is NULL;
     * MD_ACT_GELU_TANH: pre_act (M, K) is the pre-activation saved by
     * linear_fwd (gelu_bwd's derivative). dx aliases nothing. CUDA: bf16 as
     * gemm takes it, pre_act of dx's dtype. Both
     * backends compose gemm and gelu_bwd (the same bits as calling them;
     * cuBLASLt's DGELU epilogue measured slower on the H200). The bias and weight
     * gradients stay with bias_bwd and gemm (deterministic column sums). */
    void (*linear_bwd_dx)(const md_backend_t *be, md_tensor_t *dx, const md_tensor_t *dy, const md_tensor_t *w,
                          const md_tensor_t *pre_act, md_act_t act);
    /* ================= end of the Hyena section ================= */
};

/* The dtype a model of dtype dt stores its activations in on be: be's
 * act_dtype for an f32 model, dt itself otherwise (f64 stays f64). */
static inline md_dtype_t md_act_dtype(const md_backend_t *be, md_dtype_t dt)
{
    return dt == MD_DTYPE_F32 ? be->act_dtype : dt;
}

/* Whether be's scan forms delta itself (delta NULL) for dt_rank in the
 * forward only (scan_fwd with states NULL) or in training (scan_fwd with
 * states, and scan_bwd): the one place that reads scan_max_dt_rank_*. */
static inline int md_scan_forms_delta(const md_backend_t *be, int64_t dt_rank, int forward_only)
{
    return dt_rank <= (forward_only ? be->scan_max_dt_rank_infer : be->scan_max_dt_rank_train);
}

/* The CPU backend (a static table; it owns no state). */
const md_backend_t *md_backend_cpu(void);

/* The CUDA backend on GPU `ordinal` (created on first use, then shared;
 * it makes that GPU current). Returns NULL after one md_error line when the
 * GPU does not exist, cuBLAS cannot start, its scratch does not fit or the
 * test knob MD_CUDA_FAULT is malformed (src/backend/cuda/cuda_check.h), and
 * always in a build without CUDA. f32 tensors only. Same as
 * md_backend_cuda_ex(ordinal, MD_PRECISION_FP32). */
const md_backend_t *md_backend_cuda(int ordinal);

/* Arithmetic precision of a backend's matrix products and storage.
 *   fp32: fp32 operands and accumulation (cuBLAS without TF32), as the CPU.
 *   bf16: act_dtype is bf16: the Mamba block keeps its activations (hn, xz,
 *         u, xdbl, delta, y) and their gradients in bf16, and so do the
 *         Transformer++ block (hn, qkv, o, gate/up, SwiGLU's output:
 *         transformer.h) and the Hyena block (its per-token tensors:
 *         hyena.c); their GEMMs read
 *         bf16 copies of the weights (fp32 accumulation on the tensor
 *         cores). f32 operands given to gemm are rounded to bf16 inside
 *         cuBLAS (CUBLAS_COMPUTE_32F_FAST_16BF). Master weights, parameter
 *         gradients, optimizer moments, A_log, D, the dt bias, the residual
 *         stream and its gradient, norm statistics, attention's lse, scan
 *         states and the loss stay fp32. CUDA only. */
typedef enum { MD_PRECISION_FP32 = 0, MD_PRECISION_BF16 = 1 } md_precision_t;
/* "fp32" or "bf16"; returns 0, or -1 after one error line naming `opt`. */
int md_precision_parse(const char *opt, const char *s, md_precision_t *prec);
const char *md_precision_name(md_precision_t prec);
/* The CUDA backend with this precision (a table of its own, named "cuda" or
 * "cuda-bf16", sharing the GPU's state with the other). */
const md_backend_t *md_backend_cuda_ex(int ordinal, md_precision_t prec);
/* The backend a command runs on: the CPU's for a CPU device (bf16 is then
 * an error naming --precision), else md_backend_cuda_ex. NULL after one
 * error line. */
const md_backend_t *md_backend_for_device(const md_device_t *dev, md_precision_t prec);
/* Peak bytes of GPU memory taken through be->alloc (plus the backend's own
 * scratch) since creation or the last md_cuda_reset_peak; 0 for a non-CUDA
 * backend. cuBLAS's internal workspace is not included. */
size_t md_cuda_peak_bytes(const md_backend_t *be);
void md_cuda_reset_peak(const md_backend_t *be);

/* Sets the OpenMP threads the CPU ops use (0 = all cores), the same as
 * omp_set_num_threads. OpenBLAS is kept single-threaded: the gemm op splits
 * its output into fixed blocks over the OpenMP threads itself, so only one
 * thread pool is ever active and the results do not depend on the count. */
void md_cpu_set_threads(int n);

/* Per-op wall-clock accounting of the CPU backend, for benchmarks: while
 * enabled every op adds its time to a per-op total. md_cpu_profile_report
 * logs the totals (md_info) and clears them. Off by default; costs two
 * clock reads per op when on. */
void md_cpu_profile_enable(int on);
void md_cpu_profile_report(void);

#endif
