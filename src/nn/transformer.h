/* The Transformer++ block, forward and backward, against backend/ops.h.
 *
 * Internal to src/nn (the model drives it through the per-architecture
 * table in model_internal.h, as it drives mamba.h). The block is HF
 * transformers' LlamaDecoderLayer without biases, for one attention head
 * group per key (num_key_value_heads = n_heads):
 *   hn1 = RMSNorm(h_in)                                  input_layernorm
 *   [q | k | v] = hn1 [Wq; Wk; Wv]^T                     (M, 3d), one gemm
 *   q, k = RoPE(q, k)   (theta, rotate_half; in place)
 *   o = causal softmax(q k^T / sqrt(dh)) v   per head    (M, d), flash-style
 *   h_mid = h_in + o Wo^T
 *   hn2 = RMSNorm(h_mid)                                 post_attention_layernorm
 *   [g | u] = hn2 [Wgate; Wup]^T                         (M, 2F), one gemm
 *   a = silu(g) * u                                      (M, F)
 *   h_out = h_mid + a Wdown^T
 * All (M, ·) tensors are (B, L, ·) flattened, M = B * L; head h is columns
 * [h dh, (h+1) dh) of q, k, v and o (dh = d / n_heads).
 *
 * Saved per block for the backward (per token, values): rstd1 1, hn1 d,
 * qkv 3d (q and k after RoPE), o d, lse n_heads, h_mid d, rstd2 1, hn2 d,
 * gu 2F, a F -- about 7d + 3F; never an L x L matrix (the attention
 * backward recomputes the probabilities from q, k and lse). hn1, qkv, o,
 * hn2, gu and a (6d + 3F) are stored in the activation dtype
 * (md_act_dtype: bf16 on the bf16 table), as are the backward's scratch
 * and its GEMMs' weight copies (md_block_ctx_t.wparams); rstd, lse, h_mid
 * and the residual stream's gradient stay in the model's dtype.
 *
 * Initialisation (md_model_init_weights): every matrix and the embedding
 * N(0, initializer_range = 0.02), o_proj and down_proj further scaled by
 * 1/sqrt(2 n_layer) (GPT-2's residual scaling: two residual adds per
 * block), norms 1. Weight decay on the matrices and the embedding, not on
 * the norms (params.h).
 */
#ifndef MD_NN_TRANSFORMER_H
#define MD_NN_TRANSFORMER_H

#include <stddef.h>
#include <stdint.h>

#include "nn/mamba.h"   /* md_block_ctx_t, md_param_view */

/* Bytes of one activation set for max_batch x max_len tokens (dt: the
 * model's dtype), and of the backward's scratch (one set for all layers;
 * adt: the activation dtype), every sub-buffer 64-byte aligned; and of
 * attention_bwd's workspace for batch x len. */
size_t md_tfm_acts_bytes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_batch,
                         int64_t max_len);
size_t md_tfm_scratch_bytes(const md_config_t *cfg, md_dtype_t adt, int64_t max_rows);
size_t md_tfm_ws_bytes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len);

/* Forward of block `layer` over the rows of c: fills the activation set at
 * acts (a set of md_tfm_acts_bytes, laid out for c->max_batch x
 * c->max_len), and writes h_out = the block's output when h_out is not NULL
 * (NULL: only the activations, for the recomputation in the backward). */
void md_tfm_fwd(const md_block_ctx_t *c, int layer, const void *h_in, void *h_out, void *acts);

/* Backward of block `layer`: g is dL/dh_out on entry and dL/dh_in on
 * return; parameter gradients are added into c->grads; scratch is a set of
 * md_tfm_scratch_bytes for the plan's rows. The blocks' backwards run from
 * the top block (n_layer - 1) down over the same scratch with nothing else
 * writing it in between: with bf16 activations, block l leaves g's bf16
 * copy there for block l - 1 (transformer.c). */
void md_tfm_bwd(const md_block_ctx_t *c, int layer, const void *h_in, void *g, void *acts, void *scratch);

/* Forward FLOPs per token at length L: the projections and MLP (2 per
 * multiply-add), causal attention (QK^T and PV over L/2 keys on average),
 * and the elementwise work. */
double md_tfm_flops_per_token(const md_config_t *cfg, int64_t L, double *matmul_only);

#endif
