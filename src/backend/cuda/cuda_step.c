/* md_devstep_t (backend/devstep.h): the optimizer step's scalars in one
 * mdk_step_block_t on the device, its twin in pinned host memory (copied in
 * at the step's start, back at its end: both copies can be captured), and
 * the step's CUDA graph. */
#include <stddef.h>
#include <string.h>

#include "backend/devstep.h"
#include "cuda_internal.h"
#include "util/xalloc.h"

struct md_devstep {
    const md_backend_t *be;
    mdk_step_block_t *host;    /* pinned */
    mdk_step_block_t *dev;
    cudaGraphExec_t exec;      /* NULL: no graph */
    unsigned plan_evictions;   /* the backend's count when the graph was captured */
};

md_devstep_t *md_devstep_new(const md_backend_t *be)
{
    if (!be || be->device != MD_DEVICE_CUDA) return NULL;
    md_devstep_t *d = md_calloc(1, sizeof *d);
    d->be = be;
    if (cudaMallocHost((void **)&d->host, sizeof *d->host) != cudaSuccess ||
        cudaMalloc((void **)&d->dev, sizeof *d->dev) != cudaSuccess) {
        cudaGetLastError();
        md_error("backend cuda: out of memory for the training step's %zu bytes of scalars", sizeof *d->host);
        md_devstep_free(d);
        return NULL;
    }
    memset(d->host, 0, sizeof *d->host);
    return d;
}

void md_devstep_free(md_devstep_t *d)
{
    if (!d) return;
    md_devstep_drop_graph(d);
    if (d->host) cudaFreeHost(d->host);
    if (d->dev) cudaFree(d->dev);
    free(d);
}

double *md_devstep_loss_acc(md_devstep_t *d) { return &d->dev->loss_sum; }

void md_devstep_set(md_devstep_t *d, const md_devstep_in_t *in)
{
    md_cuda_adamw_scalars(&in->hp, d->host);
    d->host->clip = in->clip;
    d->host->poison = in->poison;
}

void md_devstep_begin(md_devstep_t *d)
{
    const md_backend_t *be = d->be;
    CK(cudaMemcpyAsync(d->dev, d->host, offsetof(mdk_step_block_t, loss_sum), cudaMemcpyHostToDevice, STREAM(be)),
       "step_scalars");
    CK(cudaMemsetAsync(&d->dev->loss_sum, 0, 2 * sizeof(double), STREAM(be)), "step_scalars");
}

void md_devstep_update(md_devstep_t *d, void *param, void *grad, void *m, void *v, int64_t n,
                       int64_t n_decay, int poison_hook)
{
    const md_backend_t *be = d->be;
    cuda_ctx_t *c = CTX(be);
    if (n_decay > n) n_decay = n;
    md_cuda_note_tensor("adamw", 1, n);
    if (poison_hook) CK(mdk_step_poison(grad, d->dev, STREAM(be)), "step_poison");
    CK(mdk_sumsq(grad, n, &d->dev->sumsq, c->scratch, STREAM(be)), "sumsq");
    CK(mdk_step_finalize(d->dev, STREAM(be)), "step_scalars");
    CK(mdk_adamw_dev(param, grad, m, v, n, n_decay, d->dev, STREAM(be)), "adamw");
    CK(cudaMemcpyAsync(d->host, d->dev, sizeof *d->host, cudaMemcpyDeviceToHost, STREAM(be)), "step_scalars");
}

void md_devstep_wait(md_devstep_t *d, md_devstep_out_t *out)
{
    CK(cudaStreamSynchronize(STREAM(d->be)), "step_wait");
    const mdk_step_block_t *h = d->host;
    *out = (md_devstep_out_t){h->loss_sum, (int64_t)h->count, h->grad_norm, h->skip};
}

int md_devstep_capturable(const md_backend_t *be, const char **why)
{
    if (md_op_timer_on()) {
        *why = "MD_CUDA_OP_TIMES times every op on its own";
        return 0;
    }
    return 1;
}

void md_devstep_capture_begin(md_devstep_t *d)
{
    md_devstep_drop_graph(d);
    /* thread-local: a call in this thread that would wait for the GPU
     * fails the capture instead of passing unnoticed */
    CK(cudaStreamBeginCapture(STREAM(d->be), cudaStreamCaptureModeThreadLocal), "graph_capture");
}

int md_devstep_capture_end(md_devstep_t *d)
{
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(STREAM(d->be), &g);
    if (e == cudaSuccess) e = cudaGraphInstantiate(&d->exec, g, 0);
    if (g) cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        cudaGetLastError();
        d->exec = NULL;
        md_warn("backend cuda: the training step could not be captured as a CUDA graph (%s); it runs op by op",
                cudaGetErrorString(e));
        return -1;
    }
    d->plan_evictions = CTX(d->be)->plan_evictions;
    return 0;
}

int md_devstep_has_graph(const md_devstep_t *d)
{
    return d->exec && d->plan_evictions == CTX(d->be)->plan_evictions;
}

void md_devstep_replay(md_devstep_t *d) { CK(cudaGraphLaunch(d->exec, STREAM(d->be)), "graph_launch"); }

void md_devstep_drop_graph(md_devstep_t *d)
{
    if (d->exec) cudaGraphExecDestroy(d->exec);
    d->exec = NULL;
}
