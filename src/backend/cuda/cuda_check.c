/* The CUDA backend's failure reports and MD_CUDA_FAULT (cuda_check.h). */
#include "cuda_check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/outfile.h"

md_cuda_op_shape_t md_cuda_op_shape;

/* ---- fault injection ---- */

typedef enum { FAULT_ALLOC, FAULT_OOM, FAULT_LAUNCH, FAULT_BUG, FAULT_CUBLAS, FAULT_CUFFT, FAULT_COUNT } fault_kind_t;

static const char *const fault_names[] = {"alloc", "oom", "launch", "bug", "cublas", "cufft", "count"};

int md_cuda_fault_armed;
static fault_kind_t fault_kind;
static long long fault_at;
/* check points passed, per counter */
static long long n_alloc, n_runtime, n_cublas, n_cufft;

static void print_counts(void)
{
    md_info("MD_CUDA_FAULT=count: %lld alloc, %lld runtime (oom, launch, bug), %lld cublas, %lld cufft check points",
            n_alloc, n_runtime, n_cublas, n_cufft);
}

int md_cuda_fault_init(void)
{
    static int done, ret;
    if (done) return ret;
    done = 1;
    const char *s = getenv("MD_CUDA_FAULT");
    if (!s || !*s) return ret = 0;
    int k;
    for (k = 0; k <= FAULT_COUNT; k++) {
        size_t n = strlen(fault_names[k]);
        if (strncmp(s, fault_names[k], n)) continue;
        char *end = NULL;
        if (k == FAULT_COUNT && !s[n]) break;
        if (k != FAULT_COUNT && s[n] == '@' && s[n + 1] >= '1' && s[n + 1] <= '9' &&
            (fault_at = strtoll(s + n + 1, &end, 10)) > 0 && !*end)
            break;
    }
    if (k > FAULT_COUNT) {
        md_error("environment MD_CUDA_FAULT: '%s' is not KIND@N (KIND one of alloc, oom, launch, bug, cublas, "
                 "cufft; N from 1) nor 'count'", s);
        return ret = -1;
    }
    fault_kind = (fault_kind_t)k;
    md_cuda_fault_armed = 1;
    if (fault_kind == FAULT_COUNT) atexit(print_counts);
    return ret = 0;
}

int md_cuda_fault_alloc_slow(void) { return ++n_alloc == fault_at && fault_kind == FAULT_ALLOC; }

cudaError_t md_cuda_fault_runtime_slow(cudaError_t e)
{
    if (++n_runtime != fault_at) return e;
    switch (fault_kind) {
    case FAULT_OOM: return cudaErrorMemoryAllocation;
    case FAULT_LAUNCH: return cudaErrorLaunchOutOfResources;
    case FAULT_BUG: return cudaErrorIllegalAddress;
    default: return e;
    }
}

cublasStatus_t md_cuda_fault_cublas_slow(cublasStatus_t st)
{
    return ++n_cublas == fault_at && fault_kind == FAULT_CUBLAS ? CUBLAS_STATUS_ALLOC_FAILED : st;
}

cufftResult md_cuda_fault_cufft_slow(cufftResult r)
{
    return ++n_cufft == fault_at && fault_kind == FAULT_CUFFT ? CUFFT_ALLOC_FAILED : r;
}

/* ---- the reports ---- */

#define HINT_SIZE "try a smaller batch (-B, or finetune's --micro-batch), --recompute or a shorter -L"
#define BUG " (a bug in mambadna; please report this line)"

