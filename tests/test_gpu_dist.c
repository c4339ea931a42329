/* The NCCL communicator on one GPU, one rank: the library loads, its
 * entry points are called with the right types (a wrong dtype or count
 * would garble or truncate the buffers below), and collectives are ordered
 * with the backend's ops on its stream. Exits 77 without a GPU or without
 * NCCL. The training run through --gpus is tests/cli/gpu_dist.sh. */
#include <math.h>

#include "backend/device.h"
#include "backend/ops.h"
#include "dist/comm.h"
#include "testutil.h"

enum { N = 1 << 20 };

int main(void)
{
    md_test_need_gpu();
    if (md_nccl_load() < 0) {
        printf("skipped: no NCCL\n");
        return 77;
    }
    const md_backend_t *be = md_backend_cuda(0);
    CHECK(be != NULL, "CUDA backend");
    if (!be) return md_test_done();
    md_nccl_id_t id;
    CHECK(md_nccl_make_id(&id) == 0, "unique id");
    md_comm_t *c = md_comm_nccl(be, &id, 0, 1);
    CHECK(c && md_comm_size(c) == 1 && md_comm_rank(c) == 0, "one-rank communicator");
    if (!c) return md_test_done();
    float *h = malloc(sizeof *h * N), *back = malloc(sizeof *back * N);
    double *hd = malloc(sizeof *hd * N), *backd = malloc(sizeof *backd * N);
    for (int i = 0; i < N; i++) h[i] = (float)i * 0.5f - 7, hd[i] = (double)i * 0.25 + 1e-9;
    float *d = be->alloc(be, sizeof *d * N), *d2 = be->alloc(be, sizeof *d2 * N);
    double *dd = be->alloc(be, sizeof *dd * N);
    be->copy(be, d, h, sizeof *d * N, MD_COPY_H2D);
    be->copy(be, dd, hd, sizeof *dd * N, MD_COPY_H2D);
    /* queued right after a backend op on the same buffer: x *= 2, then the sum over one rank */
    md_tensor_t t = md_tensor_1d(d, MD_DTYPE_F32, MD_DEVICE_CUDA, N);
    be->scale(be, &t, 2.0);
    CHECK(md_comm_allreduce_sum(c, d, N, MD_DTYPE_F32) == 0, "allreduce f32");
    CHECK(md_comm_allreduce_sum(c, dd, N, MD_DTYPE_F64) == 0, "allreduce f64");
    be->copy(be, back, d, sizeof *d * N, MD_COPY_D2H);
    be->copy(be, backd, dd, sizeof *dd * N, MD_COPY_D2H);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += back[i] != 2 * h[i] || backd[i] != hd[i];
    CHECK(bad == 0, "%d elements changed by a one-rank allreduce", bad);
    CHECK(md_comm_broadcast(c, d, N, MD_DTYPE_F32, 0) == 0, "broadcast");
    CHECK(md_comm_reduce_scatter_sum(c, d, d2, N, MD_DTYPE_F32) == 0, "reduce-scatter");
    be->memset0(be, d, sizeof *d * N);
    CHECK(md_comm_all_gather(c, d2, d, N, MD_DTYPE_F32) == 0, "all-gather");
    be->copy(be, back, d, sizeof *d * N, MD_COPY_D2H);
    bad = 0;
    for (int i = 0; i < N; i++) bad += back[i] != 2 * h[i];
    CHECK(bad == 0, "%d elements wrong after broadcast, reduce-scatter and all-gather", bad);
    /* a started all-reduce on NCCL's own stream, between two ops on the
     * backend's: the stream and events work (the ordering itself cannot
     * show on one rank, whose in-place sum changes nothing: that needs two
     * GPUs) */
    be->copy(be, d, h, sizeof *d * N, MD_COPY_H2D);
    be->scale(be, &t, 2.0);
    CHECK(md_comm_allreduce_start(c, d, N, MD_DTYPE_F32) == 0 && md_comm_wait(c) == 0, "started all-reduce");
    be->scale(be, &t, 2.0);
    be->copy(be, back, d, sizeof *d * N, MD_COPY_D2H);
    bad = 0;
    for (int i = 0; i < N; i++) bad += back[i] != 4 * h[i];
    CHECK(bad == 0, "%d elements wrong around a started all-reduce", bad);
    double v[3] = {1.5, -2, 1e300};
    CHECK(md_comm_allreduce_host(c, v, 3) == 0 && v[0] == 1.5 && v[1] == -2 && v[2] == 1e300, "host values");
    CHECK(md_comm_barrier(c) == 0, "barrier");
    md_comm_free(c);
    be->free(be, d);
    be->free(be, d2);
    be->free(be, dd);
    free(h);
    free(back);
    free(hd);
    free(backd);
    return md_test_done();
}
