/* The fused selective scan (S6) on a CUDA GPU: a C-callable launcher API.
 *
 * Math, layouts and gradient conventions are those of backend/ops.h's
 * scan_fwd / scan_bwd (mamba_ssm's selective_scan_fn with delta_softplus,
 * delta_bias, D and z):
 *   dt  = softplus(delta + dt_bias)          (= x above 20)
 *   A   = -exp(A_log)
 *   h_t = exp(dt_t A) h_{t-1} + dt_t Bm_t u_t       (per channel, N states)
 *   y_t = (Cm_t . h_t + D u_t) * silu(z_t)
 * Sequence tensors are (B*L, cols) row-major views in (B, L, ·) layout with
 * a row stride ld (elements, 64-bit): u, delta, z, y and their gradients
 * (B*L, E); Bm, Cm and theirs (B*L, N). A_log (E, N), D (E), dt_bias (E)
 * and their gradients are contiguous fp32. The sequence tensors are all f32
 * or all bf16 (dtype); the state and every sum inside are fp32.
 *
 * The sequence is cut into chunks of MD_SCAN_CHUNK steps, processed in
 * parallel: a pass computes each chunk's effect from a zero state, a short
 * pass propagates the chunk-start states (the recurrence is linear in h),
 * and a last pass recomputes each chunk from its true start state. Only the
 * chunk-start states (fp32) reach device memory, and, when the caller
 * gives room for them, the state entering every segment of a few steps
 * (seg_states below); the backward recomputes everything else. The
 * backward runs the reverse recurrence of d(loss)/dh the same way.
 *
 * Optional streaming state (may be NULL): h0 (B, E, N) is the state before
 * step 0 (zero when NULL), hT (B, E, N) receives the state after the last
 * step; in the backward, dhT (B, E, N) is d(loss)/d(hT) (zero when NULL) and
 * dh0 (B, E, N) receives d(loss)/d(h0).
 *
 * Determinism: no atomics anywhere. Every reduction (dBm, dCm over
 * channels; dA_log, dD, ddt_bias over batch and length) runs over a fixed
 * partition in a fixed order, so identical inputs give bit-identical
 * outputs on one GPU model.
 *
 * Gradients: du, ddelta, dz, dBm, dCm are WRITTEN; dA_log, dD, ddt_bias are
 * ADDED into (as in ops.h). ddelta may be delta itself (same pointer and
 * ld): the backward reads every element of delta before the thread that
 * owns it writes its gradient there, and no later read of it follows. No
 * other output may overlap an input.
 *
 * Every function returns cudaSuccess or the first error (a launch error, or
 * cudaErrorInvalidValue for bad sizes, NULL required pointers or too small a
 * workspace). Work is queued on `stream`; nothing synchronises.
 */
#ifndef MD_KERNELS_SCAN_API_H
#define MD_KERNELS_SCAN_API_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Steps per chunk. The backward keeps one state per 8 steps of a chunk in
 * shared memory, which bounds it. */
#define MD_SCAN_CHUNK 128
/* Largest d_state. */
#define MD_SCAN_MAX_STATE 64
/* Largest dt_rank of a forward that forms delta itself (delta NULL, below). */
#define MD_SCAN_MAX_DT_RANK 16

typedef enum { MD_SCAN_F32 = 0, MD_SCAN_BF16 = 1 } md_scan_dtype_t;

/* How a training call (states or workspace given) covers a sequence longer
 * than a chunk.
 *   CHUNKED: the chunks run in parallel (summaries, a propagation, then the
 *     chunks from their true start), for few channels and long sequences.
 *   WHOLE: each channel walks its sequence once, so a call needs B x E x
 *     NPAD/4 lanes of parallelism: the forward writes the chunk-start
 *     states as it passes them (no summaries, no propagation), the backward
 *     carries d(loss)/dh from chunk to chunk (no reverse summaries).
 *   AUTO: WHOLE when B x E x NPAD/4 >= MD_SCAN_WHOLE_LANES, else CHUNKED.
 * Both give the same results up to float rounding; a backward that
 * recomputes the states uses the forward's scheme, so its bits equal those
 * of a backward from saved states. The inference forward (neither states
 * nor workspace) ignores this. */
typedef enum { MD_SCAN_PASS_AUTO = 0, MD_SCAN_PASS_CHUNKED = 1, MD_SCAN_PASS_WHOLE = 2 } md_scan_pass_t;
/* 2048 warps, ~16 per SM of an H200 (132 SMs): below it, the whole-sequence
 * backward leaves SMs idle (two 256-thread blocks per SM at N = 16). */
#define MD_SCAN_WHOLE_LANES 65536

