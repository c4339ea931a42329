/* The CUDA kernels behind the CUDA backend's vtable (src/backend/cuda), one
 * .cu file per op family; the selective scan has its own API (scan_api.h).
 *
 * Math, layouts and gradient conventions are those of backend/ops.h; all
 * tensors here are fp32 device pointers, 2-D views take a row stride ld
 * (elements, 64-bit), except where a launcher's name ends in _bf16: its
 * void pointers are bf16 (__nv_bfloat16) storage, its float ones fp32. Every launcher queues work on `stream` and returns
 * the launch error (cudaGetLastError), never synchronising.
 *
 * Determinism: no float atomics. Every sum over rows (parameter gradients,
 * the loss, the squared norm) is taken over a fixed partition of the rows
 * that depends only on the sizes: per-slice partials go to a caller-given
 * scratch, and a second kernel adds the slices in slice order. So
 * identical inputs give bit-identical outputs on one GPU model.
 */
#ifndef MD_KERNELS_BACKEND_KERNELS_H
#define MD_KERNELS_BACKEND_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Row slices of a column reduction over `rows` rows of `cols` columns,
 * given room for `scratch_floats` partials: at most 1024, at least 1, and
 * slices * cols * width <= scratch_floats (width = floats per column). */
int64_t mdk_reduce_slices(int64_t rows, int64_t cols_times_width, size_t scratch_floats);

/* ---- elementwise.cu ---- */
/* y += x, (rows, cols) views */
cudaError_t mdk_add(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows, int64_t cols,
                    cudaStream_t s);
/* x[i] *= alpha (alpha rounded to float first, as the CPU does) */
cudaError_t mdk_scale(float *x, int64_t n, double alpha, cudaStream_t s);
/* sum of x[i]^2 in double into *out (device), using scratch of
 * mdk_sumsq_scratch_bytes() */
size_t mdk_sumsq_scratch_bytes(void);
cudaError_t mdk_sumsq(const float *x, int64_t n, double *out, void *scratch, cudaStream_t s);
/* one AdamW step over [0, n); decay_mul applies to [0, n_decay) */
cudaError_t mdk_adamw(float *p, const float *g, float *m, float *v, int64_t n, int64_t n_decay, float decay_mul,
                      float b1, float b2, float gs, float step_size, float bc2_sqrt, float eps, cudaStream_t s);
/* The scalars of one optimizer step kept on the device (src/backend/
 * devstep.h): what the host sets before the step, and what the step
 * computes from the gradient, the host reading it back after. */
typedef struct mdk_step_block {
    /* set by the host */
    double clip;                     /* gradient-norm limit; <= 0: off */
    float decay_mul, b1, b2, step_size, bc2_sqrt, eps;   /* mdk_adamw's, as cu_adamw rounds them */
    int poison;                      /* test hook: the gradient's first element made NaN (trainguard.h) */
    /* written by the step */
    double loss_sum, count;          /* mdk_xent_acc's totals over the micro-batches */
    double sumsq;                    /* of the summed gradient (mdk_sumsq) */
    double grad_norm;                /* sqrt(sumsq) / count */
    float grad_scale;                /* 1 / count times the clip factor */
    int skip;                        /* the loss or norm is not finite: no update */
} mdk_step_block_t;
/* grad_norm, grad_scale and skip from loss_sum, count, sumsq and clip
 * (one thread; the host's double arithmetic, operation for operation) */
cudaError_t mdk_step_finalize(mdk_step_block_t *b, cudaStream_t s);
/* mdk_adamw with its scalars read from b; nothing when b->skip */
cudaError_t mdk_adamw_dev(float *p, const float *g, float *m, float *v, int64_t n, int64_t n_decay,
                          const mdk_step_block_t *b, cudaStream_t s);
/* g[0] = NaN when b->poison */
cudaError_t mdk_step_poison(float *g, const mdk_step_block_t *b, cudaStream_t s);
/* dst[i] += sum over s in order of src[s * ld_src + i], i < n */
cudaError_t mdk_colsum_add(float *dst, const float *src, int64_t slices, int64_t ld_src, int64_t n,
                           cudaStream_t s);

