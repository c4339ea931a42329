/* safetensors: round trips, a file built byte by byte from the spec, dtype
 * conversions, and every kind of corruption the reader must refuse. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/safetensors.h"
#include "testutil.h"
#include "util/log.h"

static char *tmp_path(const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 512, "%s/%s", md_test_tmpdir(), name);
    return p;
}

/* Writes an 8-byte little-endian length, the header as given, then data. */
static void write_raw(const char *path, const char *hdr, uint64_t hdr_len_field, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(hdr_len_field >> (8 * i));
    fwrite(len8, 1, 8, fp);
    fwrite(hdr, 1, strlen(hdr), fp);
    if (n) fwrite(data, 1, n, fp);
    fclose(fp);
}

static void write_hdr(const char *path, const char *hdr, const void *data, size_t n)
{
    write_raw(path, hdr, strlen(hdr), data, n);
}

static void test_hand_built(void)
{
    /* Two tensors in the order the spec allows (not sorted by name), with
     * metadata, exactly as another writer might produce them. */
    float a[6] = {1, 2, 3, 4, 5, 6.5f};
    uint16_t b[2] = {0x3f80, 0xc000};   /* bf16 1.0 and -2.0 */
    uint8_t data[28];
    memcpy(data, b, 4);
    memcpy(data + 4, a, 24);
    const char *hdr = "{\"z\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[4,28]},"
                      "\"__metadata__\":{\"format\":\"pt\"}}";
    const char *p = tmp_path("hand.safetensors");
    write_hdr(p, hdr, data, sizeof data);
    md_st_file_t *f = md_st_read(p);
    CHECK(f != NULL, "hand-built file refused");
    if (!f) return;
    CHECK(f->n_tensors == 2, "%d tensors", f->n_tensors);
    CHECK(md_st_meta(f, "format") && !strcmp(md_st_meta(f, "format"), "pt"), "format metadata");
    CHECK(md_st_meta(f, "nothing") == NULL, "absent metadata");
    float got[6];
    int64_t shape[2] = {2, 3};
    CHECK(md_st_get_f32(f, "a", 2, shape, got) == 0, "get a");
    for (int i = 0; i < 6; i++) CHECK(got[i] == a[i], "a[%d]=%g", i, got[i]);
    int64_t wrong[2] = {3, 2};
    CHECK(md_st_get_f32(f, "a", 2, wrong, got) < 0, "a wrong shape accepted");
    CHECK(md_st_get_f32(f, "missing", 0, NULL, got) < 0, "missing tensor accepted");
    CHECK(md_st_get_f32(f, "z", 0, NULL, got) == 0 && got[0] == 1.0f && got[1] == -2.0f, "bf16 read %g %g", got[0],
          got[1]);
    md_st_free(f);
}

