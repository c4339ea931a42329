/* The data-parallel gradient exchange in buckets overlapped with the
 * backward (the design is the README's "Data parallelism").
 *
 * The flat gradient buffer (nn/params.h) is cut, in storage order at
 * tensor boundaries, into buckets of about --bucket-mb MiB. Each bucket is
 * final once the backward has passed the lowest layer it holds a tensor of
 * (md_param_ready_layer); the model's readiness hook
 * (md_model_set_grad_ready) then starts its all-reduce
 * (md_comm_allreduce_start) while the backward goes on with earlier
 * blocks. Buckets start in one fixed order -- by that layer from the last
 * block down, then from the buffer's end -- the same on every rank whatever
 * each rank's readiness calls were (a rank whose batch share runs
 * sequence by sequence learns only at the end), as collectives require.
 * Every element is summed by exactly one all-reduce, so the sums are those
 * of one all-reduce of the whole buffer (the test dist_buckets.sh holds
 * the two to the same bits).
 */
#ifndef MD_TRAIN_GRADSYNC_H
#define MD_TRAIN_GRADSYNC_H

#include <stdint.h>

#include "dist/comm.h"
#include "nn/model.h"

typedef struct md_grad_sync md_grad_sync_t;

/* Plans the buckets of m's gradient buffer for comm (bucket size
 * md_comm_bucket_mb; 0 or more than the buffer: one bucket, exchanged
 * after the backward) and logs the plan. Never fails. */
md_grad_sync_t *md_grad_sync_new(md_model_t *m, md_comm_t *comm);
void md_grad_sync_free(md_grad_sync_t *s);

int64_t md_grad_sync_n_buckets(const md_grad_sync_t *s);

/* Arms the model's readiness hook: buckets start during the next backward
 * (the last micro-batch of a step). */
void md_grad_sync_arm(md_grad_sync_t *s);

/* Removes the hook, starts every bucket not yet started and waits for
 * them all (md_comm_wait): the gradient buffer then holds the sums. 0, or
 * -1 after one error line (the first failed start's). */
int md_grad_sync_finish(md_grad_sync_t *s);

#endif
