/* Failures inside the CUDA backend's ops: each case runs in a fresh
 * process (this program re-executed with the case's name), which must end
 * as cuda_check.h promises. The user's settings (out of memory, a launch
 * beyond the GPU's limits) or the machine: exactly one [E::] line naming
 * the op, a size and a hint, exit status 1, no signal. A bug: one [E::]
 * line saying so, then SIGABRT.
 *
 * The first cases need no GPU: they call the reports directly with each
 * kind of status, and check every ending and MD_CUDA_FAULT's parsing. The
 * others run on a GPU: failures injected through MD_CUDA_FAULT at the real
 * check points, and "real-oom", which fills the GPU's memory and then asks
 * cuFFT for a plan. Without a GPU those are skipped, and so is the test
 * (77) when the first cases pass. */
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/device.h"
#include "backend/ops.h"
#include "testutil.h"

#if MD_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "backend/cuda/cuda_check.h"

/* ---- the cases, run in the child ---- */

static md_tensor_t dev_matrix(const md_backend_t *be, int64_t rows, int64_t cols)
{
    void *p = be->alloc(be, (size_t)(rows * cols) * sizeof(float));
    if (!p) exit(3);
    be->memset0(be, p, (size_t)(rows * cols) * sizeof(float));
    return md_tensor_2d(p, MD_DTYPE_F32, MD_DEVICE_CUDA, rows, cols);
}

/* y += x on 300 x 40: two allocs (a checked copy each), two memsets, then
 * the add's launch, the 5th call checked by CK */
static void run_add(const md_backend_t *be)
{
    md_tensor_t x = dev_matrix(be, 300, 40), y = dev_matrix(be, 300, 40);
    be->add(be, &y, &x);
    be->sync(be);
}

/* a 64 x 32 x 16 product, by gemm or by linear_fwd (cuBLASLt) */
static void run_product(const md_backend_t *be, int linear)
{
    md_tensor_t a = dev_matrix(be, 64, 16), w = dev_matrix(be, 32, 16), c = dev_matrix(be, 64, 32);
    md_tensor_t bias = dev_matrix(be, 1, 32);
    if (linear) be->linear_fwd(be, &c, NULL, &a, &w, &bias, NULL, MD_ACT_NONE);
    else be->gemm(be, 0, 1, 1.0, &a, &w, 0.0, &c);
    be->sync(be);
}

/* Takes all the GPU's free memory but for less than 2 MiB. */
static void fill_gpu(void)
{
    void *p;
    for (size_t chunk = (size_t)1 << 30; chunk >= ((size_t)2 << 20); chunk /= 2)
        while (cudaMalloc(&p, chunk) == cudaSuccess) {}
    cudaGetLastError();
}

/* the reports called directly: no GPU needed */
static int run_direct(const char *name)
{
    static const char *const add = "add";
    md_cuda_note_tensor(add, 300, 40);
    md_cuda_note_tensor(add, 1, 40);
    if (!strcmp(name, "r-oom")) md_cuda_fail_runtime(add, cudaErrorMemoryAllocation);
    if (!strcmp(name, "r-grid")) md_cuda_fail_runtime(add, cudaErrorInvalidConfiguration);
    if (!strcmp(name, "r-ecc")) md_cuda_fail_runtime(add, cudaErrorECCUncorrectable);
    if (!strcmp(name, "r-arch")) md_cuda_fail_runtime(add, cudaErrorNoKernelImageForDevice);
    if (!strcmp(name, "r-invalid")) md_cuda_fail_runtime("sync", cudaErrorInvalidValue);
    if (!strcmp(name, "r-memset")) {
        md_cuda_op_shape.done = 1;
        md_cuda_note_bytes("memset0", (size_t)3 << 20);
        md_cuda_fail_runtime("memset0", cudaErrorLaunchOutOfResources);
    }
    if (!strcmp(name, "r-cublas"))
        md_cuda_fail_cublas("gemm", CUBLAS_STATUS_ALLOC_FAILED, "cublasSgemm for a 8 x 4 x 2 product");
    if (!strcmp(name, "r-cublas-gpu")) md_cuda_fail_cublas("gemm", CUBLAS_STATUS_ARCH_MISMATCH, "cublasGemmEx");
    if (!strcmp(name, "r-cublas-bug")) md_cuda_fail_cublas("gemm", CUBLAS_STATUS_INVALID_VALUE, "cublasSgemm");
    if (!strcmp(name, "r-cufft"))
        md_cuda_fail_cufft("fftconv_fwd", CUFFT_ALLOC_FAILED, "running the transform", 4096, 768);
    if (!strcmp(name, "r-cufft-size"))
        md_cuda_fail_cufft("fftconv_workspace", CUFFT_INVALID_SIZE, "planning", 1 << 30, 2);
    if (!strcmp(name, "r-cufft-bug"))
        md_cuda_fail_cufft("fftconv_bwd", CUFFT_EXEC_FAILED, "running the transform", 64, 3);
    if (!strncmp(name, "r-knob", 6)) return md_cuda_fault_init() < 0 ? 4 : 0;
    return 5;
}

