/* MD_CUDA_OP_TIMES: per-op GPU time of the CUDA backend (op_timer.h).
 *
 * Event pairs go into a fixed pool; when it is full (and at exit) the host
 * waits for the last event and adds every pair's elapsed time to its op's
 * total, so the pool never grows and timing costs one wait per pool.
 */
#include "op_timer.h"

#include <cuda_runtime_api.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

enum { POOL = 4096, MAX_OPS = 64 };

static int on = -1;
static cudaEvent_t ev[POOL][2];
static const char *ev_op[POOL];
static int n_used, n_open;
typedef struct {
    const char *name;
    double ms;
    long calls;
} op_total_t;
static op_total_t ops[MAX_OPS];
static int n_ops;

static void add(const char *op, double ms)
{
    int i;
    for (i = 0; i < n_ops && strcmp(ops[i].name, op); i++) {}
    if (i == n_ops) {
        if (n_ops == MAX_OPS) return;
        ops[n_ops++].name = op;
    }
    ops[i].ms += ms;
    ops[i].calls++;
}

/* adds the finished pairs to the totals and empties the pool */
static void drain(void)
{
    if (!n_used) return;
    cudaEventSynchronize(ev[n_used - 1][1]);
    for (int i = 0; i < n_used; i++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, ev[i][0], ev[i][1]) == cudaSuccess) add(ev_op[i], ms);
    }
    n_used = 0;
}

static int by_time(const void *a, const void *b)
{
    double x = ((const op_total_t *)a)->ms, y = ((const op_total_t *)b)->ms;
    return (x < y) - (x > y);
}

static void report(void)
{
    drain();
    double total = 0;
    for (int i = 0; i < n_ops; i++) total += ops[i].ms;
    qsort(ops, (size_t)n_ops, sizeof ops[0], by_time);
    md_info("GPU time per op (MD_CUDA_OP_TIMES), %.1f ms in all:", total);
    for (int i = 0; i < n_ops; i++)
        md_info("%-22s %10.2f ms %5.1f%% %8ld calls %9.1f us/call", ops[i].name, ops[i].ms,
                total > 0 ? 100.0 * ops[i].ms / total : 0.0, ops[i].calls, 1e3 * ops[i].ms / ops[i].calls);
}

void md_op_timer_reset(void)
{
    drain();
    memset(ops, 0, sizeof ops);
    n_ops = 0;
}

int md_op_timer_on(void)
{
    if (on < 0) {
        const char *s = getenv("MD_CUDA_OP_TIMES");
        on = s && *s && strcmp(s, "0");
        if (on) atexit(report);
    }
    return on;
}

void md_op_timer_mark(const char *op, int end)
{
    static int recording;   /* the open pair's start was recorded */
    if (!end) {
        /* an op inside an op (none today) is timed by the outer one */
        if (n_open++) return;
        if (n_used == POOL) drain();
        recording = ev[n_used][0] || (cudaEventCreate(&ev[n_used][0]) == cudaSuccess &&
                                      cudaEventCreate(&ev[n_used][1]) == cudaSuccess);
        if (!recording) return;
        ev_op[n_used] = op;
        cudaDeviceSynchronize();
        cudaEventRecord(ev[n_used][0], 0);
    } else if (!--n_open && recording) {
        cudaEventRecord(ev[n_used][1], 0);
        n_used++;
    }
}
