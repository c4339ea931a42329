/* How the CUDA backend reports a failed CUDA, cuBLAS or cuFFT call, and
 * the fault injection that lets tests trigger every such report on a real
 * GPU. Not a public header; cuda_internal.h builds CK and f32_dev on it.
 *
 * Every failure prints exactly one md_error line, "backend cuda, op OP:
 * ...", naming the backend op that made the call, what failed in words
 * (the library's status translated, the CUDA error's description and
 * name) and a size: the product's M x N x K, the FFT's sequences and
 * points, or else the op's largest tensor (rows x cols and bytes). Then
 * one of three endings:
 *
 *  - the user's settings: out of memory (a runtime call, cuBLAS or cuFFT
 *    allocating inside an op; the GPU's free memory is given), a kernel
 *    launch beyond the GPU's resources or grid limits, an FFT larger than
 *    cuFFT handles. A hint follows (a smaller batch, --recompute, a shorter
 *    -L), then exit(1).
 *  - the machine: the GPU or its driver failed (an uncorrectable ECC
 *    error, the display watchdog, no GPU available, a driver too old, no
 *    kernel image for this GPU). A hint follows, then exit(1).
 *  - a bug in mambadna: everything else (an illegal address, an invalid
 *    argument, an internal check of OP_REQUIRE). The line says so, then
 *    abort().
 *
 * exit(1) runs the atexit handlers: outputs not yet committed are removed
 * (util/outfile.h), MD_CUDA_OP_TIMES prints its table. Checkpoints on disk
 * are whole, so a run resumes once its settings fit.
 *
 * A kernel that fails while running (an illegal address, an ECC error, the
 * watchdog) is reported by the next call that waits for the device,
 * perhaps in a later op: the line names the op where it was detected and
 * says that an earlier op may have queued it (CUDA_LAUNCH_BLOCKING=1 makes
 * every launch wait, so that the op at fault is the one named).
 *
 * Fault injection, a test and debug knob like MD_CUDA_OP_TIMES: the
 * environment variable MD_CUDA_FAULT, read once when the first CUDA
 * backend is created (a malformed value makes that creation fail with one
 * error line). KIND@N makes the N-th (from 1) check point of that kind in
 * the process report a failure instead of what the call returned, so the
 * real reporting code runs:
 *
 *   alloc@N   the N-th be->alloc returns NULL, as cudaMalloc out of memory
 *             (the caller names the buffer: the model's plan, the optimizer)
 *   oom@N     the N-th call checked by CK (a kernel launch or a runtime
 *             call inside an op) returns cudaErrorMemoryAllocation
 *   launch@N  the same, cudaErrorLaunchOutOfResources
 *   bug@N     the same, cudaErrorIllegalAddress (the abort path)
 *   cublas@N  the N-th cuBLAS or cuBLASLt product returns
 *             CUBLAS_STATUS_ALLOC_FAILED
 *   cufft@N   the N-th cuFFT planning or execution returns
 *             CUFFT_ALLOC_FAILED
 *   count     injects nothing; at exit, one [M::] line gives how many
 *             check points of each kind the process passed (to aim N)
 *
 * oom, launch and bug share one counter (the CK check points). Nothing is
 * injected without the variable; the check costs one load per call.
 */
#ifndef MD_BACKEND_CUDA_CHECK_H
#define MD_BACKEND_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cufft.h>
#include <stdint.h>

/* Reads MD_CUDA_FAULT (first call only). Returns 0, or -1 after one error
 * line naming the variable when its value is malformed. */
int md_cuda_fault_init(void);

/* Nonzero once MD_CUDA_FAULT asks for anything: the check points below
 * then count their calls. */
extern int md_cuda_fault_armed;

/* The check points: each returns what the call returned, or the injected
 * failure when this call is the one MD_CUDA_FAULT names. */
int md_cuda_fault_alloc_slow(void);
cudaError_t md_cuda_fault_runtime_slow(cudaError_t e);
cublasStatus_t md_cuda_fault_cublas_slow(cublasStatus_t st);
cufftResult md_cuda_fault_cufft_slow(cufftResult r);

/* 1 when this be->alloc is to fail */
static inline int md_cuda_fault_alloc(void) { return md_cuda_fault_armed && md_cuda_fault_alloc_slow(); }
static inline cudaError_t md_cuda_fault_runtime(cudaError_t e)
{
    return md_cuda_fault_armed ? md_cuda_fault_runtime_slow(e) : e;
}
static inline cublasStatus_t md_cuda_fault_cublas(cublasStatus_t st)
{
    return md_cuda_fault_armed ? md_cuda_fault_cublas_slow(st) : st;
}
static inline cufftResult md_cuda_fault_cufft(cufftResult r)
{
    return md_cuda_fault_armed ? md_cuda_fault_cufft_slow(r) : r;
}

/* The size a failed call reports: the largest tensor the current op
 * checked (f32_dev notes every tensor an op checks), or the bytes of a
 * memory op (alloc, copy, memset0). An op's first note after a successful
 * CK (the end of the previous op) starts a new record; a failure in an op
 * that noted nothing (sync) reports the record of the op before it. */
typedef struct {
    const char *op;
    int64_t rows, cols;   /* the largest tensor noted so far, or 0 x 0 */
    size_t bytes;         /* its bytes, or the memory op's */
    int done;             /* a CK succeeded since the last note */
} md_cuda_op_shape_t;
extern md_cuda_op_shape_t md_cuda_op_shape;

static inline void md_cuda_note_start(const char *op)
{
    md_cuda_op_shape_t *s = &md_cuda_op_shape;
    if (s->done || s->op != op) s->op = op, s->rows = s->cols = 0, s->bytes = 0, s->done = 0;
}

static inline void md_cuda_note_tensor(const char *op, int64_t rows, int64_t cols)
{
    md_cuda_op_shape_t *s = &md_cuda_op_shape;
    md_cuda_note_start(op);
    if (rows * cols > s->rows * s->cols) s->rows = rows, s->cols = cols, s->bytes = (size_t)(rows * cols) * 4;
}

static inline void md_cuda_note_bytes(const char *op, size_t bytes)
{
    md_cuda_note_start(op);
    md_cuda_op_shape.bytes = bytes;
}

/* The reports; none returns. md_cuda_fail_cublas's `what` (printf-style)
 * names the failed call and its size, e.g. "cublasSgemm for a 8 x 4 x 2
 * product". */
__attribute__((noreturn)) void md_cuda_fail_runtime(const char *op, cudaError_t e);
__attribute__((noreturn, format(printf, 3, 4))) void md_cuda_fail_cublas(const char *op, cublasStatus_t st,
                                                                          const char *what, ...);
/* `what` (e.g. "planning") of `count` transforms of n points */
__attribute__((noreturn)) void md_cuda_fail_cufft(const char *op, cufftResult r, const char *what, int64_t n,
                                                  int64_t count);
/* a bug: an internal invariant does not hold */
__attribute__((noreturn)) void md_cuda_fail_bug(const char *op, const char *what);

#endif
