/* md_comm_t's dispatch and the single-process communicator. */
#include <stdlib.h>
#include <string.h>

#include "dist/comm_internal.h"
#include "util/log.h"
#include "util/xalloc.h"

/* ---- self: one rank; a sum over one rank is the data itself ---- */

static int self_allreduce(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt) { return 0; }

static void self_copy(md_comm_t *c, void *dst, const void *src, int64_t n, md_dtype_t dt)
{
    const md_backend_t *be = c->ctx;
    if (dst == src || n == 0) return;
    if (be) be->copy(be, dst, src, (size_t)n * md_dtype_size(dt), MD_COPY_D2D);
    else memmove(dst, src, (size_t)n * md_dtype_size(dt));
}

static int self_reduce_scatter(md_comm_t *c, const void *send, void *recv, int64_t n, md_dtype_t dt)
{
    self_copy(c, recv, send, n, dt);
    return 0;
}

static int self_all_gather(md_comm_t *c, const void *send, void *recv, int64_t n, md_dtype_t dt)
{
    self_copy(c, recv, send, n, dt);
    return 0;
}

static int self_broadcast(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt, int root) { return 0; }
static int self_barrier(md_comm_t *c) { return 0; }
static int self_allreduce_host(md_comm_t *c, double *x, int n) { return 0; }
static void self_destroy(md_comm_t *c) { free(c); }

md_comm_t *md_comm_self(const md_backend_t *be)
{
    md_comm_t *c = md_calloc(1, sizeof *c);
    *c = (md_comm_t){"self", 0, 1, (void *)(be && be->device != MD_DEVICE_CPU ? be : NULL),
                     self_allreduce, self_reduce_scatter, self_all_gather, self_broadcast, self_barrier,
                     self_allreduce_host, self_destroy, NULL, NULL, MD_COMM_BUCKET_MB_DEFAULT, 0};
    return c;
}

/* ---- dispatch ---- */

void md_comm_free(md_comm_t *c)
{
    if (c) c->destroy(c);
}

int md_comm_rank(const md_comm_t *c) { return c->rank; }
int md_comm_size(const md_comm_t *c) { return c->size; }
const char *md_comm_name(const md_comm_t *c) { return c->name; }

int md_comm_allreduce_sum(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt)
{
    return n > 0 ? c->allreduce_sum(c, buf, n, dt) : 0;
}

int md_comm_reduce_scatter_sum(md_comm_t *c, const void *send, void *recv, int64_t n, md_dtype_t dt)
{
    return n > 0 ? c->reduce_scatter_sum(c, send, recv, n, dt) : 0;
}

int md_comm_all_gather(md_comm_t *c, const void *send, void *recv, int64_t n, md_dtype_t dt)
{
    return n > 0 ? c->all_gather(c, send, recv, n, dt) : 0;
}

int md_comm_broadcast(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt, int root)
{
    return n > 0 ? c->broadcast(c, buf, n, dt, root) : 0;
}

int md_comm_barrier(md_comm_t *c) { return c->barrier(c); }

int md_comm_allreduce_start(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt)
{
    if (n <= 0) return 0;
    return c->allreduce_start ? c->allreduce_start(c, buf, n, dt) : c->allreduce_sum(c, buf, n, dt);
}

int md_comm_wait(md_comm_t *c) { return c->wait ? c->wait(c) : 0; }

void md_comm_set_sync(md_comm_t *c, double bucket_mb, int zero1)
{
    c->bucket_mb = bucket_mb;
    c->zero1 = zero1;
}

double md_comm_bucket_mb(const md_comm_t *c) { return c->bucket_mb; }
int md_comm_zero1(const md_comm_t *c) { return c->zero1; }

int md_comm_allreduce_host(md_comm_t *c, double *x, int n)
{
    if (n > MD_COMM_HOST_MAX) {
        md_error("internal: %d host values in one reduction (at most %d)", n, MD_COMM_HOST_MAX);
        return -1;
    }
    return n > 0 ? c->allreduce_host(c, x, n) : 0;
}
