/* The optimizer step's scalars on the GPU, and the step as a CUDA graph.
 *
 * A training step of a small model at L = 1024 is a few hundred kernels of
 * microseconds each: the host's launch rate, not the GPU, sets its pace, and
 * the host waits twice more inside it (the loss of every micro-batch, the
 * gradient norm). An md_devstep_t keeps every scalar of the step on the
 * device instead -- the loss sum and count that the backend's xent_acc adds
 * up, the squared gradient norm, the clip factor, the non-finite guard's
 * verdict and AdamW's per-step factors -- so that the whole step is one
 * queue of work with nothing for the host to wait on, which can then be
 * captured once into a CUDA graph and replayed as one launch.
 *
 * The step, in the order the caller queues it on the backend:
 *   md_devstep_set          (host) the per-step scalars into the block;
 *   md_devstep_begin        copies them in, zeroes the loss accumulator;
 *   ... zero the gradient, run every micro-batch with the model's
 *       md_model_forward_backward_dev into md_devstep_loss_acc ...
 *   md_devstep_update       [test hook: a NaN into the gradient], the
 *                           gradient's squared norm, the clip factor and
 *                           the verdict (finalize), AdamW reading its
 *                           scalars from the device (nothing when the loss
 *                           or the norm is not finite), and the results
 *                           copied back to the block;
 *   md_devstep_wait         (host) waits; the results.
 * The arithmetic is the host path's, operation for operation (train/adamw.c
 * and trainstep.c with the backend's xent, sumsq and adamw ops): the same
 * bits.
 *
 * Capture: md_devstep_capture_begin before md_devstep_begin and
 * md_devstep_capture_end after md_devstep_update record the work queued in
 * between, unexecuted, as the step's graph; md_devstep_replay launches it
 * (after md_devstep_set, before md_devstep_wait), reading the scalars the
 * host set and the tokens where they were captured from. A graph holds
 * the pointers, sizes and kernels of its capture: replay it only for the
 * same shapes and buffers. Every library handle and FFT plan the step uses
 * must exist before the capture: run the step once uncaptured first.
 *
 * CUDA only: md_devstep_new returns NULL on another backend (and in a build
 * without CUDA); the CPU keeps its host path.
 */
#ifndef MD_BACKEND_DEVSTEP_H
#define MD_BACKEND_DEVSTEP_H

#include <stdint.h>

#include "backend/ops.h"

typedef struct md_devstep md_devstep_t;

/* What the host knows before a step: AdamW's hyper-parameters (grad_scale
 * unused: the device computes it), the norm limit (<= 0: off) and the test
 * hook's request for a NaN gradient (trainguard.h). */
typedef struct md_devstep_in {
    md_adamw_hparams_t hp;
    double clip;
    int poison;
} md_devstep_in_t;

/* What the step computed. */
typedef struct md_devstep_out {
    double loss_sum;        /* over the micro-batches' counted targets */
    int64_t count;          /* targets counted */
    double grad_norm;       /* of the mean loss's gradient, before clipping */
    int skipped;            /* the loss or the norm was not finite: no update */
} md_devstep_out_t;

/* The step's state on be: NULL when be is not a CUDA backend (no message),
 * or after one error line when out of memory. */
md_devstep_t *md_devstep_new(const md_backend_t *be);
void md_devstep_free(md_devstep_t *d);

/* Two doubles of device memory: the loss accumulator for xent_acc. */
double *md_devstep_loss_acc(md_devstep_t *d);

void md_devstep_set(md_devstep_t *d, const md_devstep_in_t *in);
void md_devstep_begin(md_devstep_t *d);
/* param, grad, m, v: n contiguous f32 elements each on the device, the
 * first n_decay decayed; poison_hook: queue the test hook's kernel (it
 * acts only on a step whose md_devstep_in_t.poison is set). */
void md_devstep_update(md_devstep_t *d, void *param, void *grad, void *m, void *v, int64_t n,
                       int64_t n_decay, int poison_hook);
void md_devstep_wait(md_devstep_t *d, md_devstep_out_t *out);

/* 1 when the step can be captured on be; else 0 with *why saying what
 * stands in the way (MD_CUDA_OP_TIMES, whose timer waits on every op). */
int md_devstep_capturable(const md_backend_t *be, const char **why);

/* Starts recording the backend's stream (the previous graph, if any, is
 * dropped). */
void md_devstep_capture_begin(md_devstep_t *d);
/* Ends the recording and makes the graph; 0, or -1 after one warning
 * line (the graph could not be made: nothing was run, the caller runs the
 * step uncaptured). A call inside the step that cannot be captured fails
 * at once instead, as any failing op does (cuda_check.h). */
int md_devstep_capture_end(md_devstep_t *d);
/* 1 when a graph was captured and is still good: no FFT plan that it may
 * use has been destroyed since (the backend keeps a bounded cache). */
int md_devstep_has_graph(const md_devstep_t *d);
void md_devstep_replay(md_devstep_t *d);
void md_devstep_drop_graph(md_devstep_t *d);

#endif
