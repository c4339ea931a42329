/* libFuzzer target: UCSC .2bit files through the reader itself
 * (src/seq/twobit.c): open, lengths, fetches and whole loads. A fetch and a
 * load of the same sequence must give the same bases. */
#include "fuzz_common.h"
#include "seq/genome.h"
#include "seq/twobit.h"

enum { MAX_SEQS = 16, PIECE = 4096 };

/* The loaded form of [0, end) as fetch would write it with keep_case. */
static void unpack_loaded(const uint8_t *packed, const md_run_t *nr, int64_t nn, const md_run_t *mr, int64_t nm,
                          int64_t end, char *out)
{
    md_twobit_unpack(packed, 0, end, out);
    for (int64_t k = 0; k < nn && nr[k].start < end; k++)
        for (int64_t x = nr[k].start; x < nr[k].end && x < end; x++) out[x] = 'N';
    for (int64_t k = 0; k < nm && mr[k].start < end; k++)
        for (int64_t x = mr[k].start; x < mr[k].end && x < end; x++) out[x] |= 0x20;
}

static void check_runs(const md_run_t *r, int64_t n, int64_t len)
{
    for (int64_t k = 0; k < n; k++)
        FZ_CHECK(r[k].start < r[k].end && r[k].end <= len && (k == 0 || r[k - 1].end < r[k].start));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[320];
    fz_write("g.2bit", data, size, path, sizeof path);
    fz_log_begin();
    md_twobit_t *tb = md_twobit_open(path);
    fz_log_end(tb == NULL, "md_twobit_open");
    if (!tb) return 0;
    static char fetched[PIECE], loaded[PIECE];
    for (int i = 0; i < md_twobit_n_seqs(tb) && i < MAX_SEQS; i++) {
        FZ_CHECK(strlen(md_twobit_name(tb, i)) >= 1 && strlen(md_twobit_name(tb, i)) <= 255);
        fz_log_begin();
        int64_t len = md_twobit_length(tb, i);
        fz_log_end(len < 0, "md_twobit_length");
        if (len < 0) continue;
        /* the packed bases lie inside the file */
        FZ_CHECK((uint64_t)(len + 3) / 4 <= size);
        int64_t end = len < PIECE ? len : PIECE;
        fz_log_begin();
        int f_ok = md_twobit_fetch(tb, i, 0, end, fetched, 1) == 0;
        fz_log_end(!f_ok, "md_twobit_fetch");
        fz_log_begin();
        int bad_range = md_twobit_fetch(tb, i, 0, len + 1, fetched + 0, 1);
        fz_log_end(bad_range < 0, "md_twobit_fetch past the end");
        FZ_CHECK(bad_range < 0);
        uint8_t *packed = NULL;
        md_run_t *nr = NULL, *mr = NULL;
        int64_t nn = 0, nm = 0;
        fz_log_begin();
        int l_ok = md_twobit_load(tb, i, &packed, &nr, &nn, &mr, &nm) == 0;
        fz_log_end(!l_ok, "md_twobit_load");
        FZ_CHECK(f_ok == l_ok);
        if (l_ok) {
            check_runs(nr, nn, len);
            check_runs(mr, nm, len);
            unpack_loaded(packed, nr, nn, mr, nm, end, loaded);
            FZ_CHECK(!memcmp(fetched, loaded, (size_t)end));
        }
        free(packed);
        free(nr);
        free(mr);
    }
    md_twobit_close(tb);
    return 0;
}
