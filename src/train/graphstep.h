/* The next-base training step on a GPU with its scalars on the device
 * (backend/devstep.h), run op by op or captured as a CUDA graph and
 * replayed: what pretrain and bench train run on one CUDA device instead
 * of md_train_step (train/trainer.h), whose host path stays for the CPU,
 * for several ranks and for finetune (its classification head takes its
 * softmax on the host).
 *
 * A step: the tokens of all accum micro-batches are drawn on the host,
 * checked and copied to a device staging buffer in one copy; then the
 * device work -- zero the gradient, accum forward + backward passes adding
 * their loss on the device, the gradient norm, the clip, the non-finite
 * guard's verdict and AdamW -- is queued with nothing for the host to wait
 * on, and the host waits once at the end for the loss and the norm. With
 * graphs on, the first step at a shape (B, L, accum) runs op by op (making
 * the FFT plans and cuBLAS's choices the capture needs), the second is
 * captured and every later one at that shape replays the graph: a few
 * launches instead of some hundred per micro-batch. A step at another
 * shape (sequence-length warmup's stages) starts over, and so does the
 * step after an FFT plan the graph ran was pushed out of the backend's
 * cache; should a graph fail to be made, a warning says so and the steps
 * run op by op from then on. The same kernels
 * run in the same order either way: graph and op by op give the same bits,
 * and so does the host path of md_train_step on the same backend. */
#ifndef MD_TRAIN_GRAPHSTEP_H
#define MD_TRAIN_GRAPHSTEP_H

#include <stdint.h>

#include "nn/model.h"
#include "train/adamw.h"
#include "train/progress.h"
#include "train/trainer.h"

/* --cuda-graph: auto (graphs where they apply, op by op elsewhere with a
 * log line), on (an error where they cannot apply), off. */
typedef enum { MD_CUDA_GRAPH_AUTO = 0, MD_CUDA_GRAPH_ON = 1, MD_CUDA_GRAPH_OFF = 2 } md_cuda_graph_t;

/* "auto", "on" or "off" into *mode; 0, or -1 after one error line naming
 * the option opt. */
int md_cuda_graph_parse(const char *opt, const char *s, md_cuda_graph_t *mode);

#define MD_CUDA_GRAPH_HELP \
    "      --cuda-graph STR     the training step as a CUDA graph: auto, on or off [auto]\n"

/* For a command whose model is m, trained on `ranks` ranks, with a
 * single-shard optimizer: *kind is what runs, after one md_info line
 * saying so (none on the CPU, where --cuda-graph auto and off change
 * nothing). 0, or -1 after one error line: --cuda-graph on where graphs
 * cannot apply (the CPU, several ranks; `why_not`, when not NULL, is
 * another reason of the caller's, e.g. finetune's host-side softmax). */
typedef enum { MD_STEP_HOST = 0, MD_STEP_DEVICE = 1, MD_STEP_GRAPH = 2 } md_step_kind_t;
int md_step_kind_choose(md_cuda_graph_t mode, const md_model_t *m, int ranks, const char *why_not,
                        md_step_kind_t *kind);

typedef struct md_graph_step md_graph_step_t;

/* The device step for m (kind MD_STEP_DEVICE or MD_STEP_GRAPH); NULL after
 * one error line (out of memory). */
md_graph_step_t *md_graph_step_new(md_model_t *m, md_step_kind_t kind);
void md_graph_step_free(md_graph_step_t *g);

/* The tokens of micro-batch `micro` of a step: B rows of len input ids to
 * in and their targets to tg (host, B * len each). 0, or -1 after one
 * error line. */
typedef int (*md_micro_tokens_fn)(void *ud, int64_t micro, uint8_t *in, uint8_t *tg);

/* One optimizer step at 0-based `step` of accum micro-batches of B x len
 * tokens from fn, at rate lr with the norm clipped to clip (0 = off):
 * md_train_step's contract (returns 0, 1 for a skipped step, -1 after one
 * error line; *r filled unless fn or a check failed). opt: md_adamw_init's,
 * f32, on m's backend. */
int md_graph_step_run(md_graph_step_t *g, md_adamw_t *opt, int64_t B, int64_t len, int64_t accum,
                      md_micro_tokens_fn fn, void *ud, double lr, double clip, int64_t step, md_progress_t *pg,
                      md_step_guard_t *guard, md_step_result_t *r);

/* Steps run so far as a replay of a captured graph (for tests). */
int64_t md_graph_step_replays(const md_graph_step_t *g);

#endif
