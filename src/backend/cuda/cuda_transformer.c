/* The Transformer++ section of the CUDA backend (ops.h): RoPE, causal
 * attention and SwiGLU, shape checks around the kernels of
 * kernels/rope_swiglu.cu, kernels/attention.cu (fp32 and any head dim up to
 * MDK_ATTN_MAX_HD) and kernels/attention_mma*.cu (the bf16 table's
 * tensor-core kernels for head dims 32, 64 and 128; on Hopper, wgmma at 64).
 * The (M, ·) tensors of one call share a dtype, f32 or bf16 (the bf16
 * table's activation storage); lse is f32. */
#include <cuda_runtime_api.h>

#include "backend/ops.h"
#include "backend_kernels.h"
#include "cuda_internal.h"

/* an f32 or bf16 tensor of ref's dtype and shape */
static void act_like_ref(const md_tensor_t *x, const md_tensor_t *ref, const char *op)
{
    OP_REQUIRE(fb_dev(x, op) == (ref->dtype == MD_DTYPE_BF16), op);
    OP_REQUIRE(NROWS(x) == NROWS(ref) && NCOLS(x) == NCOLS(ref), op);
    md_cuda_note_tensor(op, NROWS(x), NCOLS(x));
}

#define IS_BF16(t) ((t)->dtype == MD_DTYPE_BF16)

/* q, k, v, o-like (B*L, H*dh) views of ref's dtype and shape; returns dh. */
static int64_t attn_check(const md_tensor_t *x, const md_tensor_t *ref, int64_t batch, int64_t n_heads,
                          const char *op)
{
    act_like_ref(x, ref, op);
    OP_REQUIRE(batch >= 1 && n_heads >= 1 && NROWS(x) % batch == 0, op);
    OP_REQUIRE(NCOLS(x) % n_heads == 0, op);
    int64_t hd = NCOLS(x) / n_heads;
    OP_REQUIRE(hd % 2 == 0 && hd <= MDK_ATTN_MAX_HD, op);
    return hd;
}

static void cu_rope(const md_backend_t *be, md_tensor_t *x, int64_t batch, int64_t n_heads, double theta,
                    int inverse)
{
    int64_t hd = attn_check(x, x, batch, n_heads, "rope");
    CK(mdk_rope(x->data, x->ld, batch, NROWS(x) / batch, n_heads, hd, theta, inverse, IS_BF16(x), STREAM(be)), "rope");
}

/* mma: the bf16 table's tensor-core kernels, where they cover the head dim */
static void attention_fwd(const md_backend_t *be, md_tensor_t *o, md_tensor_t *lse, const md_tensor_t *q,
                          const md_tensor_t *k, const md_tensor_t *v, int64_t batch, int64_t n_heads, double scale,
                          void *workspace, int mma)
{
    int64_t hd = attn_check(q, q, batch, n_heads, "attention_fwd");
    attn_check(k, q, batch, n_heads, "attention_fwd");
    attn_check(v, q, batch, n_heads, "attention_fwd");
    attn_check(o, q, batch, n_heads, "attention_fwd");
    f32_dev(lse, "attention_fwd");
    OP_REQUIRE(md_tensor_numel(lse) == NROWS(q) * n_heads && lse->ld == NCOLS(lse), "attention_fwd");
    int64_t len = NROWS(q) / batch;
    if (mma && mdk_attention_mma_head_dim(hd)) {
        OP_REQUIRE(workspace != NULL, "attention_fwd");
        CK(mdk_attention_fwd_mma(o->data, o->ld, F(lse), q->data, q->ld, k->data, k->ld, v->data, v->ld, batch, len,
                                 n_heads, hd, scale, workspace, IS_BF16(q), STREAM(be)),
           "attention_fwd");
    } else {
        CK(mdk_attention_fwd(o->data, o->ld, F(lse), q->data, q->ld, k->data, k->ld, v->data, v->ld, batch, len,
                             n_heads, hd, scale, IS_BF16(q), STREAM(be)),
           "attention_fwd");
    }
}

static void cu_attention_fwd(const md_backend_t *be, md_tensor_t *o, md_tensor_t *lse, const md_tensor_t *q,
                             const md_tensor_t *k, const md_tensor_t *v, int64_t batch, int64_t n_heads,
                             double scale, void *workspace)
{
    attention_fwd(be, o, lse, q, k, v, batch, n_heads, scale, workspace, 0);
}

static void cu_attention_fwd_bf16(const md_backend_t *be, md_tensor_t *o, md_tensor_t *lse, const md_tensor_t *q,
                                  const md_tensor_t *k, const md_tensor_t *v, int64_t batch, int64_t n_heads,
                                  double scale, void *workspace)
{
    attention_fwd(be, o, lse, q, k, v, batch, n_heads, scale, workspace, 1);
}

static size_t cu_attention_workspace(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                     int64_t n_heads, int64_t head_dim)
{
    return mdk_attention_bwd_workspace(batch, len, n_heads);
}

