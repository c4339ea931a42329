/* The NCCL communicator (dist/comm.h), with NCCL loaded by dlopen so that
 * neither the build nor a CPU run needs it. */
#include <dlfcn.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/comm_internal.h"
#include "dist/nccl_api.h"
#include "util/log.h"
#include "util/xalloc.h"

#if MD_HAVE_CUDA
#include <cuda_runtime.h>
#endif

static md_nccl_api_t nccl;
static void *nccl_lib;
static int nccl_host_memory;   /* the test stub (tests/nccl_stub.c) works on host buffers */

/* Where pip puts PyTorch's NCCL, under the usual Python prefixes. */
static const char *const pip_globs[] = {
    "$VIRTUAL_ENV/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2",
    "$CONDA_PREFIX/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2",
    "$HOME/.local/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2",
    "/usr/local/lib/python3*/dist-packages/nvidia/nccl/lib/libnccl.so.2",
    "/usr/local/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2",
    "/usr/lib/python3/dist-packages/nvidia/nccl/lib/libnccl.so.2",
    "/opt/conda/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2",
};

/* pattern with a leading $VAR replaced; "" when VAR is unset. */
static void expand(const char *pattern, char *out, size_t n)
{
    out[0] = '\0';
    if (pattern[0] != '$') {
        snprintf(out, n, "%s", pattern);
        return;
    }
    const char *slash = strchr(pattern, '/');
    char var[64];
    snprintf(var, sizeof var, "%.*s", (int)(slash - pattern - 1), pattern + 1);
    const char *val = getenv(var);
    if (val && *val) snprintf(out, n, "%s%s", val, slash);
}

static void *open_pip_copy(char *found, size_t n)
{
    for (size_t i = 0; i < sizeof pip_globs / sizeof *pip_globs; i++) {
        char pat[4096];
        expand(pip_globs[i], pat, sizeof pat);
        glob_t g;
        if (!pat[0] || glob(pat, 0, NULL, &g) != 0) continue;
        void *h = NULL;
        for (size_t k = g.gl_pathc; k-- > 0 && !h;)   /* the newest Python first */
            if ((h = dlopen(g.gl_pathv[k], RTLD_NOW | RTLD_LOCAL))) snprintf(found, n, "%s", g.gl_pathv[k]);
        globfree(&g);
        if (h) return h;
    }
    return NULL;
}

int md_nccl_load(void)
{
    if (nccl_lib) return 0;
    /* NVLink SHARP multicast stays off unless asked for: on shared machines
     * it takes fabric resources that other jobs need. */
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    const char *want = getenv("MD_NCCL_LIBRARY");
    char found[4096] = "libnccl.so.2";
    void *h;
    if (want && *want) {
        if (!(h = dlopen(want, RTLD_NOW | RTLD_LOCAL))) {
            md_error("cannot load NCCL from MD_NCCL_LIBRARY='%s': %s", want, dlerror());
            return -1;
        }
        snprintf(found, sizeof found, "%s", want);
    } else if (!(h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL)) && !(h = open_pip_copy(found, sizeof found))) {
        md_error("cannot load NCCL (libnccl.so.2), needed for training on several GPUs: it is neither on the "
                 "library path nor in a pip install of PyTorch (site-packages/nvidia/nccl/lib under $VIRTUAL_ENV, "
                 "$CONDA_PREFIX, ~/.local, /usr/local, /usr, /opt/conda); install NCCL or set MD_NCCL_LIBRARY to "
                 "the file");
        return -1;
    }
#define SYM(f) (*(void **)&nccl.f = dlsym(h, "nccl" #f))
    if (!SYM(GetUniqueId) || !SYM(CommInitRank) || !SYM(AllReduce) || !SYM(ReduceScatter) || !SYM(AllGather) ||
        !SYM(Broadcast) || !SYM(CommDestroy) || !SYM(GetErrorString) || !SYM(GetVersion)) {
        md_error("'%s' is not an NCCL 2 library (it lacks the entry points mambadna calls)", found);
        dlclose(h);
        return -1;
    }
#undef SYM
    nccl_host_memory = dlsym(h, "mdNcclStubHostMemory") != NULL;
    nccl_lib = h;
    int v = 0;
    nccl.GetVersion(&v);
    md_info("NCCL %d.%d.%d from %s", v / 10000, v / 100 % 100, v % 100, found);
    return 0;
}

static int check(ncclResult_t r, const char *what)
{
    if (r == 0) return 0;
    md_error("NCCL %s failed: %s (error %d)", what, nccl.GetErrorString(r), r);
    return -1;
}

int md_nccl_make_id(md_nccl_id_t *id)
{
    if (md_nccl_load() < 0) return -1;
    ncclUniqueId u;
    if (check(nccl.GetUniqueId(&u), "unique id") < 0) return -1;
    memcpy(id->bytes, u.internal, MD_NCCL_ID_BYTES);
    return 0;
}

typedef struct {
    ncclComm_t comm;
    const md_backend_t *be;
    void *scratch;   /* MD_COMM_HOST_MAX doubles of device memory */
#if MD_HAVE_CUDA
    /* md_comm_allreduce_start's stream (non-blocking: the legacy default
     * stream's work, which the backend's blocking stream is ordered with,
     * would otherwise serialise with it)
     * and its two events: `ready` on the backend's stream before each
     * start, `done` on the second stream at the wait. Made at the first
     * start; NULL before. */
    cudaStream_t stream;
    cudaEvent_t ready, done;
    int pending;
#endif
} nccl_ctx_t;

static ncclDataType_t nccl_type(md_dtype_t dt) { return dt == MD_DTYPE_F64 ? ncclFloat64 : ncclFloat32; }