/* dst = src elementwise between fp32 and bf16 (the flags say which each
 * is; f32 -> bf16 rounds to nearest even), (rows, cols) views */
cudaError_t mdk_convert(void *dst, int dst_bf16, int64_t ldd, const void *src, int src_bf16, int64_t lds,
                        int64_t rows, int64_t cols, cudaStream_t s);

/* ---- embedding.cu ---- */
cudaError_t mdk_embedding_fwd(float *out, int64_t ldo, const uint8_t *tok, const float *w, int64_t rows,
                              int64_t dim, cudaStream_t s);
/* dw (vocab, dim) += per-token row sums of dout; vocab <= MDK_EMB_MAX_VOCAB;
 * scratch: slices * vocab * dim floats, slices from mdk_reduce_slices(rows,
 * vocab * dim, scratch_floats) */
#define MDK_EMB_MAX_VOCAB 32
cudaError_t mdk_embedding_bwd(float *dw, const float *dout, int64_t ldd, const uint8_t *tok, int64_t rows,
                              int64_t dim, int64_t vocab, float *scratch, size_t scratch_floats, cudaStream_t s);

/* ---- rmsnorm.cu ---- */
cudaError_t mdk_rmsnorm_fwd(float *y, int64_t ldy, float *rstd, const float *x, int64_t ldx, const float *w,
                            int64_t rows, int64_t dim, double eps, cudaStream_t s);
/* h = hin + xadd (h may alias either), then y, rstd as mdk_rmsnorm_fwd of h */
cudaError_t mdk_add_rmsnorm_fwd(float *h, int64_t ldh, float *y, int64_t ldy, float *rstd, const float *hin,
                                int64_t ldhin, const float *xadd, int64_t ldxadd, const float *w, int64_t rows,
                                int64_t dim, double eps, cudaStream_t s);
/* y in bf16 */
cudaError_t mdk_rmsnorm_fwd_bf16(void *y, int64_t ldy, float *rstd, const float *x, int64_t ldx, const float *w,
                                 int64_t rows, int64_t dim, double eps, cudaStream_t s);
cudaError_t mdk_add_rmsnorm_fwd_bf16(float *h, int64_t ldh, void *y, int64_t ldy, float *rstd, const float *hin,
                                     int64_t ldhin, const float *xadd, int64_t ldxadd, const float *w, int64_t rows,
                                     int64_t dim, double eps, cudaStream_t s);

/* ---- linear_add_rmsnorm.cu ---- */
/* h (rows, d) = hin + x w^T (x (rows, k), w (d, k), both bf16), then y
 * (bf16 when y_bf16, else f32) and rstd as mdk_rmsnorm_fwd of h with
 * weight nw; h and y alias nothing. Only for calls that
 * mdk_linear_add_rmsnorm_ok takes: d a multiple of 16 up to 256, k a
 * multiple of 16 whose weight fits in shared memory, 16-byte aligned rows
 * of x and w, 2-element aligned rows of h, hin and y. */
int mdk_linear_add_rmsnorm_ok(const float *h, int64_t ldh, const void *y, int64_t ldy, int y_bf16, const void *x,
                              int64_t ldx, const void *w, int64_t ldw, const float *hin, int64_t ldhin, int64_t d,
                              int64_t k);
cudaError_t mdk_linear_add_rmsnorm_fwd(float *h, int64_t ldh, void *y, int64_t ldy, int y_bf16, float *rstd,
                                       const void *x, int64_t ldx, const void *w, int64_t ldw, const float *hin,
                                       int64_t ldhin, const float *nw, int64_t rows, int64_t d, int64_t k, double eps,
                                       cudaStream_t s);
/* ---- lowrank_bwd.cu ---- */
/* dx (rows, r) = dy w and dw (e, r) += dy^T x, dy (rows, e), x (rows, r), w
 * (e, r) contiguous, dy, x, w and dx bf16, dw fp32 contiguous: one pass over
 * dy on the tensor cores. Only for calls that mdk_lowrank_bwd_ok takes: r 8
 * or 16, e 256 or 512, dy's and x's rows 16-byte aligned, dx's 4-byte; dw's
 * per-block sums take e * r floats of scratch a block (blocks: up to twice
 * the SM count, fewer to fit). dx aliases nothing. */