typedef struct md_scan_args {
    md_scan_dtype_t dtype;
    int64_t batch, len, d_inner, d_state;   /* B, L, E, N; all >= 1, N <= 64 */
    md_scan_pass_t pass;                    /* AUTO (0) unless testing or measuring */

    /* inputs */
    const void *u, *delta, *z, *Bm, *Cm;
    int64_t ld_u, ld_delta, ld_z, ld_B, ld_C;
    const float *A_log, *D, *dt_bias;
    /* delta NULL, for the inference forward only (neither states nor
     * workspace): delta[t, e] = sum_r dt_w[e * dt_rank + r] dt_low[t * ld_dt_low
     * + r] (r ascending, in fp32, never stored), dt_proj's product formed in
     * the scan; 1 <= dt_rank <= MD_SCAN_MAX_DT_RANK, both in the sequence
     * dtype, dt_w (d_inner, dt_rank) contiguous. Ignored when delta is set. */
    const void *dt_low, *dt_w;
    int64_t ld_dt_low, dt_rank;

    /* forward output; NULL in a training forward (states or workspace
     * given): the chunk-start states alone, for a backward that writes y
     * itself (y_out below); the chunked scheme then skips its output pass */
    void *y;
    int64_t ld_y;

    /* streaming state, optional */
    const float *h0;
    float *hT;

    /* Chunk-start states, optional, md_scan_states_bytes() long: the forward
     * writes them when not NULL, and a backward given them skips recomputing
     * them. Only meaningful for the same inputs and h0. A forward given a
     * workspace and no states writes them at the workspace's start, so a
     * backward can take the forward's workspace as its states. */
    float *states;

    /* Segment-start states, optional, md_scan_seg_states_bytes() long: the
     * fp32 state entering every segment of a chunk (8 steps at N <= 32, 16
     * above), written by a training forward as its output walk passes them
     * (that walk then runs even with y and hT NULL). A backward given them
     * reads each segment's start instead of walking every chunk a first
     * time to find it (~15% of its time), and ignores states, unless it
     * writes y_out (that backward walks from states as before). They cost
     * 8 bytes per channel and step at N <= 16 (16 above), 16x the chunk
     * states. Only meaningful for the same inputs and h0; the backward's
     * bits are those it gives from states. 16-byte aligned (they move 16
     * bytes at a time; cudaErrorInvalidValue otherwise). */
    float *seg_states;

    /* backward */
    const void *dy;
    int64_t ld_dy;
    void *du, *ddelta, *dz, *dBm, *dCm;
    int64_t ld_du, ld_ddelta, ld_dz, ld_dB, ld_dC;
    float *dA_log, *dD, *ddt_bias;
    const float *dhT;   /* optional */
    float *dh0;         /* optional */
    /* optional: the forward's y written again, the bits md_scan_fwd's
     * training kernels write for the same inputs (the backward forms
     * C . h + D u for dz in any case); must not overlap an input */
    void *y_out;
    int64_t ld_y_out;

    /* scratch, of at least the matching *_workspace() bytes; may be NULL
     * when that size is 0. A float's alignment is enough; at 16 bytes (as
     * cudaMalloc gives) the propagation and dbc_reduce load 16 bytes at a
     * time, with the same results. The same holds for states. */
    void *workspace;
    size_t workspace_bytes;
} md_scan_args_t;

/* Bytes of the chunk-start states (0 when the sequence is one chunk). */
size_t md_scan_states_bytes(int64_t batch, int64_t len, int64_t d_inner, int64_t d_state);
/* Bytes of the segment-start states (seg_states above). */
size_t md_scan_seg_states_bytes(int64_t batch, int64_t len, int64_t d_inner, int64_t d_state);
/* Scratch bytes of md_scan_fwd / md_scan_bwd for these sizes; enough for
 * any smaller batch and length too. The backward's does not depend on
 * whether states are given. */
size_t md_scan_fwd_workspace(int64_t batch, int64_t len, int64_t d_inner, int64_t d_state);
size_t md_scan_bwd_workspace(int64_t batch, int64_t len, int64_t d_inner, int64_t d_state);

/* Reads u, delta, z, Bm, Cm, A_log, D, dt_bias (and h0); writes y (and hT,
 * states). With neither states nor workspace, the forward for inference
 * (selective_scan_infer.cu): each sequence runs in one pass (no chunk
 * states, no scratch, B x E lanes of parallelism), which suits inference
 * over many sequences; its y agrees
 * with the training forward's to float rounding, not bit for bit, so a
 * training forward passes its states pointer even where one chunk needs
 * none (md_scan_states_bytes() = 0). The inference forward refuses row
 * strides of u, delta, z or y above INT_MAX (cudaErrorInvalidValue). */
cudaError_t md_scan_fwd(const md_scan_args_t *a, cudaStream_t stream);
/* Reads dy, the forward's inputs (and h0, dhT, states); writes du, ddelta,
 * dz, dBm, dCm (and dh0, y_out); adds into dA_log, dD, ddt_bias. */
cudaError_t md_scan_bwd(const md_scan_args_t *a, cudaStream_t stream);

/* Fills n elements of dtype dt (f32 or bf16) at p with uniform values in
 * [lo, hi) from a counter-based hash of (seed, index): the same seed gives
 * the same values on any GPU. For tests and benchmarks. */
cudaError_t md_scan_fill_uniform(void *p, md_scan_dtype_t dt, int64_t n, uint64_t seed, float lo, float hi,
                                 cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
