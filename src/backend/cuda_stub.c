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
