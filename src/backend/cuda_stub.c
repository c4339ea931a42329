/* md_backend_cuda and friends in a build without CUDA (the real ones are in
 * src/backend/cuda, compiled only when nvcc is found). */
#include "backend/ops.h"
#include "util/log.h"

#if !MD_HAVE_CUDA
const md_backend_t *md_backend_cuda_ex(int ordinal, md_precision_t prec)
{
    md_error("backend cuda: this mambadna was built without CUDA");
    return NULL;
}

const md_backend_t *md_backend_cuda(int ordinal) { return md_backend_cuda_ex(ordinal, MD_PRECISION_FP32); }

size_t md_cuda_peak_bytes(const md_backend_t *be) { return 0; }
void md_cuda_reset_peak(const md_backend_t *be) {}
#endif

#if !MD_HAVE_CUDA
#include "backend/devstep.h"

/* No CUDA: there is never a device step (the callers check for NULL). */
md_devstep_t *md_devstep_new(const md_backend_t *be) { return NULL; }
void md_devstep_free(md_devstep_t *d) {}
double *md_devstep_loss_acc(md_devstep_t *d) { return NULL; }
void md_devstep_set(md_devstep_t *d, const md_devstep_in_t *in) {}
void md_devstep_begin(md_devstep_t *d) {}
void md_devstep_update(md_devstep_t *d, void *param, void *grad, void *m, void *v, int64_t n,
                       int64_t n_decay, int poison_hook) {}
void md_devstep_wait(md_devstep_t *d, md_devstep_out_t *out) {}
int md_devstep_capturable(const md_backend_t *be, const char **why)
{
    *why = "built without CUDA";
    return 0;
}
void md_devstep_capture_begin(md_devstep_t *d) {}
int md_devstep_capture_end(md_devstep_t *d) { return -1; }
int md_devstep_has_graph(const md_devstep_t *d) { return 0; }
void md_devstep_replay(md_devstep_t *d) {}
void md_devstep_drop_graph(md_devstep_t *d) {}
#endif
