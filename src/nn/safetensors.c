#include "nn/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "build_info.h"
#include "util/log.h"
#include "util/outfile.h"
#include "util/provenance.h"
#include "util/xalloc.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader copies it raw"
#endif

/* The reference implementation refuses headers above 100 MB; so do we, so
 * that a corrupted length cannot make us allocate absurd amounts. */
#define MD_ST_MAX_HEADER (100ULL << 20)
/* Dimensions beyond 2^40 cannot be real and would overflow the product. */
#define MD_ST_MAX_DIM (1LL << 40)

static const struct { const char *name; size_t size; } dtype_table[MD_ST_N_DTYPES] = {
    [MD_ST_F32] = {"F32", 4}, [MD_ST_BF16] = {"BF16", 2}, [MD_ST_F16] = {"F16", 2},
    [MD_ST_F64] = {"F64", 8}, [MD_ST_I64] = {"I64", 8}, [MD_ST_I32] = {"I32", 4},
    [MD_ST_U64] = {"U64", 8}, [MD_ST_U8] = {"U8", 1},
};

const char *md_st_dtype_name(md_st_dtype_t t) { return t < MD_ST_N_DTYPES ? dtype_table[t].name : "?"; }
size_t md_st_dtype_size(md_st_dtype_t t) { return t < MD_ST_N_DTYPES ? dtype_table[t].size : 0; }

static int dtype_from_name(const char *s)
{
    for (int i = 0; i < MD_ST_N_DTYPES; i++)
        if (!strcmp(s, dtype_table[i].name)) return i;
    return -1;
}

/* ---- half-precision conversions ---- */

uint16_t md_f32_to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

float md_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

float md_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else {   /* subnormal: value = man * 2^-24 */
            float v = ldexpf((float)man, -24);
            return sign ? -v : v;
        }
    } else {
        u = sign | ((exp + 112) << 23) | (man << 13);
    }
    float x;
    memcpy(&x, &u, 4);
    return x;
}

uint16_t md_f32_to_f16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    float a = fabsf(x);
    if (isnan(x)) return sign | 0x7e00;
    if (a >= 65520.0f) return sign | 0x7c00;               /* rounds to infinity */
    if (a < 6.103515625e-05f) {                            /* subnormal or zero */
        float m = a * 16777216.0f;                         /* units of 2^-24 */
        return sign | (uint16_t)lrintf(m);                 /* ties to even under the default mode */
    }
    uint32_t au;
    memcpy(&au, &a, 4);
    uint32_t exp = (au >> 23) - 112, man = au & 0x7fffff;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;   /* a carry into the exponent is right */
    return sign | (uint16_t)h;
}

/* ---- reading ---- */

void md_st_free(md_st_file_t *f)
{
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) { free(f->meta_keys[i]); free(f->meta_values[i]); }
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->buf);
    free(f->path);
    free(f);
}