static size_t cu_attention_workspace_bf16(const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len,
                                          int64_t n_heads, int64_t head_dim)
{
    return mdk_attention_mma_workspace(batch, len, n_heads, head_dim);
}

static void attention_bwd(const md_backend_t *be, md_tensor_t *dq, md_tensor_t *dk, md_tensor_t *dv,
                          const md_tensor_t *dout, const md_tensor_t *q, const md_tensor_t *k, const md_tensor_t *v,
                          const md_tensor_t *o, const md_tensor_t *lse, int64_t batch, int64_t n_heads, double scale,
                          void *workspace, int mma)
{
    int64_t hd = attn_check(q, q, batch, n_heads, "attention_bwd");
    const md_tensor_t *all[] = {dq, dk, dv, dout, k, v, o};
    for (int i = 0; i < 7; i++) attn_check(all[i], q, batch, n_heads, "attention_bwd");
    f32_dev(lse, "attention_bwd");
    OP_REQUIRE(md_tensor_numel(lse) == NROWS(q) * n_heads && workspace != NULL, "attention_bwd");
    cudaError_t (*bwd)(void *, int64_t, void *, int64_t, void *, int64_t, const void *, int64_t, const void *,
                       int64_t, const void *, int64_t, const void *, int64_t, const void *, int64_t, const float *,
                       int64_t, int64_t, int64_t, int64_t, double, void *, int, cudaStream_t) =
        mma && mdk_attention_mma_head_dim(hd) ? mdk_attention_bwd_mma : mdk_attention_bwd;
    CK(bwd(dq->data, dq->ld, dk->data, dk->ld, dv->data, dv->ld, dout->data, dout->ld, q->data, q->ld, k->data, k->ld,
           v->data, v->ld, o->data, o->ld, CF(lse), batch, NROWS(q) / batch, n_heads, hd, scale, workspace,
           IS_BF16(q), STREAM(be)),
       "attention_bwd");
}

static void cu_attention_bwd(const md_backend_t *be, md_tensor_t *dq, md_tensor_t *dk, md_tensor_t *dv,
                             const md_tensor_t *dout, const md_tensor_t *q, const md_tensor_t *k,
                             const md_tensor_t *v, const md_tensor_t *o, const md_tensor_t *lse, int64_t batch,
                             int64_t n_heads, double scale, void *workspace)
{
    attention_bwd(be, dq, dk, dv, dout, q, k, v, o, lse, batch, n_heads, scale, workspace, 0);
}

static void cu_attention_bwd_bf16(const md_backend_t *be, md_tensor_t *dq, md_tensor_t *dk, md_tensor_t *dv,
                                  const md_tensor_t *dout, const md_tensor_t *q, const md_tensor_t *k,
                                  const md_tensor_t *v, const md_tensor_t *o, const md_tensor_t *lse, int64_t batch,
                                  int64_t n_heads, double scale, void *workspace)
{
    attention_bwd(be, dq, dk, dv, dout, q, k, v, o, lse, batch, n_heads, scale, workspace, 1);
}

static void cu_swiglu_fwd(const md_backend_t *be, md_tensor_t *y, const md_tensor_t *gate, const md_tensor_t *up)
{
    act_like_ref(y, y, "swiglu_fwd");
    act_like_ref(gate, y, "swiglu_fwd");
    act_like_ref(up, y, "swiglu_fwd");
    CK(mdk_swiglu_fwd(y->data, y->ld, gate->data, gate->ld, up->data, up->ld, NROWS(y), NCOLS(y), IS_BF16(y),
                      STREAM(be)),
       "swiglu_fwd");
}

static void cu_swiglu_bwd(const md_backend_t *be, md_tensor_t *dgate, md_tensor_t *dup, const md_tensor_t *dy,
                          const md_tensor_t *gate, const md_tensor_t *up)
{
    act_like_ref(dy, dy, "swiglu_bwd");
    const md_tensor_t *all[] = {dgate, dup, gate, up};
    for (int i = 0; i < 4; i++) act_like_ref(all[i], dy, "swiglu_bwd");
    CK(mdk_swiglu_bwd(dgate->data, dgate->ld, dup->data, dup->ld, dy->data, dy->ld, gate->data, gate->ld, up->data,
                      up->ld, NROWS(dy), NCOLS(dy), IS_BF16(dy), STREAM(be)),
       "swiglu_bwd");
}

/* Fills the Transformer++ section of a table (bf16: the bf16 table's, whose
 * attention runs the tensor-core kernels where they cover the head dim). */
void md_cuda_transformer_install(md_backend_t *be, int bf16)
{
    be->rope = cu_rope;
    be->attention_fwd = bf16 ? cu_attention_fwd_bf16 : cu_attention_fwd;
    be->attention_workspace = bf16 ? cu_attention_workspace_bf16 : cu_attention_workspace;
    be->attention_bwd = bf16 ? cu_attention_bwd_bf16 : cu_attention_bwd;
    be->swiglu_fwd = cu_swiglu_fwd;
    be->swiglu_bwd = cu_swiglu_bwd;
}