int mdk_lowrank_bwd_ok(const void *dx, int64_t lddx, const void *dy, int64_t lddy, const void *x, int64_t ldx,
                       const void *w, int64_t ldw, int64_t rows, int64_t e, int64_t r, size_t scratch_floats);
cudaError_t mdk_lowrank_bwd(void *dx, int64_t lddx, float *dw, const void *dy, int64_t lddy, const void *x,
                            int64_t ldx, const void *w, int64_t rows, int64_t e, int64_t r, float *scratch,
                            size_t scratch_floats, cudaStream_t s);

/* ---- x_dt_proj.cu ---- */
/* xdbl (rows, j) = u wx^T and delta (rows, e) = xdbl[:, :r] wdt^T, u (rows,
 * e), wx (j, e) and wdt (e, r) contiguous, all bf16: one pass over u on the
 * tensor cores. Only for calls that mdk_x_dt_proj_ok takes: e 256, r 8 with
 * j 40 or r 16 with j 48, u's and delta's rows 16-byte aligned,
 * xdbl's 4-byte. xdbl and delta alias nothing. */
int mdk_x_dt_proj_ok(const void *xdbl, int64_t ldxd, const void *delta, int64_t ldd, const void *u, int64_t ldu,
                     const void *wx, int64_t ldwx, const void *wdt, int64_t ldwdt, int64_t rows, int64_t e, int64_t r,
                     int64_t j);
cudaError_t mdk_x_dt_proj(void *xdbl, int64_t ldxd, void *delta, int64_t ldd, const void *u, int64_t ldu,
                          const void *wx, const void *wdt, int64_t rows, int64_t e, int64_t r, int64_t j,
                          cudaStream_t s);

/* dx = or += (accumulate); dw += ; scratch as for the embedding (width 1);
 * dx16: NULL, or a bf16 (rows, dim) copy of the final dx (ld ld16) */
cudaError_t mdk_rmsnorm_bwd(float *dx, int64_t lddx, float *dw, const float *dy, int64_t lddy, const float *x,
                            int64_t ldx, const float *w, const float *rstd, int64_t rows, int64_t dim,
                            int accumulate, void *dx16, int64_t ld16, float *scratch, size_t scratch_floats,
                            cudaStream_t s);

/* dy in bf16 */
cudaError_t mdk_rmsnorm_bwd_bf16(float *dx, int64_t lddx, float *dw, const void *dy, int64_t lddy, const float *x,
                                 int64_t ldx, const float *w, const float *rstd, int64_t rows, int64_t dim,
                                 int accumulate, void *dx16, int64_t ld16, float *scratch, size_t scratch_floats,
                                 cudaStream_t s);

/* ---- conv1d.cu: causal depthwise conv + SiLU, width <= MDK_CONV_MAXK ---- */
#define MDK_CONV_MAXK 16
cudaError_t mdk_conv1d_silu_fwd(float *y, int64_t ldy, const float *x, int64_t ldx, const float *w,
                                const float *bias, int64_t batch, int64_t len, int64_t dim, int64_t width,
                                cudaStream_t s);
/* dx written; dw (dim, width), dbias (dim) added; scratch width = width + 1 */
cudaError_t mdk_conv1d_silu_bwd(float *dx, int64_t lddx, float *dw, float *dbias, const float *dy, int64_t lddy,
                                const float *x, int64_t ldx, const float *w, const float *bias, int64_t batch,
                                int64_t len, int64_t dim, int64_t width, float *scratch, size_t scratch_floats,
                                cudaStream_t s);

/* the same with x, y, dx, dy in bf16 */
cudaError_t mdk_conv1d_silu_fwd_bf16(void *y, int64_t ldy, const void *x, int64_t ldx, const float *w,
                                     const float *bias, int64_t batch, int64_t len, int64_t dim, int64_t width,
                                     cudaStream_t s);
