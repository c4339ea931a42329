#include "backend/device.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cli.h"
#include "util/log.h"

#if MD_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

int md_cuda_compiled(void) { return MD_HAVE_CUDA; }

int md_cuda_device_count(void)
{
#if MD_HAVE_CUDA
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();   /* clear the sticky "no driver" error */
        return 0;
    }
    return n;
#else
    return 0;
#endif
}

const char *md_cuda_version_string(void)
{
    static char buf[64];
#if MD_HAVE_CUDA
    int rt = 0, drv = 0;
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    if (drv)
        snprintf(buf, sizeof buf, "%d.%d (driver %d.%d)", rt / 1000, rt % 1000 / 10, drv / 1000, drv % 1000 / 10);
    else
        snprintf(buf, sizeof buf, "%d.%d (no driver)", rt / 1000, rt % 1000 / 10);
#else
    snprintf(buf, sizeof buf, "none");
#endif
    return buf;
}

int md_device_resolve(const char *spec, md_device_t *dev)
{
    memset(dev, 0, sizeof *dev);
    int want_cuda = !strncmp(spec, "cuda", 4);
    int n_gpu = md_cuda_device_count();
    if (!strcmp(spec, "auto")) want_cuda = n_gpu > 0;
    if (!want_cuda) {
        dev->kind = MD_DEVICE_CPU;
        snprintf(dev->name, sizeof dev->name, "CPU (%d threads)", omp_get_max_threads());
        return 0;
    }
    if (!md_cuda_compiled()) {
        md_error("option -x/--device: '%s' asks for CUDA, but this mambadna was built without CUDA", spec);
        return -1;
    }
    int64_t ordinal = 0;
    if (spec[4] == ':' && md_parse_i64("-x/--device", spec + 5, 0, 1023, 0, &ordinal) < 0) return -1;
    if (n_gpu == 0) {
        md_error("option -x/--device: '%s' asks for CUDA, but no GPU is visible (%s)", spec, md_cuda_version_string());
        return -1;
    }
    if (ordinal >= n_gpu) {
        md_error("option -x/--device: GPU %lld does not exist; %d visible", (long long)ordinal, n_gpu);
        return -1;
    }
    dev->kind = MD_DEVICE_CUDA;
    dev->ordinal = (int)ordinal;
#if MD_HAVE_CUDA
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, dev->ordinal) == cudaSuccess)
        snprintf(dev->name, sizeof dev->name, "%.200s (cuda:%d, sm_%d%d, %.1f GiB)", prop.name, dev->ordinal,
                 prop.major, prop.minor, prop.totalGlobalMem / 1073741824.0);
#endif
    return 0;
}
