/* What the host files of the CUDA backend share (cuda_backend.c: the table
 * and the Mamba/Transformer ops; cuda_hyena.c: the Hyena ops): the
 * backend's private state and the checking helpers. Not a public header. */
#ifndef MD_BACKEND_CUDA_INTERNAL_H
#define MD_BACKEND_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdlib.h>

#include "backend/ops.h"
#include "op_timer.h"
#include "util/log.h"

/* Scratch for the fixed-order reductions (per-slice partials of parameter
 * gradients, the squared norm): allocated once with the backend, so that
 * ops never allocate. */
#define SCRATCH_BYTES ((size_t)32 << 20)

struct cuda_fft_cache;   /* cuda_hyena.c: the cuFFT plans kept per shape */

typedef struct {
    int ordinal;
    cublasHandle_t blas;
    float *scratch;        /* SCRATCH_BYTES */
    double *result;        /* 2 doubles: a reduction's result on the device */
    size_t in_use, peak;   /* bytes from alloc, this process */
    struct cuda_fft_cache *fft;   /* made on the first FFT op or query */
} cuda_ctx_t;

#define CTX(be) ((cuda_ctx_t *)(be)->ctx)

/* A failing CUDA call is otherwise a bug or a broken device: one line, then
 * abort. */
static inline void fail(const char *op, const char *what)
{
    md_error("backend cuda, op %s: %s", op, what);
    abort();
}

/* Out of GPU memory inside an op (the runtime, cuBLAS or cuFFT allocating
 * behind the plan): a failure the user causes with too large a batch,
 * length or model, so one line naming the op, what was asked and a hint,
 * and exit 1 -- no abort, no core dump. Checkpoints on disk are whole
 * (written atomically), so the run resumes once the settings fit. */
static inline void fail_oom(const char *op, const char *what)
{
    md_error("backend cuda, op %s: out of GPU memory (%s); try a smaller batch (-B, or finetune's --micro-batch), "
             "--recompute or a shorter -L", op, what);
    exit(1);
}

static inline void fail_cuda(const char *op, cudaError_t e)
{
    if (e == cudaErrorMemoryAllocation) fail_oom(op, cudaGetErrorString(e));
    fail(op, cudaGetErrorString(e));
}

/* Every CUDA call goes through CK, so MD_CUDA_OP_TIMES (op_timer.h) sees
 * every op's kernels. */
#define CK(call, op)                                             \
    do {                                                         \
        int t_ = md_op_timer_on();                               \
        if (t_) md_op_timer_mark(op, 0);                         \
        cudaError_t e_ = (call);                                 \
        if (t_) md_op_timer_mark(op, 1);                         \
        if (e_ != cudaSuccess) fail_cuda(op, e_);                \
    } while (0)

#define OP_REQUIRE(cond, op)                                                                 \
    do {                                                                                     \
        if (!(cond)) fail(op, "internal error, " #cond " does not hold");                    \
    } while (0)

static inline void f32_dev(const md_tensor_t *t, const char *op)
{
    OP_REQUIRE(t->dtype == MD_DTYPE_F32, op);
    OP_REQUIRE(t->device == MD_DEVICE_CUDA, op);
    OP_REQUIRE(t->ld >= md_tensor_ncols(t), op);
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

/* cuda_hyena.c: fills the Hyena section of a table (bf16: the bf16 table's). */
void md_cuda_hyena_install(md_backend_t *be, int bf16);

#endif