static void test_round_trip(void)
{
    const char *p = tmp_path("rt.safetensors");
    md_st_writer_t *w = md_st_writer_new();
    float x[12];
    for (int i = 0; i < 12; i++) x[i] = (float)(i * 0.37 - 1.1);
    int64_t s1[3] = {3, 1, 4};
    md_st_add(w, "layer.weight", MD_ST_F32, 3, s1, x);
    int64_t s2[1] = {12};
    md_st_add_f32_as(w, "half", MD_ST_BF16, 1, s2, x);
    md_st_add_f32_as(w, "f16", MD_ST_F16, 1, s2, x);
    md_st_add_f32_as(w, "dbl", MD_ST_F64, 1, s2, x);
    uint64_t u[3] = {1, UINT64_MAX, 42};
    int64_t s3[1] = {3};
    md_st_add(w, "state", MD_ST_U64, 1, s3, u);
    md_st_add(w, "scalar", MD_ST_F32, 0, NULL, x + 5);
    md_st_add(w, "empty", MD_ST_F32, 1, (int64_t[]){0}, NULL);
    md_st_set_meta(w, "format", "pt");
    md_st_set_meta(w, "config", "{\"d_model\": 8}");
    CHECK(md_st_write(w, p) == 0, "write");
    md_st_writer_free(w);

    FILE *fp = fopen(p, "rb");
    uint8_t len8[8];
    CHECK(fread(len8, 1, 8, fp) == 8, "read len");
    fclose(fp);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | len8[i];
    CHECK(n % 8 == 0, "header length %llu not padded to 8", (unsigned long long)n);

    md_st_file_t *f = md_st_read(p);
    CHECK(f != NULL, "round trip read");
    if (!f) return;
    float y[12];
    CHECK(md_st_get_f32(f, "layer.weight", 3, s1, y) == 0, "get");
    CHECK(memcmp(x, y, sizeof x) == 0, "f32 bits differ");
    CHECK(md_st_get_f32(f, "dbl", 1, s2, y) == 0 && memcmp(x, y, sizeof x) == 0, "f64 round trip");
    CHECK(md_st_get_f32(f, "half", 1, s2, y) == 0, "get bf16");
    for (int i = 0; i < 12; i++) CHECK(fabsf(y[i] - x[i]) <= fabsf(x[i]) / 256 + 1e-6f, "bf16[%d] %g vs %g", i, y[i], x[i]);
    CHECK(md_st_get_f32(f, "f16", 1, s2, y) == 0, "get f16");
    for (int i = 0; i < 12; i++) CHECK(fabsf(y[i] - x[i]) <= fabsf(x[i]) / 2048 + 1e-6f, "f16[%d] %g vs %g", i, y[i], x[i]);
    uint64_t v[3];
    CHECK(md_st_get_raw(f, "state", MD_ST_U64, 3, v) == 0 && v[1] == UINT64_MAX && v[2] == 42, "u64");
    CHECK(md_st_get_raw(f, "state", MD_ST_I64, 3, v) < 0, "wrong dtype accepted");
    CHECK(md_st_get_f32(f, "state", 0, NULL, y) < 0, "integer read as float");
    const md_st_tensor_t *t = md_st_find(f, "scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1, "scalar");
    t = md_st_find(f, "empty");
    CHECK(t && t->numel == 0, "empty");
    CHECK(!strcmp(md_st_meta(f, "config"), "{\"d_model\": 8}"), "config metadata");
    md_st_free(f);

    /* Writing over an existing file replaces it whole. */
    w = md_st_writer_new();
    md_st_add(w, "only", MD_ST_F32, 1, s2, x);
    CHECK(md_st_write(w, p) == 0, "rewrite");
    md_st_writer_free(w);
    f = md_st_read(p);
    CHECK(f && f->n_tensors == 1, "rewritten file");
    md_st_free(f);

    /* A duplicate name is refused and leaves the destination alone. */
    w = md_st_writer_new();
    md_st_add(w, "a", MD_ST_F32, 1, s2, x);
    md_st_add(w, "a", MD_ST_F32, 1, s2, x);
    CHECK(md_st_write(w, p) < 0, "duplicate name written");
    md_st_writer_free(w);
    f = md_st_read(p);
    CHECK(f && f->n_tensors == 1 && md_st_find(f, "only"), "destination touched by a failed write");
    md_st_free(f);
}

static void test_conversions(void)
{
    CHECK(md_f32_to_bf16(1.0f) == 0x3f80, "bf16 1");
    /* 1 + 2^-8 lies halfway between bf16 1.0 and 1.0078125: ties to even (1.0). */
    CHECK(md_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 tie to even");
    CHECK(md_f32_to_bf16(1.01171875f) == 0x3f82, "bf16 tie to even upward");
    CHECK(isnan(md_bf16_to_f32(md_f32_to_bf16(NAN))), "bf16 nan");
    CHECK(md_f32_to_f16(1.0f) == 0x3c00 && md_f32_to_f16(-2.0f) == 0xc000, "f16 1,-2");
    CHECK(md_f32_to_f16(65504.0f) == 0x7bff && md_f32_to_f16(1e6f) == 0x7c00, "f16 max/inf");
    CHECK(md_f16_to_f32(0x0001) == ldexpf(1, -24), "f16 smallest subnormal");
    for (uint32_t h = 0; h < 0x7c00; h++) {   /* every finite positive f16 survives a round trip */
        float x = md_f16_to_f32((uint16_t)h);
        if (md_f32_to_f16(x) != h) { CHECK(0, "f16 %#x -> %g -> %#x", h, x, md_f32_to_f16(x)); break; }
    }
}

/* Each corruption must be refused (NULL), never crash. */
static void test_corrupt(void)
{
    float d[4] = {1, 2, 3, 4};
    const char *ok = "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    const char *p = tmp_path("bad.safetensors");
    write_hdr(p, ok, d, 16);
    md_st_file_t *f = md_st_read(p);
    CHECK(f != NULL, "control file refused");
    md_st_free(f);

    struct { const char *what, *hdr; size_t n; } cases[] = {
        {"truncated data", ok, 12},
        {"trailing bytes", ok, 16 + 0},   /* patched below to add bytes */
        {"bad json", "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}", 16},
        {"not an object", "[1,2,3]", 16},
        {"unknown dtype", "{\"t\":{\"dtype\":\"Q7\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16},
        {"missing dtype", "{\"t\":{\"shape\":[4],\"data_offsets\":[0,16]}}", 16},
        {"negative dim", "{\"t\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 16},
        {"span mismatch", "{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16},
        {"offsets reversed", "{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,0]}}", 16},
        {"offset beyond data", "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 16},
        {"overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16},
        {"gap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16},
        {"metadata not string", "{\"__metadata__\":{\"x\":1},"
                                "\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16},
        {"duplicate key", "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                          "\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16},
        {"huge shape", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,16]}}", 16},
    };
    float big[8] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (i == 1) write_hdr(p, cases[i].hdr, big, 20);
        else write_hdr(p, cases[i].hdr, i == 0 ? (const void *)d : (const void *)big, cases[i].n);
        f = md_st_read(p);
        CHECK(f == NULL, "%s accepted", cases[i].what);
        md_st_free(f);
    }
    /* Header length field beyond the file, and absurd. */
    write_raw(p, ok, 1000, d, 16);
    CHECK((f = md_st_read(p)) == NULL, "header length beyond file accepted");
    md_st_free(f);
    write_raw(p, ok, UINT64_MAX, d, 16);
    CHECK((f = md_st_read(p)) == NULL, "huge header length accepted");
    md_st_free(f);
    /* Too short, empty, missing, binary junk. */
    FILE *fp = fopen(p, "wb");
    fwrite("abc", 1, 3, fp);
    fclose(fp);
    CHECK((f = md_st_read(p)) == NULL, "3-byte file accepted");
    fp = fopen(p, "wb");
    fclose(fp);
    CHECK((f = md_st_read(p)) == NULL, "empty file accepted");
    CHECK((f = md_st_read(tmp_path("does-not-exist"))) == NULL, "missing file accepted");
    fp = fopen(p, "wb");
    for (int i = 0; i < 4096; i++) fputc((i * 7919) & 0xff, fp);
    fclose(fp);
    CHECK((f = md_st_read(p)) == NULL, "junk accepted");

    /* Every truncation of a valid written file is refused. */
    md_st_writer_t *w = md_st_writer_new();
    int64_t s[1] = {4};
    md_st_add(w, "t", MD_ST_F32, 1, s, d);
    md_st_set_meta(w, "format", "pt");
    md_st_write(w, p);
    md_st_writer_free(w);
    fp = fopen(p, "rb");
    uint8_t whole[512];
    size_t n = fread(whole, 1, sizeof whole, fp);
    fclose(fp);
    int refused = 0;
    for (size_t k = 0; k < n; k++) {
        fp = fopen(p, "wb");
        fwrite(whole, 1, k, fp);
        fclose(fp);
        f = md_st_read(p);
        refused += f == NULL;
        md_st_free(f);
    }
    CHECK(refused == (int)n, "%d of %zu truncations refused", refused, n);
}

int main(void)
{
    md_verbose = 0;
    test_hand_built();
    test_round_trip();
    test_conversions();
    test_corrupt();
    if (!md_test_failures) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", md_test_tmpdir());
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", md_test_tmpdir());
    }
    return md_test_done();
}
