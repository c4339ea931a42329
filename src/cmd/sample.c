/* mambadna sample: the training windows a trainer would draw, as FASTA or BED6.
 * Everything is decided by data/sampler.h; this file only formats. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "cmd/cmd.h"
#include "data/sampler.h"
#include "seq/bed.h"
#include "seq/genome.h"
#include "seq/tokenizer.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/outfile.h"
#include "util/provenance.h"
#include "util/xalloc.h"

enum {
    OPT_BED = MD_OPT_FIRST_COMMAND_SPECIFIC,
    OPT_SPLIT,
    OPT_SPLIT_COL,
    OPT_SHORT,
    OPT_SKIP_UNKNOWN,
    OPT_RC,
    OPT_MAX_N,
};

/* Records are formatted in parallel into slots of this many bytes of
 * sequence per chunk, then written in order. */
enum { CHUNK_SEQ_BYTES = 8 << 20 };

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: mambadna sample [options] GENOME...\n\n"
            "Draws training windows from genomes (FASTA, gzip/bgzip FASTA, 2bit) exactly as the\n"
            "trainer would, and writes them as FASTA ('>chr:start-end(+)', 1-based inclusive,\n"
            "uppercase, one line per window) or BED6.\n\n"
            "Windows:\n"
            "  -L, --length INT        window length in bp [1024]\n"
            "  -n, --num INT           number of windows [100]; with --bed, 0 = every tile in file order\n"
            "      --rc                reverse-complement each window with probability 0.5\n"
            "      --max-n FLOAT       never draw windows with more than this fraction of N [0.1]\n"
            "BED intervals (default: uniform over all start positions of contigs >= L):\n"
            "      --bed FILE          tile windows without overlap from these intervals (plain or gzip);\n"
            "                          an interval of len >= L gives floor(len/L) tiles, centred\n"
            "      --split LIST        keep intervals whose split column holds one of these labels, e.g.\n"
            "                          train (Basenji) or fold3 or fold0,fold1 (Borzoi); in Borzoi files\n"
            "                          train/valid/test mean folds 0-2,5-7 / fold4 / fold3 [all]\n"
            "      --split-col INT     1-based column of the split label [4]\n"
            "      --short STR         intervals shorter than L: extend (centred, kept inside the\n"
            "                          contig) or skip [extend]\n"
            "      --skip-unknown-contigs  warn and skip intervals on contigs not in the genome\n"
            "                          (default: an error)\n"
            "Output:\n"
            "  -f, --format STR        fasta or bed (chrom, start, end, name=w<index>, 0, strand) [fasta]\n"
            MD_COMMON_HELP
            "\nWindow i is a pure function of (--seed, i): the output does not depend on -t.\n");
}

/* Decimal digits of v at p; returns the end. */
static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10); while (v /= 10);
    while (n) *p++ = tmp[--n];
    return p;
}

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* One record into slot; returns its length. The sequence is decoded
 * straight into the slot as tokens and turned into ASCII in place. */
static size_t format_record(const md_sampler_t *s, const md_genome_t *g, uint64_t index, int bed_format, char *slot)
{
    md_window_t w;
    md_sampler_window(s, index, &w);
    const char *name = md_genome_contig(g, w.contig)->name;
    char *p = slot;
    if (bed_format) {
        p = put_str(p, name);
        *p++ = '\t';
        p = put_u64(p, (uint64_t)w.start);
        *p++ = '\t';
        p = put_u64(p, (uint64_t)w.end);
        p = put_str(p, "\tw");
        p = put_u64(p, index);
        p = put_str(p, "\t0\t");
        *p++ = w.rc ? '-' : '+';
        *p++ = '\n';
        return (size_t)(p - slot);
    }
    *p++ = '>';
    p = put_str(p, name);
    *p++ = ':';
    p = put_u64(p, (uint64_t)w.start + 1);
    *p++ = '-';
    p = put_u64(p, (uint64_t)w.end);
    p = put_str(p, w.rc ? "(-)\n" : "(+)\n");
    int64_t L = w.end - w.start;
    uint8_t *seq = (uint8_t *)p;
    md_sampler_tokens(s, &w, seq);
    for (int64_t i = 0; i < L; i++) p[i] = md_tok_to_ascii[seq[i] & (MD_VOCAB_SIZE - 1)];
    p += L;
    *p++ = '\n';
    return (size_t)(p - slot);
}

static int write_windows(const md_sampler_t *s, const md_genome_t *g, uint64_t n, int bed_format, FILE *fp,
                         const char *path)
{
    const int64_t L = md_sampler_len(s);
    size_t name_max = 0;
    for (int c = 0; c < md_genome_n_contigs(g); c++) {
        size_t len = strlen(md_genome_contig(g, c)->name);
        if (len > name_max) name_max = len;
    }
    const size_t slot_size = name_max + 80 + (bed_format ? 0 : (size_t)L);
    int64_t chunk = bed_format ? 65536 : CHUNK_SEQ_BYTES / L;
    if (chunk < 1) chunk = 1;
    if ((uint64_t)chunk > n) chunk = (int64_t)n;
    char *buf = md_malloc(slot_size * (size_t)(chunk > 0 ? chunk : 1));
    size_t *lens = md_malloc(sizeof *lens * (size_t)(chunk > 0 ? chunk : 1));
    int ret = 0;
    for (uint64_t first = 0; first < n && ret == 0; first += (uint64_t)chunk) {
        int64_t m = (int64_t)(n - first < (uint64_t)chunk ? n - first : (uint64_t)chunk);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < m; i++)
            lens[i] = format_record(s, g, first + (uint64_t)i, bed_format, buf + (size_t)i * slot_size);
        for (int64_t i = 0; i < m; i++) fwrite(buf + (size_t)i * slot_size, 1, lens[i], fp);
        if (ferror(fp)) {
            md_error("cannot write '%s': %s", path, strerror(errno));
            ret = -1;
        }
    }
    free(buf);
    free(lens);
    return ret;
}

