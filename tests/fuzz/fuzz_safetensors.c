/* libFuzzer target: safetensors files (src/nn/safetensors.c), header and
 * body. An accepted file's tensors are all read (as fp32 where the dtype
 * allows, raw otherwise), and the file is written back through the writer
 * and read again: the same tensors, bytes and metadata must come back, plus
 * the provenance the writer stamps on every file (the "mambadna" version,
 * and "mambadna_command" when a command line is set), which replaces any
 * value the input had under those keys. */
#include "fuzz_common.h"
#include "nn/safetensors.h"
#include "build_info.h"
#include "util/provenance.h"

static int is_float(md_st_dtype_t t) { return t == MD_ST_F32 || t == MD_ST_BF16 || t == MD_ST_F16 || t == MD_ST_F64; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[320], path2[320];
    fz_write("m.safetensors", data, size, path, sizeof path);
    fz_log_begin();
    md_st_file_t *f = md_st_read(path);
    fz_log_end(f == NULL, "md_st_read");
    if (!f) return 0;
    FZ_CHECK(f->size == size);
    uint64_t data_bytes = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const md_st_tensor_t *t = &f->tensors[i];
        FZ_CHECK(t->end - t->begin == (uint64_t)t->numel * md_st_dtype_size(t->dtype));
        FZ_CHECK(t->data >= f->buf && t->data + (t->end - t->begin) <= f->buf + f->size);
        FZ_CHECK(md_st_find(f, t->name) == t);
        data_bytes += t->end - t->begin;
        void *dst = malloc((size_t)t->numel * 8 + 1);
        fz_log_begin();
        int r = is_float(t->dtype) ? md_st_get_f32(f, t->name, t->ndim, t->shape, dst)
                                   : md_st_get_raw(f, t->name, t->dtype, t->numel, dst);
        fz_log_end(r < 0, "md_st_get");
        FZ_CHECK(r == 0);
        free(dst);
    }
    FZ_CHECK(data_bytes <= size);

    md_st_writer_t *w = md_st_writer_new();
    for (int i = 0; i < f->n_tensors; i++)
        md_st_add(w, f->tensors[i].name, f->tensors[i].dtype, f->tensors[i].ndim, f->tensors[i].shape,
                  f->tensors[i].data);
    for (int i = 0; i < f->n_meta; i++) md_st_set_meta(w, f->meta_keys[i], f->meta_values[i]);
    snprintf(path2, sizeof path2, "%s/again.safetensors", fz_tmpdir());
    fz_log_begin();
    int wr = md_st_write(w, path2);
    fz_log_end(wr < 0, "md_st_write");
    FZ_CHECK(wr == 0);
    md_st_writer_free(w);
    fz_log_begin();
    md_st_file_t *g = md_st_read(path2);
    fz_log_end(g == NULL, "md_st_read of the rewritten file");
    int stamped = !md_st_meta(f, "mambadna") + (md_provenance_command() && !md_st_meta(f, "mambadna_command"));
    FZ_CHECK(g && g->n_tensors == f->n_tensors && g->n_meta == f->n_meta + stamped);
    FZ_CHECK(md_st_meta(g, "mambadna") && !strcmp(md_st_meta(g, "mambadna"), MD_VERSION));
    for (int i = 0; i < f->n_tensors; i++) {
        const md_st_tensor_t *a = &f->tensors[i], *b = md_st_find(g, a->name);
        FZ_CHECK(b && b->dtype == a->dtype && b->ndim == a->ndim && b->numel == a->numel);
        FZ_CHECK(!memcmp(a->data, b->data, (size_t)(a->end - a->begin)));
    }
    for (int i = 0; i < f->n_meta; i++) {
        if (!strcmp(f->meta_keys[i], "mambadna") || !strcmp(f->meta_keys[i], "mambadna_command")) continue;
        const char *v = md_st_meta(g, f->meta_keys[i]);
        FZ_CHECK(v && !strcmp(v, f->meta_values[i]));
    }
    md_st_free(g);
    md_st_free(f);
    return 0;
}