static int by_begin(const void *a, const void *b)
{
    const md_st_tensor_t *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Reads a non-negative JSON integer; 0 or -1. */
static int json_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int parse_tensor_entry(md_st_file_t *f, const char *name, json_t *v, md_st_tensor_t *t)
{
    const char *path = f->path;
    if (!json_is_object(v)) {
        md_error("corrupt safetensors file '%s': entry '%s' is not an object", path, name);
        return -1;
    }
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"), *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo)) {
        md_error("corrupt safetensors file '%s': tensor '%s' lacks a dtype, shape or data_offsets", path, name);
        return -1;
    }
    int dt = dtype_from_name(json_string_value(jd));
    if (dt < 0) {
        md_error("safetensors file '%s': tensor '%s' has dtype '%s', which is not supported", path, name,
                 json_string_value(jd));
        return -1;
    }
    size_t nd = json_array_size(js);
    if (nd > MD_ST_MAX_DIMS) {
        md_error("safetensors file '%s': tensor '%s' has %zu dimensions (at most %d supported)", path, name, nd,
                 MD_ST_MAX_DIMS);
        return -1;
    }
    memset(t, 0, sizeof *t);
    t->dtype = (md_st_dtype_t)dt;
    t->ndim = (int)nd;
    t->numel = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (json_u64(json_array_get(js, i), &d) < 0 || d > (uint64_t)MD_ST_MAX_DIM) {
            md_error("corrupt safetensors file '%s': tensor '%s' has an invalid shape", path, name);
            return -1;
        }
        t->shape[i] = (int64_t)d;
        if (d && t->numel > MD_ST_MAX_DIM / (int64_t)d) {
            md_error("corrupt safetensors file '%s': tensor '%s' has an impossibly large shape", path, name);
            return -1;
        }
        t->numel *= (int64_t)d;
    }
    if (json_array_size(jo) != 2 || json_u64(json_array_get(jo, 0), &t->begin) < 0 ||
        json_u64(json_array_get(jo, 1), &t->end) < 0 || t->end < t->begin) {
        md_error("corrupt safetensors file '%s': tensor '%s' has invalid data_offsets", path, name);
        return -1;
    }
    uint64_t want = (uint64_t)t->numel * dtype_table[dt].size;
    if (t->end - t->begin != want) {
        md_error("corrupt safetensors file '%s': tensor '%s' spans %llu bytes but its shape and dtype need %llu",
                 path, name, (unsigned long long)(t->end - t->begin), (unsigned long long)want);
        return -1;
    }
    t->name = md_strdup(name);
    return 0;
}

static int parse_header(md_st_file_t *f, const char *hdr, size_t n, uint64_t data_len)
{
    json_error_t jerr;
    json_t *root = json_loadb(hdr, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        md_error("corrupt safetensors file '%s': the header is not valid JSON (%s at byte %d)", f->path, jerr.text,
                 jerr.position);
        return -1;
    }
    int ret = -1;
    if (!json_is_object(root)) {
        md_error("corrupt safetensors file '%s': the header is not a JSON object", f->path);
        goto out;
    }
    size_t cap = json_object_size(root);
    f->tensors = md_calloc(cap ? cap : 1, sizeof *f->tensors);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(v)) {
                md_error("corrupt safetensors file '%s': __metadata__ is not an object", f->path);
                goto out;
            }
            size_t nm = json_object_size(v);
            f->meta_keys = md_calloc(nm ? nm : 1, sizeof(char *));
            f->meta_values = md_calloc(nm ? nm : 1, sizeof(char *));
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv)) {
                    md_error("corrupt safetensors file '%s': metadata '%s' is not a string", f->path, mk);
                    goto out;
                }
                f->meta_keys[f->n_meta] = md_strdup(mk);
                f->meta_values[f->n_meta++] = md_strdup(json_string_value(mv));
            }
            continue;
        }
        if (parse_tensor_entry(f, key, v, &f->tensors[f->n_tensors]) < 0) goto out;
        f->n_tensors++;
    }
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, by_begin);
    uint64_t pos = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        md_st_tensor_t *t = &f->tensors[i];
        if (t->end > data_len) {
            md_error("truncated safetensors file '%s': tensor '%s' ends at byte %llu of a %llu-byte data section",
                     f->path, t->name, (unsigned long long)t->end, (unsigned long long)data_len);
            goto out;
        }
        if (t->begin != pos) {
            md_error("corrupt safetensors file '%s': tensor '%s' %s the previous tensor (offset %llu, expected %llu)",
                     f->path, t->name, t->begin < pos ? "overlaps" : "leaves a gap after",
                     (unsigned long long)t->begin, (unsigned long long)pos);
            goto out;
        }
        pos = t->end;
    }
    if (pos != data_len) {
        md_error("corrupt safetensors file '%s': %llu bytes after the last tensor are not described by the header",
                 f->path, (unsigned long long)(data_len - pos));
        goto out;
    }
    ret = 0;
out:
    json_decref(root);
    return ret;
}

