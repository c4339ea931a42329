/* MD_CUDA_OP_TIMES: per-op GPU and host time of the CUDA backend (op_timer.h).
 *
 * Event pairs go into a fixed pool; when it is full (and at the end) the host
 * waits for the last event and adds every pair's elapsed time to its op's
 * total, so the pool never grows and timing costs one wait per pool. The
 * host clock is read before and after the wait that starts each call and
 * at its end mark: from the previous call's end to the wait is the host's
 * work between calls, from the wait to the end its work in the call.
 */
#include "op_timer.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

enum { POOL = 4096, MAX_OPS = 128, SHAPE_NAMES = 64 };

static int on = -1, shapes;
static cudaEvent_t ev[POOL][2];
static const char *ev_op[POOL];
static int n_used, n_open;
typedef struct {
    const char *name;
    double ms;        /* GPU time between the call's events */
    double host_ms;   /* host time inside the call (its launches) */
    double gap_ms;    /* host time since the previous call ended, before this one */
    long calls;
} op_total_t;
static op_total_t ops[MAX_OPS];
static int n_ops;
/* the host clock (ms): the reset, the last end mark, the open call's start */
static double t_reset, t_prev_end, t_start;
static double wait_ms;    /* host time in the waits before each call */
static double wall_ms = -1;   /* the timed region's, set at the stop; -1 while it runs */
static int paused;            /* stopped: no timing until the next reset */

static op_total_t *find(const char *op)
{
    int i;
    for (i = 0; i < n_ops && strcmp(ops[i].name, op); i++) {}
    if (i == n_ops) {
        if (n_ops == MAX_OPS) return NULL;
        ops[n_ops++].name = op;
    }
    return &ops[i];
}

/* adds the finished pairs to the totals and empties the pool */
static void drain(void)
{
    if (!n_used) return;
    cudaEventSynchronize(ev[n_used - 1][1]);
    for (int i = 0; i < n_used; i++) {
        float ms = 0;
        op_total_t *o = find(ev_op[i]);
        if (o && cudaEventElapsedTime(&ms, ev[i][0], ev[i][1]) == cudaSuccess) o->ms += ms;
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
    if (!n_ops) return;
    drain();
    double gpu = 0, host = 0, gap = 0;
    for (int i = 0; i < n_ops; i++) gpu += ops[i].ms, host += ops[i].host_ms, gap += ops[i].gap_ms;
    qsort(ops, (size_t)n_ops, sizeof ops[0], by_time);
    md_info("GPU time per op (MD_CUDA_OP_TIMES), %.1f ms in all; host: %.1f ms in the calls, %.1f ms between them",
            gpu, host, gap);
    md_info("%-38s %10s %6s %8s %9s %9s %9s", "op", "GPU ms", "%", "calls", "GPU us", "host us", "gap us");
    for (int i = 0; i < n_ops; i++) {
        const op_total_t *o = &ops[i];
        md_info("%-38s %10.2f %5.1f%% %8ld %9.1f %9.1f %9.1f", o->name, o->ms, gpu > 0 ? 100.0 * o->ms / gpu : 0.0,
                o->calls, 1e3 * o->ms / o->calls, 1e3 * o->host_ms / o->calls, 1e3 * o->gap_ms / o->calls);
    }
    if (wall_ms < 0) wall_ms = md_realtime() * 1e3 - t_reset;
    /* Each call waits for the device first, so the GPU idles while the
     * host works and the busy share is a floor; without the variable the
     * host's work overlaps the GPU's, except where the host falls behind. */
    md_info("wall %.1f ms: GPU busy %.1f%%; host issuing %.1f ms (%.0f%% of the GPU time), waiting %.1f ms",
            wall_ms, wall_ms > 0 ? 100.0 * gpu / wall_ms : 0.0, host + gap, gpu > 0 ? 100.0 * (host + gap) / gpu : 0.0,
            wait_ms);
}

void md_op_timer_reset(void)
{
    drain();
    memset(ops, 0, sizeof ops);
    n_ops = 0;
    wait_ms = 0;
    wall_ms = -1;
    paused = 0;
    t_reset = t_prev_end = md_realtime() * 1e3;
}

void md_op_timer_stop(void)
{
    if (on <= 0) return;
    drain();
    wall_ms = md_realtime() * 1e3 - t_reset;
    report();
    n_ops = 0;
    paused = 1;
}

int md_op_timer_on(void)
{
    if (on < 0) {
        const char *s = getenv("MD_CUDA_OP_TIMES");
        on = s && *s && strcmp(s, "0");
        shapes = on && !strcmp(s, "shapes");
        if (on) {
            atexit(report);
            t_reset = t_prev_end = md_realtime() * 1e3;
        }
    }
    return on;
}

int md_op_timer_shapes(void) { return md_op_timer_on() && shapes; }

const char *md_op_timer_shape_name(const char *base, long long m, long long n, long long k, int ta, int tb)
{
    static char names[SHAPE_NAMES][64];
    static int n_names;
    char name[64];
    snprintf(name, sizeof name, "%s %lldx%lldx%lld t%d%d", base, m, n, k, ta, tb);
    int i;
    for (i = 0; i < n_names && strcmp(names[i], name); i++) {}
    if (i == SHAPE_NAMES) return base;
    if (i == n_names) memcpy(names[n_names++], name, sizeof name);
    return names[i];
}

void md_op_timer_mark(const char *op, int end)
{
    static int recording;   /* the open pair's start was recorded */
    if (paused) return;
    if (!end) {
        /* an op inside an op (none today) is timed by the outer one */
        if (n_open++) return;
        if (n_used == POOL) drain();
        recording = ev[n_used][0] || (cudaEventCreate(&ev[n_used][0]) == cudaSuccess &&
                                      cudaEventCreate(&ev[n_used][1]) == cudaSuccess);
        if (!recording) return;
        ev_op[n_used] = op;
        double t0 = md_realtime() * 1e3;
        cudaDeviceSynchronize();
        t_start = md_realtime() * 1e3;
        wait_ms += t_start - t0;
        op_total_t *o = find(op);
        if (o) o->gap_ms += t0 - t_prev_end, o->calls++;
        cudaEventRecord(ev[n_used][0], 0);
    } else if (!--n_open && recording) {
        cudaEventRecord(ev[n_used][1], 0);
        t_prev_end = md_realtime() * 1e3;
        op_total_t *o = find(ev_op[n_used]);
        if (o) o->host_ms += t_prev_end - t_start;
        n_used++;
    }
}