/* "12.0 MiB" and the like */
static const char *human_bytes(double b, char *buf, size_t n)
{
    if (b >= 1024.0 * 1024 * 1024) snprintf(buf, n, "%.1f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024) snprintf(buf, n, "%.1f MiB", b / (1024.0 * 1024));
    else snprintf(buf, n, "%.1f KiB", b / 1024.0);
    return buf;
}

/* "; 12.0 MiB of 139.8 GiB free on the GPU", or "" when the runtime cannot say */
static const char *free_memory(char *buf, size_t n)
{
    size_t fr = 0, total = 0;
    char a[32], b[32];
    if (cudaMemGetInfo(&fr, &total) != cudaSuccess) {
        cudaGetLastError();
        return "";
    }
    snprintf(buf, n, "; %s of %s free on the GPU", human_bytes((double)fr, a, sizeof a),
             human_bytes((double)total, b, sizeof b));
    return buf;
}

/* The op's size from its notes: " on tensors up to R x C (B)", " of B",
 * or the previous op's as " after op P on tensors ..." */
static const char *op_size(const char *op, char *buf, size_t n)
{
    const md_cuda_op_shape_t *s = &md_cuda_op_shape;
    char b[32], after[64] = "";
    if (!s->op || !s->bytes) return "";
    if (strcmp(s->op, op)) snprintf(after, sizeof after, " after op %s", s->op);
    if (s->rows > 0 && s->cols > 0)
        snprintf(buf, n, "%s on tensors up to %lld x %lld (%s)", after, (long long)s->rows, (long long)s->cols,
                 human_bytes((double)s->bytes, b, sizeof b));
    else snprintf(buf, n, "%s of %s", after, human_bytes((double)s->bytes, b, sizeof b));
    return buf;
}

__attribute__((noreturn)) static void die(int bug)
{
    if (bug) {   /* abort() runs no atexit handler: no half-written output either way */
        md_outfile_remove_open_temps();
        abort();
    }
    exit(1);
}

void md_cuda_fail_bug(const char *op, const char *what)
{
    md_error("backend cuda, op %s: %s" BUG, op, what);
    die(1);
}

/* A kernel's failure while running, reported by a later call. */
static int is_execution_error(cudaError_t e)
{
    switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorAssert:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable: return 1;
    default: return 0;
    }
}

/* The hint for a failure of the machine, or NULL when e is none. */
static const char *machine_hint(cudaError_t e)
{
    switch (e) {
    case cudaErrorECCUncorrectable: return "the GPU's memory is failing; check it with nvidia-smi -q -d ECC";
    case cudaErrorLaunchTimeout:
        return "the display's watchdog stopped a kernel; use a GPU without a display, or a smaller batch or -L";
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
        return "this mambadna was not compiled for this GPU; rebuild with CMAKE_CUDA_ARCHITECTURES set to its "
               "compute capability";
    case cudaErrorInsufficientDriver:
    case cudaErrorSystemDriverMismatch: return "the NVIDIA driver does not match this CUDA runtime; update it";
    case cudaErrorNoDevice:
    case cudaErrorDevicesUnavailable:
        return "the GPU is unavailable (taken by another process, or gone); check nvidia-smi";
    default: return NULL;
    }
}

void md_cuda_fail_runtime(const char *op, cudaError_t e)
{
    char sb[160], fb[96];
    const char *size = op_size(op, sb, sizeof sb), *words = cudaGetErrorString(e), *name = cudaGetErrorName(e);
    const char *where = is_execution_error(e) ? ", detected here (an earlier op may have queued the kernel at fault; "
                                                "CUDA_LAUNCH_BLOCKING=1 names it)"
                                              : "";
    const char *hint = machine_hint(e);
    if (e == cudaErrorMemoryAllocation) {
        md_error("backend cuda, op %s: out of GPU memory (%s, %s)%s%s; " HINT_SIZE, op, words, name, size,
                 free_memory(fb, sizeof fb));
        die(0);
    }
    if (e == cudaErrorLaunchOutOfResources || e == cudaErrorInvalidConfiguration) {
        md_error("backend cuda, op %s: a kernel launch exceeds the GPU's %s (%s, %s)%s; " HINT_SIZE, op,
                 e == cudaErrorLaunchOutOfResources ? "resources" : "grid limits", words, name, size);
        die(0);
    }
    if (hint) {
        md_error("backend cuda, op %s: the GPU failed (%s, %s)%s%s; %s", op, words, name, size, where, hint);
        die(0);
    }
    md_error("backend cuda, op %s: CUDA call failed (%s, %s)%s%s" BUG, op, words, name, size, where);
    die(1);
}