md_st_file_t *md_st_read(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        md_error("cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        md_error("cannot read '%s': not a regular file", path);
        fclose(fp);
        return NULL;
    }
    md_st_file_t *f = md_calloc(1, sizeof *f);
    f->path = md_strdup(path);
    f->size = (uint64_t)st.st_size;
    if (f->size < 8) {
        md_error("truncated safetensors file '%s': %llu bytes, too short for a header", path,
                 (unsigned long long)f->size);
        goto fail;
    }
    f->buf = md_malloc(f->size);
    if (fread(f->buf, 1, f->size, fp) != f->size) {
        md_error("cannot read '%s': %s", path, ferror(fp) ? strerror(errno) : "file shrank while reading");
        goto fail;
    }
    fclose(fp);
    fp = NULL;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->buf[i];
    if (n > f->size - 8) {
        md_error("truncated or corrupt safetensors file '%s': header length %llu exceeds the %llu bytes that follow",
                 path, (unsigned long long)n, (unsigned long long)(f->size - 8));
        goto fail;
    }
    if (n < 2 || n > MD_ST_MAX_HEADER || f->buf[8] != '{') {
        md_error("'%s' is not a safetensors file (no JSON header after the length)", path);
        goto fail;
    }
    if (parse_header(f, (const char *)f->buf + 8, (size_t)n, f->size - 8 - n) < 0) goto fail;
    for (int i = 0; i < f->n_tensors; i++) f->tensors[i].data = f->buf + 8 + n + f->tensors[i].begin;
    return f;
fail:
    if (fp) fclose(fp);
    md_st_free(f);
    return NULL;
}

const md_st_tensor_t *md_st_find(const md_st_file_t *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *md_st_meta(const md_st_file_t *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_values[i];
    return NULL;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

int md_st_get_f32(const md_st_file_t *f, const char *name, int ndim, const int64_t *shape, float *dst)
{
    const md_st_tensor_t *t = md_st_find(f, name);
    if (!t) {
        md_error("checkpoint '%s' lacks tensor '%s'", f->path, name);
        return -1;
    }
    if (shape) {
        int same = t->ndim == ndim;
        for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
        if (!same) {
            char a[160], b[160];
            shape_str(a, sizeof a, t->ndim, t->shape);
            shape_str(b, sizeof b, ndim, shape);
            md_error("checkpoint '%s': tensor '%s' has shape %s, expected %s", f->path, name, a, b);
            return -1;
        }
    }
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case MD_ST_F32:
        memcpy(dst, p, (size_t)t->numel * 4);
        return 0;
    case MD_ST_BF16:
    case MD_ST_F16:
        for (int64_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = t->dtype == MD_ST_BF16 ? md_bf16_to_f32(h) : md_f16_to_f32(h);
        }
        return 0;
    case MD_ST_F64:
        for (int64_t i = 0; i < t->numel; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d;
        }
        return 0;
    default:
        md_error("checkpoint '%s': tensor '%s' has dtype %s, not a floating-point type", f->path, name,
                 md_st_dtype_name(t->dtype));
        return -1;
    }
}

int md_st_get_raw(const md_st_file_t *f, const char *name, md_st_dtype_t dtype, int64_t numel, void *dst)
{
    const md_st_tensor_t *t = md_st_find(f, name);
    if (!t) {
        md_error("checkpoint '%s' lacks tensor '%s'", f->path, name);
        return -1;
    }
    if (t->dtype != dtype || t->numel != numel) {
        md_error("checkpoint '%s': tensor '%s' is %s with %lld elements, expected %s with %lld", f->path, name,
                 md_st_dtype_name(t->dtype), (long long)t->numel, md_st_dtype_name(dtype), (long long)numel);
        return -1;
    }
    memcpy(dst, t->data, (size_t)numel * md_st_dtype_size(dtype));
    return 0;
}

/* ---- writing ---- */

typedef struct {
    char *name;
    md_st_dtype_t dtype;
    int ndim;
    int64_t shape[MD_ST_MAX_DIMS];
    const void *data;
    void *owned;
    uint64_t nbytes;
} st_entry_t;

struct md_st_writer {
    st_entry_t *e;
    size_t n, cap;
    json_t *meta;
};

md_st_writer_t *md_st_writer_new(void)
{
    md_st_writer_t *w = md_calloc(1, sizeof *w);
    w->meta = json_object();
    return w;
}

void md_st_writer_free(md_st_writer_t *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) { free(w->e[i].name); free(w->e[i].owned); }
    free(w->e);
    json_decref(w->meta);
    free(w);
}

