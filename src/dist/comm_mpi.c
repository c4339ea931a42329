/* The MPI communicator (dist/comm.h): host buffers over MPI_COMM_WORLD.
 * Also the carrier of NCCL's unique id under mpirun (dist/dist.c). */
#include <stdlib.h>

#include "dist/comm_internal.h"
#include "util/log.h"
#include "util/xalloc.h"

int md_comm_mpi_launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

#if MD_HAVE_MPI
#include <mpi.h>

int md_comm_mpi_compiled(void) { return 1; }

static int check(int rc, const char *what)
{
    if (rc == MPI_SUCCESS) return 0;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    md_error("MPI %s failed: %s", what, msg);
    return -1;
}

static MPI_Datatype mpi_type(md_dtype_t dt) { return dt == MD_DTYPE_F64 ? MPI_DOUBLE : MPI_FLOAT; }

static int mpi_allreduce(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt)
{
    /* MPI counts are int: large buffers go in chunks. */
    const int64_t chunk = INT64_C(1) << 30;
    const size_t es = md_dtype_size(dt);
    for (int64_t i = 0; i < n; i += chunk) {
        int k = (int)(n - i < chunk ? n - i : chunk);
        if (check(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + (size_t)i * es, k, mpi_type(dt), MPI_SUM,
                                MPI_COMM_WORLD), "allreduce") < 0)
            return -1;
    }
    return 0;
}

static int too_large(int64_t n, const char *what)
{
    if (n <= INT32_MAX) return 0;
    md_error("MPI %s of %lld elements per rank: more than MPI's int counts allow", what, (long long)n);
    return 1;
}

static int mpi_reduce_scatter(md_comm_t *c, const void *send, void *recv, int64_t n, md_dtype_t dt)
{
    if (too_large(n, "reduce-scatter")) return -1;
    return check(MPI_Reduce_scatter_block(send, recv, (int)n, mpi_type(dt), MPI_SUM, MPI_COMM_WORLD),
                 "reduce-scatter");
}

static int mpi_all_gather(md_comm_t *c, const void *send, void *recv, int64_t n, md_dtype_t dt)
{
    if (too_large(n, "all-gather")) return -1;
    const void *s = send == (const char *)recv + (size_t)c->rank * (size_t)n * md_dtype_size(dt) ? MPI_IN_PLACE : send;
    return check(MPI_Allgather(s, (int)n, mpi_type(dt), recv, (int)n, mpi_type(dt), MPI_COMM_WORLD), "all-gather");
}

static int mpi_broadcast(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt, int root)
{
    const int64_t chunk = INT64_C(1) << 30;
    const size_t es = md_dtype_size(dt);
    for (int64_t i = 0; i < n; i += chunk) {
        int k = (int)(n - i < chunk ? n - i : chunk);
        if (check(MPI_Bcast((char *)buf + (size_t)i * es, k, mpi_type(dt), root, MPI_COMM_WORLD), "broadcast") < 0)
            return -1;
    }
    return 0;
}

/* The requests of the all-reduces started since the last wait. */
typedef struct {
    MPI_Request *req;
    int n, cap;
} mpi_ctx_t;

static int mpi_allreduce_start(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt)
{
    mpi_ctx_t *x = c->ctx;
    const int64_t chunk = INT64_C(1) << 30;
    const size_t es = md_dtype_size(dt);
    for (int64_t i = 0; i < n; i += chunk) {
        if (x->n == x->cap) {
            x->cap = x->cap ? 2 * x->cap : 64;
            x->req = md_realloc(x->req, (size_t)x->cap * sizeof *x->req);
        }
        int k = (int)(n - i < chunk ? n - i : chunk);
        if (check(MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + (size_t)i * es, k, mpi_type(dt), MPI_SUM,
                                 MPI_COMM_WORLD, &x->req[x->n]), "allreduce") < 0)
            return -1;
        x->n++;
    }
    return 0;
}

static int mpi_wait(md_comm_t *c)
{
    mpi_ctx_t *x = c->ctx;
    int n = x->n;
    x->n = 0;
    return n ? check(MPI_Waitall(n, x->req, MPI_STATUSES_IGNORE), "allreduce") : 0;
}

static int mpi_barrier(md_comm_t *c) { return check(MPI_Barrier(MPI_COMM_WORLD), "barrier"); }

static int mpi_allreduce_host(md_comm_t *c, double *x, int n)
{
    return check(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "allreduce");
}

static void mpi_destroy(md_comm_t *c)
{
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
    mpi_ctx_t *x = c->ctx;
    free(x->req);
    free(x);
    free(c);
}

md_comm_t *md_comm_mpi(int *local_rank)
{
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && check(MPI_Init(NULL, NULL), "initialisation") < 0) return NULL;
    /* Errors come back as codes, to be reported as one line each. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    md_comm_t *c = md_calloc(1, sizeof *c);
    *c = (md_comm_t){"mpi", 0, 1, md_calloc(1, sizeof(mpi_ctx_t)), mpi_allreduce, mpi_reduce_scatter, mpi_all_gather,
                     mpi_broadcast, mpi_barrier, mpi_allreduce_host, mpi_destroy, mpi_allreduce_start, mpi_wait,
                     MD_COMM_BUCKET_MB_DEFAULT, 0};
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    MPI_Comm node;
    *local_rank = 0;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, local_rank);
        MPI_Comm_free(&node);
    }
    return c;
}

#else

int md_comm_mpi_compiled(void) { return 0; }

md_comm_t *md_comm_mpi(int *local_rank)
{
    md_error("this mambadna was built without MPI, so it cannot run under mpirun or srun (install libopenmpi-dev "
             "and rebuild)");
    return NULL;
}

#endif
