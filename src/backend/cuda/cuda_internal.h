/* What the host files of the CUDA backend share (cuda_backend.c: the table
 * and the Mamba ops; cuda_hyena.c: the Hyena ops; cuda_transformer.c: the
 * Transformer++ ops): the backend's private state and the checking helpers
 * (the reports behind them: cuda_check.h). Not a public header. */
#ifndef MD_BACKEND_CUDA_INTERNAL_H
#define MD_BACKEND_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdlib.h>

#include "backend/ops.h"
#include "backend_kernels.h"
#include "cuda_check.h"
#include "op_timer.h"
#include "util/log.h"

/* Scratch for the fixed-order reductions (per-slice partials of parameter
 * gradients, the squared norm): allocated once with the backend, so that
 * ops never allocate. */
#define SCRATCH_BYTES ((size_t)32 << 20)

struct cuda_fft_cache;   /* cuda_hyena.c: the cuFFT plans kept per shape */

typedef struct {
    int ordinal;
    /* The stream every op queues on: one stream, so the ops run in program
     * order. A blocking stream (cudaStreamCreate), so that the synchronous
     * copies and NCCL's calls on the legacy default stream stay ordered
     * with it as before; its own stream (not the legacy one) so that a
     * training step can be captured into a CUDA graph (devstep.h). */
    cudaStream_t stream;
    cublasHandle_t blas;
    float *scratch;        /* SCRATCH_BYTES */
    double *result;        /* 2 doubles: a reduction's result on the device */
    size_t in_use, peak;   /* bytes from alloc, this process */
    struct cuda_fft_cache *fft;   /* made on the first FFT op or query */
    /* FFT plans destroyed to make room (cuda_hyena.c): a captured graph
     * that ran one of them is stale (devstep.h) */
    unsigned plan_evictions;
} cuda_ctx_t;

#define CTX(be) ((cuda_ctx_t *)(be)->ctx)
#define STREAM(be) (CTX(be)->stream)

/* A broken internal invariant: a bug, reported by cuda_check.h (abort). */
static inline __attribute__((noreturn)) void fail(const char *op, const char *what) { md_cuda_fail_bug(op, what); }

/* Every CUDA runtime call and kernel launch of an op goes through CK, so
 * MD_CUDA_OP_TIMES (op_timer.h) sees every op's kernels, MD_CUDA_FAULT
 * (cuda_check.h) can fail any of them, and a failure is reported with the
 * op's name and size. */
#define CK(call, op)                                             \
    do {                                                         \
        int t_ = md_op_timer_on();                               \
        if (t_) md_op_timer_mark(op, 0);                         \
        cudaError_t e_ = md_cuda_fault_runtime(call);            \
        if (t_) md_op_timer_mark(op, 1);                         \
        if (e_ != cudaSuccess) md_cuda_fail_runtime(op, e_);     \
        md_cuda_op_shape.done = 1;                               \
    } while (0)

#define OP_REQUIRE(cond, op)                                                                 \
    do {                                                                                     \
        if (!(cond)) fail(op, "internal error, " #cond " does not hold");                    \
    } while (0)

/* also notes t's size for the op's failure reports (cuda_check.h) */
static inline void f32_dev(const md_tensor_t *t, const char *op)
{
    OP_REQUIRE(t->dtype == MD_DTYPE_F32, op);
    OP_REQUIRE(t->device == MD_DEVICE_CUDA, op);
    OP_REQUIRE(t->ld >= md_tensor_ncols(t), op);
    md_cuda_note_tensor(op, md_tensor_nrows(t), md_tensor_ncols(t));
}

/* An f32 or bf16 device tensor (the ops that take the bf16 table's
 * activations); returns 1 for bf16. */
static inline int fb_dev(const md_tensor_t *t, const char *op)
{
    OP_REQUIRE(t->dtype == MD_DTYPE_F32 || t->dtype == MD_DTYPE_BF16, op);
    OP_REQUIRE(t->device == MD_DEVICE_CUDA, op);
    OP_REQUIRE(t->ld >= md_tensor_ncols(t), op);
    return t->dtype == MD_DTYPE_BF16;
}

#define NROWS(t) md_tensor_nrows(t)
#define NCOLS(t) md_tensor_ncols(t)
#define F(t) ((float *)(t)->data)
#define CF(t) ((const float *)(t)->data)
#define SCRATCH_FLOATS (SCRATCH_BYTES / sizeof(float))

static inline size_t round256(size_t n) { return (n + 255) & ~(size_t)255; }

/* AdamW's per-step factors of hp as the adamw op rounds them, into b's
 * decay_mul, b1, b2, step_size, bc2_sqrt and eps (cuda_backend.c; the
 * device-resident step, cuda_step.c, sets the same). */
void md_cuda_adamw_scalars(const md_adamw_hparams_t *hp, mdk_step_block_t *b);

/* cuda_hyena.c: fills the Hyena section of a table (bf16: the bf16 table's). */
void md_cuda_hyena_install(md_backend_t *be, int bf16);

/* cuda_transformer.c: fills the Transformer++ section of a table (RoPE,
 * attention, SwiGLU; bf16: the bf16 table's). */
void md_cuda_transformer_install(md_backend_t *be, int bf16);

#endif