cudaError_t mdk_conv1d_silu_bwd_bf16(void *dx, int64_t lddx, float *dw, float *dbias, const void *dy, int64_t lddy,
                                     const void *x, int64_t ldx, const float *w, const float *bias, int64_t batch,
                                     int64_t len, int64_t dim, int64_t width, float *scratch, size_t scratch_floats,
                                     cudaStream_t s);

/* ---- mamba_in_proj.cu: in_proj fused with conv1d + SiLU (inference) ----
 * u (B*L, E) = silu(conv1d(x) + b), z (B*L, E) = hn W[E:2E]^T, x = hn
 * W[0:E]^T rounded to bf16 and never stored; hn (B*L, d), W (2E, d), u
 * and z bf16; conv_w (E, width), conv_b (E) f32. _takes: whether the
 * kernel takes this call (width 4; (d, E) (128, 256), (64, 128) or
 * (64, 256); at least MIN_SEQS_PER_SM sequences an SM, as its blocks are
 * persistent over whole sequences; 16-byte aligned rows of hn, W and z). */
#define MDK_IN_PROJ_CONV_MIN_SEQS_PER_SM 2
/* The current device's SM count, for the persistent kernels' grids; 0
 * where it cannot be read (the error cleared). */
int mdk_sm_count(void);
int mdk_in_proj_conv_takes(int64_t batch, int64_t len, int64_t d, int64_t E, int64_t width, const void *u,
                           int64_t ldu, const void *z, int64_t ldz, const void *hn, int64_t ldh, const void *w_in,
                           int64_t ldw);
cudaError_t mdk_in_proj_conv_fwd_bf16(void *u, int64_t ldu, void *z, int64_t ldz, const void *hn, int64_t ldh,
                                      const void *w_in, int64_t ldw, const float *conv_w, const float *conv_b,
                                      int64_t batch, int64_t len, int64_t d, int64_t E, cudaStream_t s);
/* kernels/sm90a/in_proj_wgmma.cu: the same op with its products on the
 * warpgroup MMA, which mdk_in_proj_conv_fwd_bf16 calls where
 * mdk_in_proj_wgmma_variant() is nonzero (same arguments, outputs and
 * rounding of x). The variant: 0 where the device is not compute
 * capability 9.0 (sm_90a machine code only) or MD_IN_PROJ_WGMMA=0 (A/B
 * against the mma.sync kernel); else MD_IN_PROJ_WGMMA's number where it
 * names one of the kernel's variants (1-2, in_proj_wgmma.cu), else the
 * default. Decided once per process. Only in builds with MD_HAVE_WGMMA. */
int mdk_in_proj_wgmma_variant(void);
cudaError_t mdk_in_proj_conv_fwd_wgmma(void *u, int64_t ldu, void *z, int64_t ldz, const void *hn, int64_t ldh,
                                       const void *w_in, int64_t ldw, const float *conv_w, const float *conv_b,
                                       int64_t batch, int64_t len, int64_t d, int64_t E, cudaStream_t s);

/* ---- xent.cu ---- */
/* Bytes of xent's workspace for `rows` rows. */
size_t mdk_xent_workspace(int64_t rows);
/* Per-row softmax cross-entropy in double; dl (when not NULL) written with
 * grad_scale * (softmax - onehot) on counted rows, 0 on others. Leaves
 * {loss sum (double), counted rows (as a double)} in the first 16 bytes of
 * `result` (device). */
cudaError_t mdk_xent(float *dl, int64_t ldd, const float *logits, int64_t ldl, const uint8_t *targets,
                     int64_t rows, int64_t vocab, double grad_scale, void *workspace, double *result,
                     cudaStream_t s);
/* mdk_xent adding the two totals to acc[0], acc[1] (device) instead */
cudaError_t mdk_xent_acc(float *dl, int64_t ldd, const float *logits, int64_t ldl, const uint8_t *targets,
                         int64_t rows, int64_t vocab, double grad_scale, void *workspace, double *acc,
                         cudaStream_t s);

