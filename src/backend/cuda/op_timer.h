/* A debugging aid of the CUDA backend: with MD_CUDA_OP_TIMES=1 in the
 * environment, the GPU time of every op (the kernels and cuBLAS calls it
 * queues, between two CUDA events on the backend's stream) is summed per
 * op name and printed to stderr as [M::] lines when the process exits,
 * largest first. Off (one cached getenv) otherwise. The host waits for the
 * device before each op, so an op's time is its own work plus one launch
 * latency (a few microseconds), never the host's gaps; the run is slower
 * than without the variable.
 */
#ifndef MD_BACKEND_CUDA_OP_TIMER_H
#define MD_BACKEND_CUDA_OP_TIMER_H

/* 1 when MD_CUDA_OP_TIMES is set to a value other than 0 */
int md_op_timer_on(void);
/* Marks the start (end = 0) or the end (end = 1) of one call of op `op`
 * (a string literal: kept by pointer) on the legacy default stream. */
void md_op_timer_mark(const char *op, int end);
/* Forgets the totals so far (e.g. after warm-up steps). */
void md_op_timer_reset(void);

#endif
