/* The DNA language model: embedding -> blocks -> final norm -> LM head.
 *
 * One definition, written against the backend interface (backend/ops.h):
 * the same code runs on the CPU in f32 (training), on the CPU in f64 (the
 * gradient checks) and on a GPU backend. The blocks are Mamba
 * (src/nn/mamba.c), Transformer++ (src/nn/transformer.c) or Hyena
 * (src/nn/hyena.c), chosen by cfg->arch through a small per-architecture
 * table (model_internal.h: activation and scratch sizes, op workspace,
 * block forward and backward, an optional constant buffer, and the final
 * norm: RMSNorm, or LayerNorm for Hyena).
 *
 * Memory: md_model_new plans every buffer from (config, max_batch,
 * max_len) -- parameters, gradients, saved activations, workspace, token
 * staging -- allocates each once on the backend's device, and logs the plan
 * (bytes per category). Nothing is allocated afterwards: forward and
 * backward only reuse these buffers. Optimizer moments belong to the
 * optimizer (src/train), sized from md_model_params()->numel.
 *
 * Activations: by default each block keeps what its backward needs (about
 * 12*d_model + R + 2N + 1 values per token per block for Mamba, about
 * 7*d_model + 3*d_ff + n_heads for Transformer++, whose attention keeps
 * only a log-sum-exp per query and head, never an L x L matrix; about
 * 11*d_model + 2*d_ff + 6*64 for Hyena, whose FFT convolution keeps no
 * spectra). With
 * opts.recompute, only each block's input (the residual stream, d_model
 * values per token) is kept, and each block's forward is rerun inside its
 * backward into one shared set of buffers: ~n_layer times less activation
 * memory for one more forward pass, which long contexts need. The Mamba
 * block's rerun leaves y to the scan's backward; with
 * MD_RECOMPUTE_KEEP_STATES it also keeps each block's scan states from
 * the first pass (E N / 32 bytes a token and block in CUDA's chunks of
 * 128 steps, ~sqrt(L) E N 4 bytes a sequence on the CPU), so that the
 * rerun has no scan to do. The gradients are the same bits either way.
 *
 * Threading and determinism (CPU): a batch of B >= 2 runs sequence by
 * sequence on the OpenMP threads (omp_get_max_threads(), i.e. -t), each
 * sequence's forward and backward with serial ops, its parameter gradients
 * going to one of min(max_batch, 4) gradient slots (sequence b to slot
 * b % slots) that are summed in order at the end; B = 1 runs the ops
 * themselves in parallel. Either way the results are bit-identical for any
 * thread count (the same B gives the same bits; B = 1 and B = 2 may round
 * differently). The slots cost (slots x parameters) more gradient memory,
 * counted under "grads" in the plan. Tiny batches stay on the calling
 * thread.
 *
 * Not thread-safe: one model, one caller at a time.
 */
#ifndef MD_NN_MODEL_H
#define MD_NN_MODEL_H

#include <stdint.h>

#include "backend/ops.h"
#include "nn/config.h"
#include "nn/params.h"

typedef struct md_model md_model_t;

/* md_model_opts_t.recompute: what a recomputing plan keeps (see above) */
enum { MD_RECOMPUTE_OFF = 0, MD_RECOMPUTE_INPUTS = 1, MD_RECOMPUTE_KEEP_STATES = 2 };
/* The recompute kind after a command-line flag asking for `kind`: the
 * larger of the two, so --recompute never undoes --keep-scan-states,
 * whatever their order. */
static inline int md_recompute_with(int current, int kind) { return current > kind ? current : kind; }

typedef struct md_model_opts {
    int recompute;           /* MD_RECOMPUTE_*: 1 keeps only block inputs, 2 the Mamba scan states too */
    /* 1: forward only (classification, logits, hidden states, evaluation
     * losses): one shared activation set, two residual streams in turn
     * instead of n_layer + 1, no backward scratch, and the scan keeps no
     * states for a backward (the CUDA scan then walks each sequence in one
     * pass). Calls asking for a backward fail with one error line. */
    int inference;
} md_model_opts_t;