static int run_case(const char *name)
{
    if (!strncmp(name, "r-", 2)) return run_direct(name);
    if (!md_cuda_compiled() || md_cuda_device_count() == 0) return 77;
    const md_backend_t *be = md_backend_cuda(0);
    if (!be) return 4;   /* "bad-knob": the error line was printed */
    if (!strcmp(name, "alloc")) return be->alloc(be, 1024) ? 0 : 3;
    if (!strcmp(name, "oom") || !strcmp(name, "launch") || !strcmp(name, "bug")) run_add(be);
    else if (!strcmp(name, "cublas")) run_product(be, 0);
    else if (!strcmp(name, "cublaslt")) run_product(be, 1);
    else if (!strcmp(name, "cufft")) be->fftconv_workspace(be, MD_DTYPE_F32, 2, 100, 8);
    else if (!strcmp(name, "real-oom")) {
        be->fftconv_workspace(be, MD_DTYPE_F32, 1, 64, 4);   /* cuFFT loaded and started */
        fill_gpu();
        be->fftconv_workspace(be, MD_DTYPE_F32, 16, (int64_t)1 << 22, 64);
    } else return 5;
    return 0;   /* no failure: the parent reports it */
}

/* ---- the parent ---- */

typedef struct {
    const char *name, *fault;   /* MD_CUDA_FAULT, or NULL */
    int status;                 /* the exit status, or -SIG for a signal */
    const char *pattern;        /* the one [E::] line must match (NULL: no such line) */
} case_t;

#define SIZE_HINT "; try a smaller batch \\(-B, or finetune's --micro-batch\\), --recompute or a shorter -L$"
#define FREE "(; [0-9.]+ [KMG]iB of [0-9.]+ [KMG]iB free on the GPU)?"   /* absent without a driver */
#define DETECTED \
    ", detected here \\(an earlier op may have queued the kernel at fault; CUDA_LAUNCH_BLOCKING=1 names it\\)"
#define BUG " \\(a bug in mambadna; please report this line\\)$"
#define KNOB_ERROR                                                                                           \
    "^\\[E::[a-z_]+\\] environment MD_CUDA_FAULT: '.*' is not KIND@N \\(KIND one of alloc, oom, launch, bug, " \
    "cublas, cufft; N from 1\\) nor 'count'$"

