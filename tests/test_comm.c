/* The communicators of dist/comm.h on host buffers: alone (self) under
 * ctest, and every rank of an MPI group when started by mpirun
 * (tests/cli/dist_mpi.sh runs it on 3 ranks). Each rank contributes values
 * that depend on its rank, so that a collective that dropped, repeated or
 * misplaced a rank's part gives a different result (the all-reduces
 * started and waited for, train/gradsync.h's, too); the expected results
 * are computed here from the formula, not taken from a run. Also the
 * --gpus list parser and the batch shares. */
#include <math.h>
#include <stdint.h>

#include "dist/comm.h"
#include "dist/dist.h"
#include "testutil.h"

/* Rank r's value at element i. */
static double value(int r, int64_t i) { return (double)(r + 1) * 0.5 + (double)i * 0.25; }

static void check_collectives(md_comm_t *c)
{
    const int R = md_comm_rank(c), N = md_comm_size(c);
    enum { n = 1000 };
    double *d = malloc(sizeof *d * n * N), *g = malloc(sizeof *g * n * N);
    float *f = malloc(sizeof *f * n);
    /* allreduce, f64 and f32: sum over r of value(r, i) */
    for (int64_t i = 0; i < n; i++) d[i] = value(R, i), f[i] = (float)value(R, i);
    CHECK(md_comm_allreduce_sum(c, d, n, MD_DTYPE_F64) == 0, "allreduce f64");
    CHECK(md_comm_allreduce_sum(c, f, n, MD_DTYPE_F32) == 0, "allreduce f32");
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double want = 0;
        for (int r = 0; r < N; r++) want += value(r, i);
        bad += d[i] != want || f[i] != (float)want;   /* sums of quarters: exact */
    }
    CHECK(bad == 0, "%d allreduce sums wrong on rank %d of %d", bad, R, N);
    /* reduce-scatter: rank R gets block R of the sum of every rank's N x n */
    for (int64_t i = 0; i < (int64_t)n * N; i++) g[i] = value(R, i);
    CHECK(md_comm_reduce_scatter_sum(c, g, d, n, MD_DTYPE_F64) == 0, "reduce-scatter");
    bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double want = 0;
        for (int r = 0; r < N; r++) want += value(r, (int64_t)R * n + i);
        bad += d[i] != want;
    }
    CHECK(bad == 0, "%d reduce-scatter elements wrong on rank %d", bad, R);
    /* all-gather, from a separate buffer and in place */
    for (int64_t i = 0; i < n; i++) d[i] = value(R, i);
    CHECK(md_comm_all_gather(c, d, g, n, MD_DTYPE_F64) == 0, "all-gather");
    bad = 0;
    for (int r = 0; r < N; r++)
        for (int64_t i = 0; i < n; i++) bad += g[(int64_t)r * n + i] != value(r, i);
    CHECK(bad == 0, "%d all-gather elements wrong on rank %d", bad, R);
    for (int64_t i = 0; i < (int64_t)n * N; i++) g[i] = -1;
    for (int64_t i = 0; i < n; i++) g[(int64_t)R * n + i] = value(R, i);
    CHECK(md_comm_all_gather(c, g + (int64_t)R * n, g, n, MD_DTYPE_F64) == 0, "all-gather in place");
    bad = 0;
    for (int r = 0; r < N; r++)
        for (int64_t i = 0; i < n; i++) bad += g[(int64_t)r * n + i] != value(r, i);
    CHECK(bad == 0, "%d in-place all-gather elements wrong on rank %d", bad, R);
    /* broadcast from the last rank */
    for (int64_t i = 0; i < n; i++) f[i] = (float)value(R, i);
    CHECK(md_comm_broadcast(c, f, n, MD_DTYPE_F32, N - 1) == 0, "broadcast");
    bad = 0;
    for (int64_t i = 0; i < n; i++) bad += f[i] != (float)value(N - 1, i);
    CHECK(bad == 0, "%d broadcast elements differ from rank %d's on rank %d", bad, N - 1, R);
    /* started all-reduces, several pending at once, done at the wait */
    for (int64_t i = 0; i < n; i++) d[i] = value(R, i), f[i] = (float)value(R, i);
    CHECK(md_comm_allreduce_start(c, d, n / 2, MD_DTYPE_F64) == 0 &&
          md_comm_allreduce_start(c, f, n, MD_DTYPE_F32) == 0 &&
          md_comm_allreduce_start(c, d + n / 2, n - n / 2, MD_DTYPE_F64) == 0 && md_comm_wait(c) == 0,
          "started all-reduces");
    CHECK(md_comm_wait(c) == 0, "a wait with nothing started");
    bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double want = 0;
        for (int r = 0; r < N; r++) want += value(r, i);
        bad += d[i] != want || f[i] != (float)want;
    }
    CHECK(bad == 0, "%d started all-reduce sums wrong on rank %d of %d", bad, R, N);
    /* host values and the barrier */
    double h[3] = {1, (double)R, 0.5};
    CHECK(md_comm_allreduce_host(c, h, 3) == 0, "host allreduce");
    CHECK(h[0] == N && h[1] == N * (N - 1) / 2.0 && h[2] == 0.5 * N, "host sums %g %g %g", h[0], h[1], h[2]);
    CHECK(md_comm_barrier(c) == 0, "barrier");
    free(d);
    free(g);
    free(f);
}

static void check_gpus_list(void)
{
    int ids[4];
    CHECK(md_dist_parse_gpus("0", ids, 4) == 1 && ids[0] == 0, "one GPU");
    CHECK(md_dist_parse_gpus("3,1,2", ids, 4) == 3 && ids[0] == 3 && ids[1] == 1 && ids[2] == 2, "list order kept");
    fprintf(stderr, "(error lines expected below)\n");
    CHECK(md_dist_parse_gpus("0,0", ids, 4) < 0, "a repeated GPU");
    CHECK(md_dist_parse_gpus("0,,1", ids, 4) < 0, "an empty item");
    CHECK(md_dist_parse_gpus("1,", ids, 4) < 0, "a trailing comma");
    CHECK(md_dist_parse_gpus("-1", ids, 4) < 0, "a negative GPU");
    CHECK(md_dist_parse_gpus("x", ids, 4) < 0, "not a number");
    CHECK(md_dist_parse_gpus("0,1,2,3,4", ids, 4) < 0, "more than the table holds");
}

static void check_shares(void)
{
    /* the shares of B over n ranks add up to B, differ by at most one and
     * are what counting b = r, r + n, ... below B gives */
    int bad = 0;
    for (int64_t B = 1; B <= 20; B++)
        for (int n = 1; n <= 8; n++) {
            int64_t sum = 0;
            for (int r = 0; r < n; r++) {
                int64_t cnt = 0;
                for (int64_t b = r; b < B; b += n) cnt++;
                bad += md_dist_share(B, r, n) != cnt;
                sum += md_dist_share(B, r, n);
            }
            bad += sum != B;
        }
    CHECK(bad == 0, "%d wrong shares", bad);
}

int main(void)
{
    int local = 0;
    md_comm_t *c = md_comm_mpi_launched() ? md_comm_mpi(&local) : md_comm_self(NULL);
    if (!c) return 1;
    check_collectives(c);
    if (md_comm_rank(c) == 0) {
        check_gpus_list();
        check_shares();
    }
    printf("rank %d of %d (%s): ", md_comm_rank(c), md_comm_size(c), md_comm_name(c));
    md_comm_free(c);
    return md_test_done();
}