static int nccl_allreduce(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt)
{
    nccl_ctx_t *x = c->ctx;
    return check(nccl.AllReduce(buf, buf, (size_t)n, nccl_type(dt), ncclSum, x->comm, NULL), "allreduce");
}

static int nccl_reduce_scatter(md_comm_t *c, const void *send, void *recv, int64_t n, md_dtype_t dt)
{
    nccl_ctx_t *x = c->ctx;
    return check(nccl.ReduceScatter(send, recv, (size_t)n, nccl_type(dt), ncclSum, x->comm, NULL), "reduce-scatter");
}

static int nccl_all_gather(md_comm_t *c, const void *send, void *recv, int64_t n, md_dtype_t dt)
{
    nccl_ctx_t *x = c->ctx;
    return check(nccl.AllGather(send, recv, (size_t)n, nccl_type(dt), x->comm, NULL), "all-gather");
}

static int nccl_broadcast(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt, int root)
{
    nccl_ctx_t *x = c->ctx;
    return check(nccl.Broadcast(buf, buf, (size_t)n, nccl_type(dt), root, x->comm, NULL), "broadcast");
}

#if MD_HAVE_CUDA
static int cuda_check(cudaError_t e, const char *what)
{
    if (e == cudaSuccess) return 0;
    md_error("CUDA %s for NCCL's overlapped all-reduce failed: %s", what, cudaGetErrorString(e));
    return -1;
}
#endif

static int nccl_allreduce_start(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt)
{
#if MD_HAVE_CUDA
    nccl_ctx_t *x = c->ctx;
    if (!nccl_host_memory) {
        if (!x->stream && (cuda_check(cudaStreamCreateWithFlags(&x->stream, cudaStreamNonBlocking), "stream") < 0 ||
                           cuda_check(cudaEventCreateWithFlags(&x->ready, cudaEventDisableTiming), "event") < 0 ||
                           cuda_check(cudaEventCreateWithFlags(&x->done, cudaEventDisableTiming), "event") < 0))
            return -1;
        if (cuda_check(cudaEventRecord(x->ready, 0), "event record") < 0 ||
            cuda_check(cudaStreamWaitEvent(x->stream, x->ready, 0), "stream wait") < 0)
            return -1;
        x->pending = 1;
        return check(nccl.AllReduce(buf, buf, (size_t)n, nccl_type(dt), ncclSum, x->comm, x->stream), "allreduce");
    }
#endif
    return nccl_allreduce(c, buf, n, dt);   /* host memory: at once */
}

static int nccl_wait(md_comm_t *c)
{
#if MD_HAVE_CUDA
    nccl_ctx_t *x = c->ctx;
    if (!x->pending) return 0;
    x->pending = 0;
    if (cuda_check(cudaEventRecord(x->done, x->stream), "event record") < 0 ||
        cuda_check(cudaStreamWaitEvent(0, x->done, 0), "stream wait") < 0)
        return -1;
#endif
    return 0;
}

static int nccl_allreduce_host(md_comm_t *c, double *v, int n)
{
    nccl_ctx_t *x = c->ctx;
    const size_t bytes = (size_t)n * sizeof *v;
    x->be->copy(x->be, x->scratch, v, bytes, MD_COPY_H2D);
    if (nccl_allreduce(c, x->scratch, n, MD_DTYPE_F64) < 0) return -1;
    x->be->copy(x->be, v, x->scratch, bytes, MD_COPY_D2H);   /* waits for the reduction */
    return 0;
}

static int nccl_barrier(md_comm_t *c)
{
    double one = 1;
    return nccl_allreduce_host(c, &one, 1);
}

static void nccl_destroy(md_comm_t *c)
{
    nccl_ctx_t *x = c->ctx;
    x->be->sync(x->be);
#if MD_HAVE_CUDA
    if (x->stream) {
        cudaStreamSynchronize(x->stream);
        cudaEventDestroy(x->ready);
        cudaEventDestroy(x->done);
        cudaStreamDestroy(x->stream);
    }
#endif
    nccl.CommDestroy(x->comm);
    x->be->free(x->be, x->scratch);
    free(x);
    free(c);
}

md_comm_t *md_comm_nccl(const md_backend_t *be, const md_nccl_id_t *id, int rank, int size)
{
    if (md_nccl_load() < 0) return NULL;
    if (be->device == MD_DEVICE_CPU && !nccl_host_memory) {
        md_error("NCCL exchanges GPU buffers: run on the GPUs (-x cuda), or on the CPU under mpirun");
        return NULL;
    }
    ncclUniqueId u;
    memcpy(u.internal, id->bytes, MD_NCCL_ID_BYTES);
    ncclComm_t comm;
    if (check(nccl.CommInitRank(&comm, size, u, rank), "communicator set-up") < 0) return NULL;
    nccl_ctx_t *x = md_calloc(1, sizeof *x);
    x->comm = comm;
    x->be = be;
    if (!(x->scratch = be->alloc(be, MD_COMM_HOST_MAX * sizeof(double)))) {
        md_error("out of device memory for NCCL's scratch buffer");
        nccl.CommDestroy(comm);
        free(x);
        return NULL;
    }
    md_comm_t *c = md_calloc(1, sizeof *c);
    *c = (md_comm_t){"nccl", rank, size, x, nccl_allreduce, nccl_reduce_scatter, nccl_all_gather, nccl_broadcast,
                     nccl_barrier, nccl_allreduce_host, nccl_destroy, nccl_allreduce_start, nccl_wait,
                     MD_COMM_BUCKET_MB_DEFAULT, 0};
    return c;
}