/* Bytes of each category of the plan. weight_copies: the GEMM weights in
 * the backend's activation dtype (md_act_dtype) where it differs from the
 * model's (the bf16 CUDA table: numel bf16 values, refreshed from the
 * masters at the start of every forward pass), else 0. */
typedef struct md_model_memory {
    int64_t params, grads, activations, workspace, tokens, weight_copies;
    int64_t total;
} md_model_memory_t;

/* 1 when backend be has kernels for every op of architecture arch. */
int md_model_arch_supported(md_arch_t arch, const md_backend_t *be);

/* The backend a model of arch runs on, given the one the device resolved to:
 * be itself when it supports arch; the CPU backend, after a warning, when
 * the device was chosen by "-x auto"; NULL after one error line otherwise. */
const md_backend_t *md_backend_for_arch(md_arch_t arch, const md_backend_t *be, const char *device_spec);

/* Plans and allocates a model for batches of up to max_batch sequences of
 * up to max_len tokens, in dtype (MD_DTYPE_F32 or, on the CPU, MD_DTYPE_F64).
 * Weights are zero until md_model_init_weights or md_model_write_params.
 * Returns NULL after one error line: invalid config, unsupported dtype for
 * the backend, a backend without the architecture's ops (the CUDA backend
 * has no attention kernels yet), sizes < 1, max_len above a Hyena
 * config's l_max, or out of device memory (the line gives the plan's
 * total). The config is copied; be must outlive the model. */
md_model_t *md_model_new(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dtype, int64_t max_batch,
                         int64_t max_len);
md_model_t *md_model_new_ex(const md_config_t *cfg, const md_backend_t *be, md_dtype_t dtype, int64_t max_batch,
                            int64_t max_len, const md_model_opts_t *opts);
void md_model_free(md_model_t *m);

/* Whether a model of cfg planned with opts keeps every layer's scan
 * states (MD_RECOMPUTE_KEEP_STATES on a Mamba model in training): other
 * models have none and plan that option as MD_RECOMPUTE_INPUTS. */
int md_model_keeps_scan_states(const md_config_t *cfg, const md_model_opts_t *opts);

/* The plan for these arguments without allocating anything (for `info`
 * and for choosing batch sizes). Returns 0, or -1 for an invalid config
 * (no message). */
int md_model_plan(const md_config_t *cfg, md_dtype_t dtype, int64_t max_batch, int64_t max_len,
                  const md_model_opts_t *opts, md_model_memory_t *mem);

/* The reference implementation's initialisation, deterministic by seed
 * (the same seed gives the same weights on every backend and dtype, as the
 * draws are made in double on the host and converted). Transformer++:
 * embedding and every matrix N(0, initializer_range = 0.02), o_proj and
 * down_proj further scaled by 1/sqrt(2 n_layer), norms 1. Mamba:
 *   embedding N(0, initializer_range); norms 1;
 *   in_proj, x_proj: U(+-1/sqrt(fan_in)) (torch's default Linear init);
 *   conv1d weight and bias: U(+-1/sqrt(d_conv)) (default Conv1d init);
 *   dt_proj.weight U(+-dt_rank^-1/2); dt_proj.bias = softplus^-1(dt),
 *   dt = exp(U(log dt_min, log dt_max)) floored at dt_init_floor;
 *   A_log[e, n] = log(n + 1); D = 1;
 *   out_proj U(+-1/sqrt(d_inner)) / sqrt(n_layer).
 * Hyena (HyenaDNA's _init_weights): embedding and every Linear weight,
 * the filter MLP's included, N(0, 0.02), out_proj and fc2 further scaled
 * by 1/sqrt(2 n_layer), Linear biases 0, LayerNorms 1 and 0, the short
 * filter U(+-1/sqrt(d_conv)) (torch's Conv1d default), the Sin frequency
 * filter_freq (10), D N(0, 1).
 * Classifier head: classifier.weight N(0, initializer_range), bias 0.
 * Each tensor draws from its own stream (seed, entry index), so adding a
 * tensor does not change the others. Gradients are not touched. */
void md_model_init_weights(md_model_t *m, uint64_t seed);