/* ---- attention.cu: causal attention (the Transformer section of ops.h) ----
 * q, k, v, o (and gradients) point at column 0 of head 0 of (B*L, H*hd)
 * row-strided views, all fp32 (act_bf16 0) or all bf16 (1: the bf16
 * table's activation storage); lse (B, H, L) contiguous and D are fp32.
 * head_dim <= MDK_ATTN_MAX_HD. */
#define MDK_ATTN_MAX_HD 256
cudaError_t mdk_attention_fwd(void *o, int64_t ldo, float *lse, const void *q, int64_t ldq, const void *k,
                              int64_t ldk, const void *v, int64_t ldv, int64_t batch, int64_t len, int64_t n_heads,
                              int64_t head_dim, double scale, int act_bf16, cudaStream_t s);
/* Bytes of mdk_attention_bwd's workspace (rowsum(dout * o) per position). */
size_t mdk_attention_bwd_workspace(int64_t batch, int64_t len, int64_t n_heads);
/* dq, dk, dv written (not added). */
cudaError_t mdk_attention_bwd(void *dq, int64_t lddq, void *dk, int64_t lddk, void *dv, int64_t lddv,
                              const void *dout, int64_t lddo, const void *q, int64_t ldq, const void *k, int64_t ldk,
                              const void *v, int64_t ldv, const void *o, int64_t ldo, const float *lse, int64_t batch,
                              int64_t len, int64_t n_heads, int64_t head_dim, double scale, void *workspace,
                              int act_bf16, cudaStream_t s);

/* D (B, H, L) = rowsum(dout * o) per head and position, fp32 sums: the
 * backward's first pass (mdk_attention_bwd runs it into its workspace). */
cudaError_t mdk_attention_rowdot(float *D, const void *dout, int64_t lddo, const void *o, int64_t ldo, int64_t batch,
                                 int64_t len, int64_t n_heads, int64_t head_dim, int act_bf16, cudaStream_t s);

/* ---- attention_mma.cu, attention_mma_bwd.cu: the same two ops on the
 * tensor cores (bf16 operands: copies of the fp32 tensors rounded, or of
 * the bf16 ones relaid; fp32 accumulation), for the bf16 precision table;
 * same arguments and outputs as above. Only for head dims where
 * mdk_attention_mma_head_dim() is true (32, 64, 128). Both take a
 * workspace of mdk_attention_mma_workspace bytes (16-byte aligned): bf16
 * head-major copies of q, k, v (and dout), and D. */
int mdk_attention_mma_head_dim(int64_t head_dim);
/* Bytes of the mma ops' workspace; for a head dim outside the mma set,
 * mdk_attention_bwd's. */
size_t mdk_attention_mma_workspace(int64_t batch, int64_t len, int64_t n_heads, int64_t head_dim);
cudaError_t mdk_attention_fwd_mma(void *o, int64_t ldo, float *lse, const void *q, int64_t ldq, const void *k,
                                  int64_t ldk, const void *v, int64_t ldv, int64_t batch, int64_t len,
                                  int64_t n_heads, int64_t head_dim, double scale, void *workspace, int act_bf16,
                                  cudaStream_t s);
/* kernels/sm90a/attention_wgmma.cu: the forward at head dim 64 on Hopper's
 * warpgroup MMA, which mdk_attention_fwd_mma calls where
 * mdk_attention_wgmma_variant() is nonzero (same arguments, outputs and
 * workspace). The variant: 0 where the device is not compute capability
 * 9.0 (the kernels exist only as sm_90a machine code) or MD_ATTN_WGMMA=0
 * (A/B against the mma.sync kernel); else MD_ATTN_WGMMA's number when it
 * names one of the built kernel shapes, else the default. Decided once per
 * process. Only in builds with MD_HAVE_WGMMA (nvcc 12 or later). */
