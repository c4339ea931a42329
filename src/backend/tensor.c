#include <string.h>

#include "backend/ops.h"

size_t md_dtype_size(md_dtype_t dt)
{
    switch (dt) {
    case MD_DTYPE_F32: return 4;
    case MD_DTYPE_F64: return 8;
    case MD_DTYPE_BF16: return 2;
    case MD_DTYPE_U8: return 1;
    }
    return 0;
}

const char *md_dtype_name(md_dtype_t dt)
{
    switch (dt) {
    case MD_DTYPE_F32: return "f32";
    case MD_DTYPE_F64: return "f64";
    case MD_DTYPE_BF16: return "bf16";
    case MD_DTYPE_U8: return "u8";
    }
    return "?";
}

static md_tensor_t make(void *data, md_dtype_t dt, md_device_kind_t dev, int ndim, const int64_t *shape)
{
    md_tensor_t t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dt;
    t.device = dev;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    t.ld = shape[ndim - 1];
    return t;
}

md_tensor_t md_tensor_1d(void *data, md_dtype_t dt, md_device_kind_t dev, int64_t n0)
{
    int64_t s[1] = {n0};
    return make(data, dt, dev, 1, s);
}

md_tensor_t md_tensor_2d(void *data, md_dtype_t dt, md_device_kind_t dev, int64_t n0, int64_t n1)
{
    int64_t s[2] = {n0, n1};
    return make(data, dt, dev, 2, s);
}

md_tensor_t md_tensor_3d(void *data, md_dtype_t dt, md_device_kind_t dev, int64_t n0, int64_t n1, int64_t n2)
{
    int64_t s[3] = {n0, n1, n2};
    return make(data, dt, dev, 3, s);
}

md_tensor_t md_tensor_cols(md_tensor_t t, int64_t c0, int64_t nc)
{
    t.data = (char *)t.data + (size_t)c0 * md_dtype_size(t.dtype);
    t.shape[t.ndim - 1] = nc;
    return t;
}

int64_t md_tensor_nrows(const md_tensor_t *t)
{
    int64_t r = 1;
    for (int i = 0; i < t->ndim - 1; i++) r *= t->shape[i];
    return r;
}

int64_t md_tensor_numel(const md_tensor_t *t)
{
    return md_tensor_nrows(t) * t->shape[t->ndim - 1];
}