void md_st_add(md_st_writer_t *w, const char *name, md_st_dtype_t dtype, int ndim, const int64_t *shape,
               const void *data)
{
    MD_GROW(w->e, w->cap, w->n + 1);
    st_entry_t *e = &w->e[w->n++];
    memset(e, 0, sizeof *e);
    e->name = md_strdup(name);
    e->dtype = dtype;
    e->ndim = ndim < MD_ST_MAX_DIMS ? ndim : MD_ST_MAX_DIMS;
    uint64_t numel = 1;
    for (int i = 0; i < e->ndim; i++) { e->shape[i] = shape[i]; numel *= (uint64_t)shape[i]; }
    e->nbytes = numel * md_st_dtype_size(dtype);
    e->data = data;
}

void md_st_add_f32_as(md_st_writer_t *w, const char *name, md_st_dtype_t dtype, int ndim, const int64_t *shape,
                      const float *data)
{
    md_st_add(w, name, dtype, ndim, shape, NULL);
    st_entry_t *e = &w->e[w->n - 1];
    uint64_t numel = e->nbytes / md_st_dtype_size(dtype);
    uint8_t *buf = md_malloc(e->nbytes ? e->nbytes : 1);
    for (uint64_t i = 0; i < numel; i++) {
        switch (dtype) {
        case MD_ST_F32: memcpy(buf + 4 * i, &data[i], 4); break;
        case MD_ST_BF16: { uint16_t h = md_f32_to_bf16(data[i]); memcpy(buf + 2 * i, &h, 2); break; }
        case MD_ST_F16: { uint16_t h = md_f32_to_f16(data[i]); memcpy(buf + 2 * i, &h, 2); break; }
        case MD_ST_F64: { double d = data[i]; memcpy(buf + 8 * i, &d, 8); break; }
        default: memset(buf, 0, e->nbytes); i = numel; break;
        }
    }
    e->owned = buf;
    e->data = buf;
}

void md_st_set_meta(md_st_writer_t *w, const char *key, const char *value)
{
    json_object_set_new(w->meta, key, json_string(value));
}

int md_st_write(md_st_writer_t *w, const char *path)
{
    /* Every file says which mambadna and which command line made it. */
    md_st_set_meta(w, "mambadna", MD_VERSION);
    if (md_provenance_command()) md_st_set_meta(w, "mambadna_command", md_provenance_command());
    json_t *root = json_object();
    if (json_object_size(w->meta)) json_object_set(root, "__metadata__", w->meta);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        st_entry_t *e = &w->e[i];
        if (json_object_get(root, e->name) || !strcmp(e->name, "__metadata__")) {
            md_error("cannot write '%s': tensor name '%s' used twice", path, e->name);
            json_decref(root);
            return -1;
        }
        json_t *shape = json_array();
        for (int d = 0; d < e->ndim; d++) json_array_append_new(shape, json_integer(e->shape[d]));
        json_t *jo = json_array();
        json_array_append_new(jo, json_integer((json_int_t)off));
        json_array_append_new(jo, json_integer((json_int_t)(off + e->nbytes)));
        json_object_set_new(root, e->name,
                            json_pack("{s:s, s:o, s:o}", "dtype", md_st_dtype_name(e->dtype), "shape", shape,
                                      "data_offsets", jo));
        off += e->nbytes;
    }
    char *hdr = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    size_t n = strlen(hdr);
    size_t padded = (n + 7) & ~(size_t)7;
    md_outfile_t *o = md_outfile_open(path);
    if (!o) { free(hdr); return -1; }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    fwrite(len8, 1, 8, o->fp);
    fwrite(hdr, 1, n, o->fp);
    for (size_t i = n; i < padded; i++) fputc(' ', o->fp);
    free(hdr);
    for (size_t i = 0; i < w->n; i++)
        if (w->e[i].nbytes) fwrite(w->e[i].data, 1, w->e[i].nbytes, o->fp);
    return md_outfile_commit(o);
}
