/* safetensors files: reading with strict validation, writing atomically.
 *
 * Layout (https://huggingface.co/docs/safetensors): an unsigned 64-bit
 * little-endian header length n, n bytes of JSON
 *   {"__metadata__": {"key": "string", ...},
 *    "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
 * then the raw little-endian tensor data; offsets are relative to the first
 * byte after the header. The reader accepts only files whose tensors tile
 * the data section exactly (contiguous, no overlap, no hole, no trailing
 * bytes), whose byte spans equal shape x dtype size, and whose metadata
 * values are all strings, as the reference implementation demands. Any
 * violation is one error line naming the file and the problem.
 *
 * The writer keeps borrowed pointers to the tensors' data until
 * md_st_write(), which writes the whole file through util/outfile.h: the
 * destination is replaced whole or not at all. Every file written gets the
 * metadata keys "mambadna" (the version) and "mambadna_command" (the command
 * line, util/provenance.h). The header is padded with spaces to a multiple
 * of 8 bytes so every tensor starts 8-aligned.
 */
#ifndef MD_NN_SAFETENSORS_H
#define MD_NN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    MD_ST_F32 = 0, MD_ST_BF16, MD_ST_F16, MD_ST_F64,
    MD_ST_I64, MD_ST_I32, MD_ST_U64, MD_ST_U8,
    MD_ST_N_DTYPES
} md_st_dtype_t;

#define MD_ST_MAX_DIMS 8

typedef struct md_st_tensor {
    char *name;
    md_st_dtype_t dtype;
    int ndim;
    int64_t shape[MD_ST_MAX_DIMS];
    int64_t numel;            /* product of shape; 1 for a scalar (ndim 0) */
    uint64_t begin, end;      /* byte span in the data section */
    const uint8_t *data;      /* points into the loaded file */
} md_st_tensor_t;

typedef struct md_st_file {
    char *path;
    int n_tensors;
    md_st_tensor_t *tensors;  /* in file order (by offset) */
    int n_meta;
    char **meta_keys, **meta_values;
    uint8_t *buf;             /* the whole file */
    uint64_t size;
} md_st_file_t;

/* "F32", "BF16", ...; element size in bytes. */
const char *md_st_dtype_name(md_st_dtype_t t);
size_t md_st_dtype_size(md_st_dtype_t t);

/* Reads and validates the whole file. NULL after one error line naming the
 * file: missing, too short, header length beyond the file, bad JSON, an
 * entry without dtype/shape/data_offsets, an unknown dtype, negative or
 * huge dims, offsets out of range, overlapping or non-contiguous spans, a
 * span that does not match shape x dtype, a non-string metadata value. */
md_st_file_t *md_st_read(const char *path);
void md_st_free(md_st_file_t *f);

/* The tensor called name, or NULL. */
const md_st_tensor_t *md_st_find(const md_st_file_t *f, const char *name);
/* The metadata value for key, or NULL. */
const char *md_st_meta(const md_st_file_t *f, const char *key);

/* Copies tensor name into dst as fp32 (F32 copied, BF16/F16/F64 converted).
 * When shape is not NULL the tensor must have exactly that shape (ndim
 * dims). 0, or -1 after one error line naming the file and the tensor
 * (missing, wrong shape, a non-float dtype). */
int md_st_get_f32(const md_st_file_t *f, const char *name, int ndim, const int64_t *shape, float *dst);
/* Same for raw bytes of an exact dtype and element count (integers). */
int md_st_get_raw(const md_st_file_t *f, const char *name, md_st_dtype_t dtype, int64_t numel, void *dst);

/* --- writing --- */
typedef struct md_st_writer md_st_writer_t;

md_st_writer_t *md_st_writer_new(void);
void md_st_writer_free(md_st_writer_t *w);
/* Adds a tensor; data is borrowed until md_st_write() and must hold
 * numel x dtype size bytes in the dtype's own little-endian layout. */
void md_st_add(md_st_writer_t *w, const char *name, md_st_dtype_t dtype, int ndim, const int64_t *shape,
               const void *data);
/* Adds an fp32 tensor converted to dtype (F32, BF16, F16 or F64); the
 * writer owns the converted copy. */
void md_st_add_f32_as(md_st_writer_t *w, const char *name, md_st_dtype_t dtype, int ndim,
                      const int64_t *shape, const float *data);
/* Sets a metadata entry (both strings copied); a key set twice keeps the last. */
void md_st_set_meta(md_st_writer_t *w, const char *key, const char *value);
/* Writes the file atomically. 0, or -1 after one error line; a duplicate
 * tensor name is refused. */
int md_st_write(md_st_writer_t *w, const char *path);

/* bf16 <-> f32 (round to nearest even; NaN stays NaN). */
uint16_t md_f32_to_bf16(float x);
float md_bf16_to_f32(uint16_t h);
float md_f16_to_f32(uint16_t h);
uint16_t md_f32_to_f16(float x);

#endif