int mdk_attention_wgmma_variant(void);
cudaError_t mdk_attention_fwd_wgmma(void *o, int64_t ldo, float *lse, const void *q, int64_t ldq, const void *k,
                                    int64_t ldk, const void *v, int64_t ldv, int64_t batch, int64_t len,
                                    int64_t n_heads, double scale, void *workspace, int act_bf16, cudaStream_t s);
/* kernels/sm90a/attention_wgmma_bwd.cu: the dK, dV half of
 * mdk_attention_bwd_mma at head dim 64 on the warpgroup MMA, which that op
 * calls in place of its own dK / dV kernel where
 * mdk_attention_wgmma_bwd_variant() is nonzero, after it has filled D in
 * the workspace (and before its dQ kernel, which reads the copies of q, k,
 * v, dO this one makes in the workspace where they are needed). Same
 * arguments as that op, less dq, o and head_dim. The variant: 0 where
 * mdk_attention_wgmma_variant() is (no sm_90a device, or MD_ATTN_WGMMA=0)
 * or MD_ATTN_WGMMA_BWD=0 (A/B against the mma.sync kernel of the backward
 * alone); else MD_ATTN_WGMMA_BWD's number when it names a built shape,
 * else the default. Decided once per process. Only with MD_HAVE_WGMMA. */
int mdk_attention_wgmma_bwd_variant(void);
cudaError_t mdk_attention_bwd_dkdv_wgmma(void *dk, int64_t lddk, void *dv, int64_t lddv, const void *dout,
                                         int64_t lddo, const void *q, int64_t ldq, const void *k, int64_t ldk,
                                         const void *v, int64_t ldv, const float *lse, int64_t batch, int64_t len,
                                         int64_t n_heads, double scale, void *workspace, int act_bf16,
                                         cudaStream_t s);
/* kernels/sm90a/attention_wgmma_dq.cu: the dQ half likewise, called in
 * place of the op's own dQ kernel after mdk_attention_bwd_dkdv_wgmma
 * (whose workspace copies it reads) where mdk_attention_wgmma_dq_variant()
 * is nonzero: 0 where mdk_attention_wgmma_bwd_variant() is or
 * MD_ATTN_WGMMA_DQ=0, else MD_ATTN_WGMMA_DQ's shape or the default. */
int mdk_attention_wgmma_dq_variant(void);
cudaError_t mdk_attention_bwd_dq_wgmma(void *dq, int64_t lddq, const void *dout, int64_t lddo, const void *q,
                                       int64_t ldq, const void *k, int64_t ldk, const void *v, int64_t ldv,
                                       const float *lse, int64_t batch, int64_t len, int64_t n_heads, double scale,
                                       void *workspace, int act_bf16, cudaStream_t s);
cudaError_t mdk_attention_bwd_mma(void *dq, int64_t lddq, void *dk, int64_t lddk, void *dv, int64_t lddv,
                                  const void *dout, int64_t lddo, const void *q, int64_t ldq, const void *k,
                                  int64_t ldk, const void *v, int64_t ldv, const void *o, int64_t ldo,
                                  const float *lse, int64_t batch, int64_t len, int64_t n_heads, int64_t head_dim,
                                  double scale, void *workspace, int act_bf16, cudaStream_t s);

/* ---- rope_swiglu.cu ----
 * The tensors (void *) are fp32, or bf16 when act_bf16 is 1. */
/* RoPE in place on a (B*L, H*hd) view, HF rotate_half; inverse rotates back */
cudaError_t mdk_rope(void *x, int64_t ldx, int64_t batch, int64_t len, int64_t n_heads, int64_t head_dim,
                     double theta, int inverse, int act_bf16, cudaStream_t s);
/* y = silu(gate) * up, (rows, cols) views */
cudaError_t mdk_swiglu_fwd(void *y, int64_t ldy, const void *gate, int64_t ldg, const void *up, int64_t ldu,
                           int64_t rows, int64_t cols, int act_bf16, cudaStream_t s);
/* dgate = dy * up * silu'(gate), dup = dy * silu(gate), both written */
cudaError_t mdk_swiglu_bwd(void *dgate, int64_t lddg, void *dup, int64_t lddu, const void *dy, int64_t lddy,
                           const void *gate, int64_t ldg, const void *up, int64_t ldu, int64_t rows, int64_t cols,
                           int act_bf16, cudaStream_t s);