void md_cuda_fail_cublas(const char *op, cublasStatus_t st, const char *what, ...)
{
    char call[160], fb[96];
    va_list ap;
    va_start(ap, what);
    vsnprintf(call, sizeof call, what, ap);
    va_end(ap);
    const char *words = cublasGetStatusString(st), *name = cublasGetStatusName(st);
    if (st == CUBLAS_STATUS_ALLOC_FAILED) {
        md_error("backend cuda, op %s: out of GPU memory: cuBLAS could not allocate its workspace (%s, %s) in %s%s; "
                 HINT_SIZE, op, words, name, call, free_memory(fb, sizeof fb));
        die(0);
    }
    if (st == CUBLAS_STATUS_ARCH_MISMATCH || st == CUBLAS_STATUS_NOT_SUPPORTED) {
        md_error("backend cuda, op %s: cuBLAS cannot run %s on this GPU (%s, %s); a newer GPU or driver is needed", op,
                 call, words, name);
        die(0);
    }
    md_error("backend cuda, op %s: cuBLAS failed (%s, %s) in %s" BUG, op, words, name, call);
    die(1);
}

static const char *cufft_words(cufftResult r)
{
    switch (r) {
    case CUFFT_INVALID_PLAN: return "an invalid plan";
    case CUFFT_ALLOC_FAILED: return "it could not allocate GPU memory";
    case CUFFT_INVALID_TYPE: return "an invalid transform type";
    case CUFFT_INVALID_VALUE: return "an invalid argument";
    case CUFFT_INTERNAL_ERROR: return "an internal error";
    case CUFFT_EXEC_FAILED: return "its kernels failed to run";
    case CUFFT_SETUP_FAILED: return "the library could not start";
    case CUFFT_INVALID_SIZE: return "a transform size it does not support";
    case CUFFT_UNALIGNED_DATA: return "unaligned data";
    case CUFFT_INVALID_DEVICE: return "an invalid device";
    case CUFFT_NO_WORKSPACE: return "no work area was given";
    case CUFFT_NOT_IMPLEMENTED: return "a transform it does not implement";
    case CUFFT_NOT_SUPPORTED: return "an operation it does not support";
    case CUFFT_MISSING_DEPENDENCY:
    case CUFFT_NVRTC_FAILURE:
    case CUFFT_NVJITLINK_FAILURE:
    case CUFFT_NVSHMEM_FAILURE: return "a library it depends on failed to load or run";
    default: return "an unknown status";
    }
}

void md_cuda_fail_cufft(const char *op, cufftResult r, const char *what, int64_t n, int64_t count)
{
    char call[160], fb[96], sb[32];
    snprintf(call, sizeof call, "%s of %lld sequences of %lld points (%s of samples)", what, (long long)count,
             (long long)n, human_bytes((double)count * (double)n * sizeof(float), sb, sizeof sb));
    const char *words = cufft_words(r);
    /* cuFFT's planning reports CUFFT_INTERNAL_ERROR, not CUFFT_ALLOC_FAILED,
     * when its work area does not fit (seen on the H200, CUDA 13.0): with
     * less memory free than the samples it would transform, read it as that. */
    size_t fr = 0, total = 0;
    int starved = r == CUFFT_INTERNAL_ERROR && cudaMemGetInfo(&fr, &total) == cudaSuccess &&
                  (double)fr < (double)count * (double)n * sizeof(float);
    if (r == CUFFT_INTERNAL_ERROR && !starved) cudaGetLastError();
    if (r == CUFFT_ALLOC_FAILED || starved) {
        md_error("backend cuda, op %s: out of GPU memory: cuFFT could not allocate for %s (%s)%s; " HINT_SIZE, op,
                 call, starved ? "CUFFT_INTERNAL_ERROR with less memory free than that" : "CUFFT_ALLOC_FAILED",
                 free_memory(fb, sizeof fb));
        die(0);
    }
    if (r == CUFFT_INVALID_SIZE) {
        md_error("backend cuda, op %s: cuFFT refused %s: %s (status %d); try a shorter -L", op, call, words, (int)r);
        die(0);
    }
    if (r == CUFFT_SETUP_FAILED || r == CUFFT_MISSING_DEPENDENCY || r == CUFFT_NVRTC_FAILURE ||
        r == CUFFT_NVJITLINK_FAILURE || r == CUFFT_NVSHMEM_FAILURE) {
        md_error("backend cuda, op %s: cuFFT failed in %s: %s (status %d); check the CUDA installation", op, call,
                 words, (int)r);
        die(0);
    }
    md_error("backend cuda, op %s: cuFFT failed in %s: %s (status %d)" BUG, op, call, words, (int)r);
    die(1);
}