/* no GPU needed */
static const case_t direct_cases[] = {
    {"r-oom", NULL, 1,
     "^\\[E::[a-z_]+\\] backend cuda, op add: out of GPU memory \\(out of memory, cudaErrorMemoryAllocation\\) on "
     "tensors up to 300 x 40 \\(46\\.9 KiB\\)" FREE SIZE_HINT},
    {"r-grid", NULL, 1,
     "^\\[E::[a-z_]+\\] backend cuda, op add: a kernel launch exceeds the GPU's grid limits \\(.*, "
     "cudaErrorInvalidConfiguration\\) on tensors up to 300 x 40 \\(46\\.9 KiB\\)" SIZE_HINT},
    {"r-memset", NULL, 1,
     "^\\[E::[a-z_]+\\] backend cuda, op memset0: a kernel launch exceeds the GPU's resources \\(.*, "
     "cudaErrorLaunchOutOfResources\\) of 3\\.0 MiB" SIZE_HINT},
    {"r-ecc", NULL, 1,
     "^\\[E::[a-z_]+\\] backend cuda, op add: the GPU failed \\(.*, cudaErrorECCUncorrectable\\) on tensors up to "
     "300 x 40 \\(46\\.9 KiB\\)" DETECTED "; the GPU's memory is failing; check it with nvidia-smi -q -d ECC$"},
    {"r-arch", NULL, 1,
     "^\\[E::[a-z_]+\\] backend cuda, op add: the GPU failed \\(.*, cudaErrorNoKernelImageForDevice\\) on tensors "
     "up to 300 x 40 \\(46\\.9 KiB\\); this mambadna was not compiled for this GPU; rebuild with "
     "CMAKE_CUDA_ARCHITECTURES set to its compute capability$"},
    {"r-invalid", NULL, -SIGABRT,
     "^\\[E::[a-z_]+\\] backend cuda, op sync: CUDA call failed \\(.*, cudaErrorInvalidValue\\) after op add on "
     "tensors up to 300 x 40 \\(46\\.9 KiB\\)" BUG},
    {"r-cublas", NULL, 1,
     "^\\[E::[a-z_]+\\] backend cuda, op gemm: out of GPU memory: cuBLAS could not allocate its workspace \\(.*, "
     "CUBLAS_STATUS_ALLOC_FAILED\\) in cublasSgemm for a 8 x 4 x 2 product" FREE SIZE_HINT},
    {"r-cublas-gpu", NULL, 1,
     "^\\[E::[a-z_]+\\] backend cuda, op gemm: cuBLAS cannot run cublasGemmEx on this GPU \\(.*, "
     "CUBLAS_STATUS_ARCH_MISMATCH\\); a newer GPU or driver is needed$"},
    {"r-cublas-bug", NULL, -SIGABRT,
     "^\\[E::[a-z_]+\\] backend cuda, op gemm: cuBLAS failed \\(.*, CUBLAS_STATUS_INVALID_VALUE\\) in cublasSgemm" BUG},
    {"r-cufft", NULL, 1,
     "^\\[E::[a-z_]+\\] backend cuda, op fftconv_fwd: out of GPU memory: cuFFT could not allocate for running the "
     "transform of 768 sequences of 4096 points \\(12\\.0 MiB of samples\\) \\(CUFFT_ALLOC_FAILED\\)" FREE SIZE_HINT},
    {"r-cufft-size", NULL, 1,
     "^\\[E::[a-z_]+\\] backend cuda, op fftconv_workspace: cuFFT refused planning of 2 sequences of 1073741824 "
     "points \\(8\\.0 GiB of samples\\): a transform size it does not support \\(status 8\\); try a shorter -L$"},
    {"r-cufft-bug", NULL, -SIGABRT,
     "^\\[E::[a-z_]+\\] backend cuda, op fftconv_bwd: cuFFT failed in running the transform of 3 sequences of 64 "
     "points \\(0\\.8 KiB of samples\\): its kernels failed to run \\(status 6\\)" BUG},
    {"r-knob", "cublas@12", 0, NULL},
    {"r-knob", "count", 0, NULL},
    {"r-knob", "oom@0", 4, KNOB_ERROR},
    {"r-knob", "launch@", 4, KNOB_ERROR},
    {"r-knob", "bug@3x", 4, KNOB_ERROR},
    {"r-knob", "count@1", 4, KNOB_ERROR},
    {"r-knob", "disk@1", 4, KNOB_ERROR},
};

