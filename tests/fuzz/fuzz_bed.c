/* libFuzzer target: BED intervals (src/seq/bed.c), plain or gzip.
 *
 * Input: one byte choosing the split column (even: none; odd: column
 * 4 + (byte >> 1) % 3), then the file. An accepted file's split labels are
 * then selected by a few specs, as sample --split does. */
#include "fuzz_common.h"
#include "seq/bed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t mode = fz_take_u8(&data, &size);
    int split_col = mode & 1 ? 4 + (int)(mode >> 1) % 3 : 0;
    char path[320];
    fz_write("x.bed", data, size, path, sizeof path);
    fz_log_begin();
    md_bed_t *b = md_bed_read(path, split_col);
    fz_log_end(b == NULL, "md_bed_read");
    if (!b) return 0;
    FZ_CHECK(b->n > 0 && b->n_chroms > 0);
    for (int64_t i = 0; i < b->n; i++) {
        const md_bed_interval_t *iv = &b->iv[i];
        FZ_CHECK(iv->start >= 0 && iv->start < iv->end);
        FZ_CHECK(iv->chrom >= 0 && iv->chrom < b->n_chroms && b->chroms[iv->chrom][0]);
        FZ_CHECK(split_col ? iv->split >= 0 && iv->split < b->n_splits : iv->split == -1);
    }
    if (split_col) {
        static const char *const specs[] = {"train", "valid,test", "fold3,fold4", "", ",", "x,"};
        uint8_t *sel = malloc((size_t)b->n_splits + 1);
        for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
            fz_log_begin();
            int r = md_bed_select_splits(b, specs[k], sel);
            fz_log_end(r < 0, "md_bed_select_splits");
        }
        free(sel);
    }
    md_bed_free(b);
    return 0;
}
