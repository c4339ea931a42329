/* A debugging aid of the CUDA backend: with MD_CUDA_OP_TIMES=1 in the
 * environment, the GPU time of every timed call (a kernel launch, a cuBLAS
 * or cuFFT call, a copy: what one CK() or mark pair wraps, between two CUDA
 * events on the backend's stream) is summed per op name and printed to
 * stderr as [M::] lines when the process exits (or at md_op_timer_stop),
 * largest first. Off (one cached getenv) otherwise. The host waits for the
 * device before each call, so a call's GPU time is its own work plus one
 * launch latency (a few microseconds), never the host's gaps; the run is
 * slower than without the variable.
 *
 * Beside the GPU time, each op's row has the host's time inside its calls
 * (the launches themselves) and between the previous call's end and its
 * start (the host work that precedes it: descriptors, heuristics, model
 * code), per call; the last line has the timed region's wall time, the
 * GPU's busy share of it, and the host's issuing time (those two sums)
 * against the GPU time: where it comes near or over 100%, the host, not
 * the GPU, sets the step's pace without the variable.
 */
#ifndef MD_BACKEND_CUDA_OP_TIMER_H
#define MD_BACKEND_CUDA_OP_TIMER_H

/* 1 when MD_CUDA_OP_TIMES is set to a value other than 0 */
int md_op_timer_on(void);
/* 1 when MD_CUDA_OP_TIMES=shapes: the GEMMs are then timed per shape, one
 * row for each (op, m x n x k, transposes), not per op. */
int md_op_timer_shapes(void);
/* The row name "base m x n x k tAB" for a timed GEMM, kept for the process
 * (base, a string literal, once SHAPE_NAMES distinct shapes are taken). */
const char *md_op_timer_shape_name(const char *base, long long m, long long n, long long k, int ta, int tb);
/* Marks the start (end = 0) or the end (end = 1) of one call of op `op`
 * (a string literal or md_op_timer_shape_name's: kept by pointer) on the
 * legacy default stream (ordered after and before the backend's blocking
 * stream's work). */
void md_op_timer_mark(const char *op, int end);
/* Forgets the totals so far (e.g. after warm-up steps) and starts the
 * wall clock of the timed region. */
void md_op_timer_reset(void);
/* Prints the table now (nothing when the variable is unset) and times
 * nothing more until the next md_op_timer_reset (e.g. the teardown). */
void md_op_timer_stop(void);

#endif