const md_config_t *md_model_config(const md_model_t *m);
const md_params_t *md_model_params(const md_model_t *m);
const md_backend_t *md_model_backend(const md_model_t *m);
md_dtype_t md_model_dtype(const md_model_t *m);
int64_t md_model_max_batch(const md_model_t *m);
int64_t md_model_max_len(const md_model_t *m);
void md_model_memory(const md_model_t *m, md_model_memory_t *mem);

/* The flat parameter and gradient buffers: 1-D tensors of
 * md_model_params()->numel elements of the model's dtype on the backend's
 * device, laid out as the registry says. The optimizer updates the
 * parameter buffer in place; the model reads it on every call. */
md_tensor_t md_model_param_buffer(md_model_t *m);
md_tensor_t md_model_grad_buffer(md_model_t *m);

/* Gradient readiness, for data parallelism to exchange gradients while the
 * backward still runs (train/gradsync.h). With fn set, every backward pass
 * (md_model_forward_backward, md_model_classify) calls fn(ud, layer) as
 * parameter gradients become final for this call: layer = n_layer once the
 * head and the final norm are done, then l after block l's backward
 * (n_layer-1 down to 0), then -1 after the embedding. After fn(ud, l) no
 * element of a tensor whose md_param_ready_layer is >= l is written again
 * by this call; after fn(ud, -1) none at all. "Written" is in the order of
 * the backend's stream: fn runs on the host when the work is queued, not
 * done, so an asynchronous reader must be ordered after the work queued so
 * far. Calls may be left out, never reordered: the CPU's per-sequence path
 * (B >= 2) sums its gradient slots at the end and calls fn(ud, -1) alone.
 * The hook sees every backward while set (arm it for the last micro-batch
 * of an accumulation); fn = NULL removes it. */
typedef void (*md_grad_ready_fn)(void *ud, int64_t layer);
void md_model_set_grad_ready(md_model_t *m, md_grad_ready_fn fn, void *ud);

/* The `layer` of md_model_set_grad_ready after which entry p's gradient is
 * final: its block, n_layer for the head, the final norm and the
 * classifier, -1 for the embedding (which a tied LM head also writes). */
int64_t md_param_ready_layer(const md_params_t *reg, const md_param_t *p);

/* Sets every gradient to 0. Gradients otherwise only accumulate. */
void md_model_zero_grad(md_model_t *m);

/* Copies all parameters (numel values, registry layout) to or from host
 * floats, converting from or to the model's dtype. For checkpoints. */
void md_model_read_params(const md_model_t *m, float *dst);
void md_model_write_params(md_model_t *m, const float *src);

typedef struct md_loss {
    double loss_sum;         /* sum over counted targets of -ln p(target), nats */
    int64_t n_targets;       /* targets counted: those that are A, C, G or T */
} md_loss_t;

/* One forward pass over B sequences of L tokens, and optionally the
 * backward. inputs and targets are host arrays of B*L HyenaDNA token ids
 * (row b = sequence b); for next-base prediction targets[b][t] is the base
 * after inputs[b][t]. Targets that are not A/C/G/T (N, PAD, specials) are
 * left out of the loss.
 *
 * out gets the loss SUM and the count of counted targets, so callers can
 * average over micro-batches and validation sets exactly:
 * mean loss = sum of loss_sum / sum of n_targets.
 *
 * With do_backward, the gradient of loss_sum (the SUM, not the mean) is
 * ADDED to the gradient buffer: accumulate micro-batches, then scale by
 * 1 / (total n_targets) -- e.g. through adamw's grad_scale or
 * be->scale -- before clipping. Zero the buffer with md_model_zero_grad
 * at the start of each optimizer step.
 *
 * Returns 0, or -1 after one error line when B or L exceed the planned
 * maxima or are < 1, or a token id is >= the vocabulary. */
int md_model_forward_backward(md_model_t *m, const uint8_t *inputs, const uint8_t *targets, int64_t B, int64_t L,
                              int do_backward, md_loss_t *out);

/* The checks md_model_forward_backward makes of its arguments (sizes
 * within the plan, token ids within the vocabulary, no backward of a model
 * planned for inference): 0, or -1 after that one error line. */
