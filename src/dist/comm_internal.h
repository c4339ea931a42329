/* The table behind md_comm_t (dist/comm.h): one per kind. */
#ifndef MD_DIST_COMM_INTERNAL_H
#define MD_DIST_COMM_INTERNAL_H

#include "dist/comm.h"

struct md_comm {
    const char *name;
    int rank, size;
    void *ctx;   /* the kind's own state */
    int (*allreduce_sum)(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt);
    int (*reduce_scatter_sum)(md_comm_t *c, const void *send, void *recv, int64_t n, md_dtype_t dt);
    int (*all_gather)(md_comm_t *c, const void *send, void *recv, int64_t n, md_dtype_t dt);
    int (*broadcast)(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt, int root);
    int (*barrier)(md_comm_t *c);
    int (*allreduce_host)(md_comm_t *c, double *x, int n);
    void (*destroy)(md_comm_t *c);
    /* md_comm_allreduce_start and md_comm_wait; NULL: the blocking
     * all-reduce, nothing to wait for */
    int (*allreduce_start)(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt);
    int (*wait)(md_comm_t *c);
    double bucket_mb;   /* md_comm_set_sync */
    int zero1;
};

#endif
