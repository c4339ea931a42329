/* libFuzzer target: the species TSV of finetune --species-tsv
 * (src/train/species.c): "label<TAB>path" lines, '#' comments and blank
 * lines. An accepted file's species must have a label free of tabs and
 * newlines and at least one non-empty path each. */
#include <string.h>

#include "fuzz_common.h"
#include "train/species.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[320];
    fz_write("species.tsv", data, size, path, sizeof path);
    md_species_spec_t s;
    memset(&s, 0, sizeof s);
    fz_log_begin();
    int r = md_species_spec_read_tsv(&s, path);
    fz_log_end(r < 0, "md_species_spec_read_tsv");
    if (r == 0) {
        FZ_CHECK(s.n >= 0);
        for (int i = 0; i < s.n; i++) {
            FZ_CHECK(s.labels[i][0] && !strpbrk(s.labels[i], "\t\n"));
            FZ_CHECK(s.n_paths[i] >= 1);
            for (int j = 0; j < s.n_paths[i]; j++) FZ_CHECK(s.paths[i][j][0]);
            for (int k = 0; k < i; k++) FZ_CHECK(strcmp(s.labels[i], s.labels[k]));
        }
    }
    md_species_spec_free(&s);
    return 0;
}
