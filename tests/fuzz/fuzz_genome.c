/* libFuzzer target: genome files through md_genome_open (src/seq/genome*.c,
 * twobit.c): FASTA plain, gzip or bgzip, and 2bit, told apart by content,
 * with an optional .fai and .gzi beside a FASTA.
 *
 * Input: GENOME [ "\n==fai==\n" FAI [ "\n==gzi==\n" GZI ] ]. Every contig's
 * first bases are fetched before and after md_genome_load(), which must agree
 * (faidx or the 2bit reader against the loaded, packed form), and the loaded
 * form's N counts must agree with its tokens. */
#include "fuzz_common.h"
#include "seq/genome.h"
#include "seq/tokenizer.h"

enum { MAX_CONTIGS = 8, PIECE = 2048 };

static const uint8_t *find(const uint8_t *p, size_t n, const char *marker)
{
    size_t k = strlen(marker);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(p + i, marker, k)) return p + i;
    return NULL;
}

/* Fetches [start, end) and checks the bytes; 0 or -1 (after one error line). */
static int fetch(md_genome_t *g, int c, int64_t start, int64_t end, char *out)
{
    fz_log_begin();
    int ret = md_genome_fetch(g, c, start, end, out, 1);
    fz_log_end(ret < 0, "md_genome_fetch");
    if (ret == 0)
        for (int64_t i = 0; i < end - start; i++) FZ_CHECK(strchr("ACGTNacgtn", out[i]) && out[i]);
    return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *fai = find(data, size, "\n==fai==\n");
    size_t genome_size = fai ? (size_t)(fai - data) : size, fai_size = 0, gzi_size = 0;
    const uint8_t *gzi = NULL;
    if (fai) {
        fai += 9;
        fai_size = size - (size_t)(fai - data);
        gzi = find(fai, fai_size, "\n==gzi==\n");
        if (gzi) {
            fai_size = (size_t)(gzi - fai);
            gzi += 9;
            gzi_size = size - (size_t)(gzi - data);
        }
    }
    char path[320], p2[320];
    fz_clean();
    fz_write("g", data, genome_size, path, sizeof path);
    if (gzi) fz_write("g.gzi", gzi, gzi_size, p2, sizeof p2);
    if (fai) fz_write("g.fai", fai, fai_size, p2, sizeof p2);   /* last: not older than the FASTA */

    const char *paths[1] = {path};
    fz_log_begin();
    md_genome_t *g = md_genome_open(paths, 1);
    fz_log_end(g == NULL, "md_genome_open");
    if (!g) return 0;
    int n = md_genome_n_contigs(g);
    FZ_CHECK(n > 0);
    static char before[MAX_CONTIGS][PIECE], after[PIECE];
    int fetched[MAX_CONTIGS] = {0};
    int64_t total = 0;
    for (int c = 0; c < n; c++) {
        const md_contig_t *ct = md_genome_contig(g, c);
        FZ_CHECK(ct->len >= 0 && ct->name[0] && md_genome_find(g, ct->name) == c);
        total += ct->len;
        if (c < MAX_CONTIGS) {
            int64_t end = ct->len < PIECE ? ct->len : PIECE;
            fetched[c] = fetch(g, c, 0, end, before[c]) == 0;
        }
    }
    FZ_CHECK(total == md_genome_total_len(g));

    fz_log_begin();
    int loaded = md_genome_load(g) == 0;
    fz_log_end(!loaded, "md_genome_load");
    for (int c = 0; loaded && c < n && c < MAX_CONTIGS; c++) {
        const md_contig_t *ct = md_genome_contig(g, c);
        int64_t end = ct->len < PIECE ? ct->len : PIECE;
        FZ_CHECK(fetch(g, c, 0, end, after) == 0);
        if (fetched[c]) FZ_CHECK(!memcmp(before[c], after, (size_t)end));
        uint8_t tok[PIECE];
        md_genome_tokens(g, c, 0, end, tok);
        int64_t n_tok = 0;
        for (int64_t i = 0; i < end; i++) n_tok += tok[i] == MD_TOK_N;
        FZ_CHECK(n_tok == md_genome_count_n(g, c, 0, end));
        for (int64_t k = 0; k < ct->n_n_runs; k++)
            FZ_CHECK(ct->n_runs[k].start < ct->n_runs[k].end && ct->n_runs[k].end <= ct->len &&
                     (k == 0 || ct->n_runs[k - 1].end < ct->n_runs[k].start));
    }
    md_genome_close(g);
    return 0;
}
