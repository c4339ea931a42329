/* The Hyena block (HyenaDNA's, order 2), forward and backward, against
 * backend/ops.h.
 *
 * Internal to src/nn (the model drives it through the per-architecture
 * table in model_internal.h, as it drives mamba.h and transformer.h). The
 * block is HyenaDNA's prenorm Block with its HyenaOperator mixer:
 *   hn1 = LayerNorm1(h_in)
 *   p = hn1 in_proj^T + b                                   (M, 3d)
 *   c = short depthwise causal conv of width K (3) over p, with bias
 *   [x0 | x1 | v] = c                                        three (M, d) slices
 *   k = the implicit filter's first L rows                    (L, d), see below
 *   y = x0 * (k * (x1 v) + D (x1 v))   causal, FFT of size 2L (fftconv op)
 *   h_mid = h_in + y out_proj^T + b
 *   hn2 = LayerNorm2(h_mid)
 *   h_out = h_mid + GELU_tanh(hn2 fc1^T + b1) fc2^T + b2
 * The implicit filter (HyenaFilter) of layer i, positions l < L <= l_max:
 *   z_l = [t_l, cos(f0 w_l), cos(f1 w_l), -sin(f0 w_l), -sin(f1 w_l)],
 *         t_l = l / (l_max - 1), w_l = 2 pi l / l_max, f = (1e-4, 1)
 *   k = modulate(sin(freq (sin(freq (sin(freq (z W0^T + b0)) W2^T + b2))
 *                W4^T + b4)) W6^T)
 * with ONE trainable freq vector (O values) shared by the three Sin layers,
 * as HyenaDNA's single Sin module, and modulate = ExponentialModulation
 * (target 1e-2, fast 0.3, slow 1.5). z is a constant of the model (the
 * "consts" buffer, md_hyena_consts_*), not a parameter.
 *
 * The filter depends only on the weights: a whole-batch call computes it
 * once, a per-sequence call (the CPU's sequence-parallel path) per
 * sequence; its activations sit in the rows of the call (L <= rows).
 *
 * Saved per block for the backward (per token, values): LayerNorm
 * statistics 4, hn1 d, p 3d, c 3d, y d, h_mid d, hn2 d, fc1's output and
 * GELU's 2 d_ff; the filter's 6 O + d per position of the call.
 */
#ifndef MD_NN_HYENA_H
#define MD_NN_HYENA_H

#include <stddef.h>
#include <stdint.h>

#include "nn/mamba.h"   /* md_block_ctx_t, md_param_view */

/* HyenaDNA's modulation constants and positional feature size. */
#define MD_HYENA_MOD_TARGET 1e-2
#define MD_HYENA_MOD_FAST 0.3
#define MD_HYENA_MOD_SLOW 1.5
#define MD_HYENA_EMB_DIM 5

/* Bytes of one activation set, of the backward's scratch and of the op
 * workspace (fftconv's), as in transformer.h. acts_bytes takes the model's
 * dtype dt (its per-token tensors stored in md_act_dtype(be, dt), the
 * statistics, h_mid and the filter in dt), and the long convolution's
 * forward spectra kept for the backward (fftconv_spectra_bytes: fp32,
 * ~(B + 1) L d complex values on CUDA, none on the CPU, none for plan
 * MD_ACTS_FORWARD_ONLY); scratch_bytes the
 * activation dtype adt (dk and the filter's gradients in the model's). */
size_t md_hyena_acts_bytes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_batch,
                           int64_t max_len, md_acts_plan_t plan);
size_t md_hyena_scratch_bytes(const md_config_t *cfg, md_dtype_t adt, int64_t max_rows);
size_t md_hyena_ws_bytes(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t batch, int64_t len);

/* The model's constant buffer: the positional features z (max_len, 5) of
 * the filter of length cfg->l_max, computed on the host in double and
 * copied to the device in dtype. max_len <= l_max. */
size_t md_hyena_consts_bytes(const md_config_t *cfg, md_dtype_t dt, int64_t max_len);
void md_hyena_consts_init(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dt, int64_t max_len,
                          void *consts);

/* Forward and backward of block `layer`, as md_tfm_fwd / md_tfm_bwd. */
void md_hyena_fwd(const md_block_ctx_t *c, int layer, const void *h_in, void *h_out, void *acts);
void md_hyena_bwd(const md_block_ctx_t *c, int layer, const void *h_in, void *g, void *acts, void *scratch);

/* Forward FLOPs per token at length L: the projections, the MLP, the
 * filter MLP (once per sequence of L), the FFT convolution (three real
 * transforms of 2L per channel, ~2.5 n log2 n each) and the elementwise
 * work. */
double md_hyena_flops_per_token(const md_config_t *cfg, int64_t L, double *matmul_only);

#endif