/* on a GPU */
static const case_t gpu_cases[] = {
    {"oom", "oom@5", 1,
     "^\\[E::[a-z_]+\\] backend cuda, op add: out of GPU memory \\(out of memory, cudaErrorMemoryAllocation\\) "
     "on tensors up to 300 x 40 \\(46\\.9 KiB\\); [0-9.]+ [KMG]iB of [0-9.]+ [KMG]iB free on the GPU" SIZE_HINT},
    {"launch", "launch@5", 1,
     "^\\[E::[a-z_]+\\] backend cuda, op add: a kernel launch exceeds the GPU's resources \\(.*, "
     "cudaErrorLaunchOutOfResources\\) on tensors up to 300 x 40 \\(46\\.9 KiB\\)" SIZE_HINT},
    {"bug", "bug@5", -SIGABRT,
     "^\\[E::[a-z_]+\\] backend cuda, op add: CUDA call failed \\(.*, cudaErrorIllegalAddress\\) on tensors up to "
     "300 x 40 \\(46\\.9 KiB\\), detected here \\(an earlier op may have queued the kernel at fault; "
     "CUDA_LAUNCH_BLOCKING=1 names it\\) \\(a bug in mambadna; please report this line\\)$"},
    {"cublas", "cublas@1", 1,
     "^\\[E::[a-z_]+\\] backend cuda, op gemm: out of GPU memory: cuBLAS could not allocate its workspace \\(.*, "
     "CUBLAS_STATUS_ALLOC_FAILED\\) in cublasSgemm for a 64 x 32 x 16 product; .* free on the GPU" SIZE_HINT},
    /* cuBLASLt, or gemm where it offers no algorithm */
    {"cublaslt", "cublas@1", 1,
     "^\\[E::[a-z_]+\\] backend cuda, op (linear_fwd|gemm): out of GPU memory: cuBLAS could not allocate its "
     "workspace \\(.*CUBLAS_STATUS_ALLOC_FAILED\\) in (cublasLtMatmul|cublasSgemm) for a 64 x 32 x 16 product; "
     ".* free on the GPU" SIZE_HINT},
    {"cufft", "cufft@1", 1,
     "^\\[E::[a-z_]+\\] backend cuda, op fftconv_workspace: out of GPU memory: cuFFT could not allocate for "
     "planning of [0-9]+ sequences of [0-9]+ points \\([0-9.]+ [KMG]iB of samples\\) \\(CUFFT_ALLOC_FAILED\\); "
     ".* free on the GPU" SIZE_HINT},
    {"real-oom", NULL, 1,
     "^\\[E::[a-z_]+\\] backend cuda, op fftconv_workspace: out of GPU memory: cuFFT could not allocate for "
     "(creating the plan|planning) of [0-9]+ sequences of 8388608 points .*; [0-9.]+ [KM]iB of [0-9.]+ GiB free on "
     "the GPU" SIZE_HINT},
    {"alloc", "alloc@1", 3, NULL},
    {"bad-knob", "oom@0", 4, KNOB_ERROR},
};

/* Runs case c in a fresh process; its stderr into err (NUL-ended).
 * Returns the exit status, or -SIG when a signal ended it. */
static int spawn(const char *self, const case_t *c, char *err, size_t cap)
{
    int fd[2];
    if (pipe(fd) != 0) { perror("pipe"); exit(2); }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(2); }
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        if (c->fault) setenv("MD_CUDA_FAULT", c->fault, 1);
        else unsetenv("MD_CUDA_FAULT");
        execl(self, self, c->name, (char *)NULL);
        _exit(6);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fd[0], err + n, cap - 1 - n)) > 0) n += (size_t)r;
    err[n] = 0;
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) ? -WTERMSIG(st) : WEXITSTATUS(st);
}

/* the [E::] lines of err: how many, and the first in line */
static int error_lines(const char *err, char *line, size_t cap)
{
    int n = 0;
    line[0] = 0;
    for (const char *p = err; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, "[E::", 4)) continue;
        if (n++ == 0) {
            size_t len = strcspn(p, "\n");
            if (len >= cap) len = cap - 1;
            memcpy(line, p, len);
            line[len] = 0;
        }
    }
    return n;
}

static int matches(const char *s, const char *pattern)
{
    regex_t re;
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0) return 0;
    int ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* Runs the cases; 77 when one finds no GPU (the rest are not run). */
static int run_cases(const case_t *cases, size_t n_cases)
{
    static char err[1 << 16], line[4096];
    for (size_t i = 0; i < n_cases; i++) {
        const case_t *c = &cases[i];
        int st = spawn("/proc/self/exe", c, err, sizeof err);
        if (st == 77) return 77;
        int n = error_lines(err, line, sizeof line);
        CHECK(st == c->status, "%s (MD_CUDA_FAULT=%s): ended with %s %d, expected %d; stderr: %s", c->name,
              c->fault ? c->fault : "", st < 0 ? "signal" : "status", st < 0 ? -st : st, c->status, err);
        CHECK(n == (c->pattern ? 1 : 0), "%s: %d error lines: %s", c->name, n, err);
        if (c->pattern)
            CHECK(matches(line, c->pattern), "%s: the line '%s' does not match /%s/", c->name, line, c->pattern);
        printf("%-12s %-9s -> %s %d: %s\n", c->name, c->fault ? c->fault : "-", st < 0 ? "signal" : "exit",
               st < 0 ? -st : st, line);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) return run_case(argv[1]);
    run_cases(direct_cases, sizeof direct_cases / sizeof direct_cases[0]);
    if (run_cases(gpu_cases, sizeof gpu_cases / sizeof gpu_cases[0]) == 77) {
        printf("no CUDA GPU: the GPU cases skipped\n");
        if (md_test_done() == 0) return 77;
        return 1;
    }
    return md_test_done();
}

#else
int main(void)
{
    printf("built without CUDA: skipped\n");
    return 77;
}
#endif
