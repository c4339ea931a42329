/* Choosing a backend: the precision option, and the table for a resolved device. */
#include <string.h>

#include "backend/ops.h"
#include "util/log.h"

int md_precision_parse(const char *opt, const char *s, md_precision_t *prec)
{
    if (!strcmp(s, "fp32") || !strcmp(s, "f32")) *prec = MD_PRECISION_FP32;
    else if (!strcmp(s, "bf16")) *prec = MD_PRECISION_BF16;
    else {
        md_error("option %s: '%s' is not one of fp32, bf16", opt, s);
        return -1;
    }
    return 0;
}

const char *md_precision_name(md_precision_t prec) { return prec == MD_PRECISION_BF16 ? "bf16" : "fp32"; }

const md_backend_t *md_backend_for_device(const md_device_t *dev, md_precision_t prec)
{
    if (dev->kind == MD_DEVICE_CPU) {
        if (prec != MD_PRECISION_FP32) {
            md_error("option --precision: %s runs on a GPU only, and the device is the CPU; use -x cuda or fp32",
                     md_precision_name(prec));
            return NULL;
        }
        return md_backend_cpu();
    }
    return md_backend_cuda_ex(dev->ordinal, prec);
}