int md_model_check_inputs(const md_model_t *m, const uint8_t *inputs, int64_t B, int64_t L, int do_backward);

/* md_model_forward_backward (with the backward) for a training step that
 * the host does not wait on (backend/devstep.h): inputs and targets are
 * B*L token ids already in the backend's device memory, checked by the
 * caller (md_model_check_inputs on the host copy), and the loss sum and
 * the count are ADDED to loss_acc[0] and loss_acc[1], two doubles of
 * device memory (the backend's xent_acc), instead of being returned. Every
 * operation is queued on the backend's stream, none waits for it: the
 * call can be captured into a CUDA graph and replayed. Only where the
 * batch runs as one span (a GPU; the CPU's B = 1): -1 after one error line
 * otherwise, and for sizes beyond the plan or a model planned for
 * inference. */
int md_model_forward_backward_dev(md_model_t *m, const void *inputs, const void *targets, int64_t B, int64_t L,
                                  double *loss_acc);

/* Forward only: writes host logits (B, L, vocab_size) as floats (natural
 * log-odds; log-softmax them for probabilities). Same limits and return
 * as above. */
int md_model_logits(md_model_t *m, const uint8_t *inputs, int64_t B, int64_t L, float *logits);

/* Forward only: the final hidden states after norm_f, host floats
 * (B, L, d_model), for classifier heads and embeddings. */
int md_model_hidden(md_model_t *m, const uint8_t *inputs, int64_t B, int64_t L, float *hidden);

/* ---- sequence classification (cfg->n_classes = C > 0) ----
 *
 * The head sits on the final hidden states hf (after norm_f), shared by
 * every architecture:
 *   pooled_b = hf[b, L-1]  (MD_POOL_LAST)  or  mean_t hf[b, t]  (MD_POOL_MEAN)
 *   logits_b = classifier.weight pooled_b + classifier.bias        (C)
 *   loss     = sum over labelled b of -log_softmax(logits_b)[label_b]
 * The pooling, the head and their backward are gemm/add/memset ops on the
 * device (mean pooling is a gemm with a vector of ones; the bias, an outer
 * product with one); the softmax of the (B, C) logits runs on the host in
 * double, as the caller needs those B x C values on the host anyway: the
 * copies are B x C numbers each way, and no backend needs a kernel of its
 * own for the head. */
typedef struct md_class_result {
    double loss_sum;         /* sum over labelled sequences of -ln p(label), nats */
    int64_t n_labelled;      /* sequences with a label (>= 0) */
    int64_t n_correct;       /* labelled sequences whose most probable class is the label */
} md_class_result_t;

/* One forward pass of B sequences of L tokens (host ids, row b = sequence
 * b) through the classifier, and optionally the backward. labels: B class
 * indices, -1 = unlabelled (left out of the loss), or NULL (none labelled).
 * logprobs: NULL, or host (B, C) floats receiving each sequence's class
 * log-probabilities. With do_backward the gradient of loss_sum (the SUM;
 * scale by 1 / n_labelled as for md_model_forward_backward) is ADDED to
 * the gradient buffer; the LM head gets none. Returns 0, or -1 after one
 * error line: not a classifier, sizes as for md_model_forward_backward, a
 * token id outside the vocabulary or a label >= C. */
int md_model_classify(md_model_t *m, const uint8_t *inputs, const int32_t *labels, int64_t B, int64_t L,
                      int do_backward, float *logprobs, md_class_result_t *out);

/* Model FLOPs per token of one forward pass at sequence length L:
 * the matmuls (2 per multiply-add; for Transformer++ the causal attention's
 * QK^T and PV too, (L+1)/2 keys per query on average) plus the elementwise
 * work (Mamba: the scan, about 9 per state element per step, conv, norms
 * and loss). A training
 * step (forward + backward) costs about 3x this, plus the recomputed
 * states in the scan backward. `matmul_only` gets the matmul part alone. */
double md_model_flops_per_token(const md_config_t *cfg, int64_t L, double *matmul_only);

#endif