int cmd_sample(int argc, char **argv)
{
    md_common_opts_t co;
    md_common_init(&co);
    md_sampler_opts_t so;
    md_sampler_opts_init(&so);
    int64_t n_windows = 100, split_col = 4;
    int bed_format = 0;
    const char *bed_path = NULL;
    static const struct option longopts[] = {
        MD_COMMON_LONGOPTS,
        {"length", required_argument, 0, 'L'},
        {"num", required_argument, 0, 'n'},
        {"format", required_argument, 0, 'f'},
        {"bed", required_argument, 0, OPT_BED},
        {"split", required_argument, 0, OPT_SPLIT},
        {"split-col", required_argument, 0, OPT_SPLIT_COL},
        {"short", required_argument, 0, OPT_SHORT},
        {"skip-unknown-contigs", no_argument, 0, OPT_SKIP_UNKNOWN},
        {"rc", no_argument, 0, OPT_RC},
        {"max-n", required_argument, 0, OPT_MAX_N},
        {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, MD_COMMON_SHORTOPTS "L:n:f:", longopts, NULL)) >= 0) {
        switch (c) {
        case 'h': usage(stdout); return 0;
        case 'L':
            if (md_parse_i64("-L/--length", optarg, 1, 1000000000, 1, &so.len) < 0) return 1;
            break;
        case 'n':
            if (md_parse_i64("-n/--num", optarg, 0, INT64_MAX, 1, &n_windows) < 0) return 1;
            break;
        case 'f':
            if (!strcmp(optarg, "fasta")) bed_format = 0;
            else if (!strcmp(optarg, "bed")) bed_format = 1;
            else { md_error("option -f/--format: '%s' is not fasta or bed", optarg); return 1; }
            break;
        case OPT_BED: bed_path = optarg; break;
        case OPT_SPLIT: so.split = optarg; break;
        case OPT_SPLIT_COL:
            if (md_parse_i64("--split-col", optarg, 4, 64, 0, &split_col) < 0) return 1;
            break;
        case OPT_SHORT:
            if (!strcmp(optarg, "extend")) so.short_policy = MD_SHORT_EXTEND;
            else if (!strcmp(optarg, "skip")) so.short_policy = MD_SHORT_SKIP;
            else { md_error("option --short: '%s' is not extend or skip", optarg); return 1; }
            break;
        case OPT_SKIP_UNKNOWN: so.skip_unknown_contigs = 1; break;
        case OPT_RC: so.revcomp = 1; break;
        case OPT_MAX_N:
            if (md_parse_double("--max-n", optarg, 0.0, 1.0, &so.max_n_frac) < 0) return 1;
            break;
        default: {
            int r = md_common_opt(&co, c, optarg);
            if (r < 0) return 1;
            if (r == 0) { md_report_bad_option("sample", c, argv[optind - 1]); return 1; }
        }
        }
    }
    if (optind >= argc) {
        md_error("no genome given; see 'mambadna sample -h'");
        return 1;
    }
    if (so.split && !bed_path) {
        md_error("option --split needs --bed");
        return 1;
    }
    if (n_windows == 0 && !bed_path) {
        md_error("option -n 0 (every tile) needs --bed; uniform sampling has no end");
        return 1;
    }
    md_common_apply_threads(&co);
    so.seed = co.seed;
    so.order = n_windows == 0 ? MD_ORDER_FILE : MD_ORDER_SHUFFLE;

    int ret = 1;
    md_bed_t *bed = NULL;
    md_sampler_t *s = NULL;
    md_outfile_t *out = NULL;
    double t0 = md_realtime();
    md_genome_t *g = md_genome_open((const char *const *)argv + optind, argc - optind);
    if (!g || md_genome_load(g) < 0) goto done;
    md_info("loaded %d contigs, %lld bp in %.2f s", md_genome_n_contigs(g), (long long)md_genome_total_len(g),
            md_realtime() - t0);
    if (bed_path) {
        if (!(bed = md_bed_read(bed_path, so.split ? (int)split_col : 0))) goto done;
        so.bed = bed;
    }
    if (!(s = md_sampler_new(g, &so))) goto done;
    uint64_t n = n_windows ? (uint64_t)n_windows : md_sampler_stats(s)->n_windows;
    if (!(out = md_outfile_open(co.output))) goto done;
    double t1 = md_realtime();
    if (bed_format) md_provenance_comment(out->fp, "#");   /* BED readers skip '#' lines; FASTA has no place */
    if (write_windows(s, g, n, bed_format, out->fp, co.output) < 0) goto done;
    int rc = md_outfile_commit(out);
    out = NULL;
    if (rc < 0) goto done;
    double dt = md_realtime() - t1;
    if (bed_format)
        md_info("wrote %llu windows of %lld bp in %.3f s", (unsigned long long)n, (long long)so.len, dt);
    else
        md_info("wrote %llu windows of %lld bp (%.1f MB of sequence) in %.3f s: %.1f MB/s on %d threads",
                (unsigned long long)n, (long long)so.len, (double)n * (double)so.len / 1e6, dt,
                dt > 0 ? (double)n * (double)so.len / 1e6 / dt : 0.0, omp_get_max_threads());
    ret = 0;
done:
    md_outfile_abort(out);
    md_sampler_free(s);
    md_bed_free(bed);
    if (g) md_genome_close(g);
    return ret;
}