/* ---- hyena.cu: the Hyena section of ops.h ----
 * (rows, cols) views with a row stride; (B, L, C) layout where a batch and
 * a length are given. Column sums (the bias, LayerNorm, Sin and dwconv
 * parameter gradients) go through per-slice partials in `scratch` as the
 * other backward kernels do. A launcher with an act_bf16 argument takes its
 * activation tensors (the void pointers) in bf16 when it is 1, fp32 when 0;
 * its float pointers are fp32 either way. */
/* y += bias on every row (bias of y's dtype: a bf16 weight copy with bf16 y) */
cudaError_t mdk_bias_add(void *y, int64_t ldy, const void *bias, int64_t rows, int64_t cols, int act_bf16,
                         cudaStream_t s);
/* dbias += column sums of dy */
cudaError_t mdk_bias_bwd(float *dbias, const void *dy, int64_t lddy, int64_t rows, int64_t cols, float *scratch,
                         size_t scratch_floats, int act_bf16, cudaStream_t s);
/* LayerNorm with biased variance; mean and rstd (rows) saved */
cudaError_t mdk_layernorm_fwd(void *y, int64_t ldy, float *mean, float *rstd, const float *x, int64_t ldx,
                              const float *w, const float *b, int64_t rows, int64_t dim, double eps, int act_bf16,
                              cudaStream_t s);
/* dx = or += (accumulate); dw, db += */
cudaError_t mdk_layernorm_bwd(float *dx, int64_t lddx, float *dw, float *db, const void *dy, int64_t lddy,
                              const float *x, int64_t ldx, const float *w, const float *mean, const float *rstd,
                              int64_t rows, int64_t dim, int accumulate, float *scratch, size_t scratch_floats,
                              int act_bf16, cudaStream_t s);
/* GELU, tanh form; y may alias x, dx may alias dy */
cudaError_t mdk_gelu_fwd(void *y, int64_t ldy, const void *x, int64_t ldx, int64_t rows, int64_t cols, int act_bf16,
                         cudaStream_t s);
cudaError_t mdk_gelu_bwd(void *dx, int64_t lddx, const void *dy, int64_t lddy, const void *x, int64_t ldx,
                         int64_t rows, int64_t cols, int act_bf16, cudaStream_t s);
/* y = sin(freq[c] x); the backward adds dfreq (and, dbias not NULL, the
 * column sums of dx) and writes dx in one pass (dx may alias dy) */
cudaError_t mdk_sin_fwd(float *y, int64_t ldy, const float *x, int64_t ldx, const float *freq, int64_t rows,
                        int64_t cols, cudaStream_t s);
cudaError_t mdk_sin_bwd(float *dx, int64_t lddx, float *dfreq, float *dbias, const float *dy, int64_t lddy,
                        const float *x, int64_t ldx, const float *freq, int64_t rows, int64_t cols, float *scratch,
                        size_t scratch_floats, cudaStream_t s);
/* k (rows, cols) contiguous *= exp(-t_l |delta_c|) (ops.h hyena_modulate) */
cudaError_t mdk_hyena_modulate(float *k, int64_t rows, int64_t cols, int64_t l_max, double target, double fast_pct,
                               double slow_pct, cudaStream_t s);
/* depthwise causal conv with bias, no activation; w (dim, width) */
#define MDK_DWCONV_MAXK 16
cudaError_t mdk_dwconv_fwd(void *y, int64_t ldy, const void *x, int64_t ldx, const float *w, const float *bias,
                           int64_t batch, int64_t len, int64_t dim, int64_t width, int act_bf16, cudaStream_t s);
/* dx written; dw (dim, width) and dbias (dim) added */
cudaError_t mdk_dwconv_bwd(void *dx, int64_t lddx, float *dw, float *dbias, const void *dy, int64_t lddy,
                           const void *x, int64_t ldx, const float *w, int64_t batch, int64_t len, int64_t dim,
                           int64_t width, float *scratch, size_t scratch_floats, int act_bf16, cudaStream_t s);

/* ---- fftconv.cu: the gated FFT long convolution (ops.h fftconv_*) ----
 * The host (src/backend/cuda/cuda_hyena.c) runs cuFFT between these
 * kernels, out of place: a real buffer of sequences n floats apart and a
 * spectrum buffer of the same sequences, n/2 + 1 complex values each
 * mdk_fftconv_pitch(n) apart, one sequence
 * per (batch, channel), where n (mdk_fftconv_size) >= 2 len, so the
 * circular convolution of two zero-padded length-len sequences never wraps.
 * Forward: [S: batch*C sequences of s = x1 v][K: C sequences of k].
 * Backward: [S][G: batch*C sequences of g = dy x0][K]. The forward's [S][K]
 * spectra and its convolution may be kept (in the caller's buffer) for the
 * backward, which then packs and transforms G alone and transforms back
 * only [G][K]. The (B*L, C)
 * tensors (void *) are bf16 by act_bf16 as above; k, dk, D, dD and the
 * buffers between the transforms are fp32. */
/* the smallest even n >= 2 len with no prime factor above 7 */
int64_t mdk_fftconv_size(int64_t len);
/* the spectrum buffer's sequence pitch in complex values: n / 2 + 1, from
 * n = 2^18 up rounded up to 32, so every sequence starts 256-byte aligned */
int64_t mdk_fftconv_pitch(int64_t n);
/* fills the real buffer's S and K (forward, dy == NULL) or S, G and K
 * (backward: dy, x0 given), zero padding each sequence from len to n;
 * g_only (backward): G alone, from the buffer's start */
cudaError_t mdk_fftconv_pack(float *buf, const void *x1, int64_t ldx1, const void *v, int64_t ldv, const void *dy,
                             int64_t lddy, const void *x0, int64_t ldx0, const float *k, int64_t batch, int64_t len,
                             int64_t C, int64_t n, int g_only, int act_bf16, cudaStream_t s);
/* on the spectrum buffer, scaled by 1/n for the inverse transforms:
 * forward  S <- S K;
 * backward S <- S K, G <- G conj(K), K <- sum over b of G_b conj(S_b).
 * kept: NULL (S and K are spec's own planes) or the forward's [S][K]
 * spectra, read only, S and K taken from there; the backward then leaves
 * spec's S planes alone (the forward kept its convolution too). */
cudaError_t mdk_fftconv_mul(float *spec, const float *kept, int backward, int64_t batch, int64_t C, int64_t n,
                            cudaStream_t s);
/* forward: y = x0 (conv + D s), conv read from the real buffer's S; conv
 * also written to `conv` ((batch len, C) fp32 rows) when not NULL */
cudaError_t mdk_fftconv_unpack_fwd(void *y, int64_t ldy, float *conv, const void *x0, int64_t ldx0, const void *x1,
                                   int64_t ldx1, const void *v, int64_t ldv, const float *D, const float *buf,
                                   int64_t batch, int64_t len, int64_t C, int64_t n, int act_bf16, cudaStream_t s);
/* backward: dx0, dx1, dv written from conv and the correlation with k
 * (G); dk (len, C) += the K sequences; dD += column sums of dy x0 x1 v.
 * kept_conv NULL: the real buffer holds [S = conv][G][K]; else the
 * forward's convolution in (batch len, C) fp32 rows (unpack_fwd's conv)
 * and the real buffer [G][K]. */
cudaError_t mdk_fftconv_unpack_bwd(void *dx0, int64_t lddx0, void *dx1, int64_t lddx1, void *dv, int64_t lddv,
                                   float *dk, float *dD, const void *dy, int64_t lddy, const void *x0, int64_t ldx0,
                                   const void *x1, int64_t ldx1, const void *v, int64_t ldv, const float *D,
                                   const float *kept_conv, const float *buf, int64_t batch, int64_t len, int64_t C,
                                   int64_t n, float *scratch, size_t scratch_floats, int act_bf16, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
