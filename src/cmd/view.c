/* mambadna view: contigs or regions of a genome as FASTA, or contig lengths,
 * in the manner of samtools faidx and twoBitToFa. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "seq/genome.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/outfile.h"
#include "util/xalloc.h"

enum { OPT_LENGTHS = MD_OPT_FIRST_COMMAND_SPECIFIC };

/* Bases fetched per piece, so a whole chromosome never sits in memory twice. */
#define VIEW_CHUNK ((int64_t)1 << 20)

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: mambadna view [options] GENOME... [-r REGION]...\n\n"
            "Prints contigs or regions of a genome as FASTA (all contigs by default), or\n"
            "the contig lengths. GENOME files are FASTA (plain, gzip, bgzip) or .2bit, told\n"
            "apart by content; several files make one genome. Soft-masked (lowercase)\n"
            "bases stay lowercase unless -U is given.\n\n"
            "Options:\n"
            "  -r, --region REGION      CONTIG, CONTIG:START-END (1-based, inclusive, commas\n"
            "                           allowed) or CONTIG:START (to the contig's end);\n"
            "                           repeatable, printed in the order given\n"
            "  -R, --regions-file FILE  regions, one per line: either a REGION as for -r, or\n"
            "                           a BED line CONTIG<TAB>START<TAB>END[...] with a 0-based\n"
            "                           START and an exclusive END; empty lines and lines\n"
            "                           starting with '#', 'track' or 'browser' are skipped\n"
            "  -w, --width INT          bases per FASTA line, 0 for one line [60]\n"
            "  -U, --uppercase          fold soft-masked bases to uppercase\n"
            "      --lengths            print \"name<TAB>length\" per contig instead\n"
            "Region headers read CONTIG:START-END (1-based, inclusive), as in samtools faidx;\n"
            "a bare CONTIG region keeps its name. A region past a contig's end is an error.\n"
            "A plain or bgzip FASTA without a .fai is read whole, and gets a .fai (and .gzi)\n"
            "written beside it where the folder allows, as samtools faidx does.\n\n"
            "Common options:\n" MD_COMMON_HELP);
}

typedef struct region_req {
    char *text;          /* a region string, or NULL for a BED line */
    char *contig;        /* BED */
    int64_t start, end;  /* BED, 0-based half-open */
    char *source;        /* "FILE:LINE" for BED lines, for errors */
} region_req_t;

typedef struct region_list {
    region_req_t *r;
    size_t n, cap;
} region_list_t;

static void add_region_text(region_list_t *l, const char *text)
{
    MD_GROW(l->r, l->cap, l->n + 1);
    memset(&l->r[l->n], 0, sizeof l->r[l->n]);
    l->r[l->n++].text = md_strdup(text);
}

static int parse_nonneg(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || v < 0) return -1;
    *out = v;
    return 0;
}

/* "track ..." but not "track7", which could be a contig. */
static int starts_with_word(const char *s, const char *word)
{
    size_t n = strlen(word);
    return !strncmp(s, word, n) && (s[n] == 0 || s[n] == ' ' || s[n] == '\t');
}

static int read_regions_file(const char *path, region_list_t *l)
{
    FILE *fp = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!fp) {
        md_error("%s: cannot open the regions file: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long long line_no = 0;
    int ret = 0;
    while ((len = getline(&line, &cap, fp)) >= 0) {
        line_no++;
        while (len > 0 && isspace((unsigned char)line[len - 1])) line[--len] = 0;
        char *p = line;
        while (*p == ' ') p++;
        if (!*p || *p == '#' || starts_with_word(p, "track") || starts_with_word(p, "browser")) continue;
        char *tab = strchr(p, '\t');
        if (!tab) {
            add_region_text(l, p);
            continue;
        }
        /* BED: CONTIG START END [anything] */
        char *f[3] = {p, NULL, NULL};
        *tab = 0;
        f[1] = tab + 1;
        char *tab2 = strchr(f[1], '\t');
        if (tab2) {
            *tab2 = 0;
            f[2] = tab2 + 1;
            char *tab3 = strchr(f[2], '\t');
            if (tab3) *tab3 = 0;
        }
        int64_t s, e;
        if (!f[2] || parse_nonneg(f[1], &s) < 0 || parse_nonneg(f[2], &e) < 0) {
            md_error("%s:%lld: malformed BED line; expected CONTIG<TAB>START<TAB>END with 0-based START", path, line_no);
            ret = -1;
            break;
        }
        MD_GROW(l->r, l->cap, l->n + 1);
        region_req_t *r = &l->r[l->n++];
        memset(r, 0, sizeof *r);
        r->contig = md_strdup(f[0]);
        r->start = s;
        r->end = e;
        size_t n = strlen(path) + 32;
        r->source = md_malloc(n);
        snprintf(r->source, n, "%s:%lld", path, line_no);
    }
    if (ret == 0 && ferror(fp)) {
        md_error("%s: read error: %s", path, strerror(errno));
        ret = -1;
    }
    free(line);
    if (fp != stdin) fclose(fp);
    return ret;
}

static void free_regions(region_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->r[i].text);
        free(l->r[i].contig);
        free(l->r[i].source);
    }
    free(l->r);
}

/* Resolves a request to a contig and range; 0, or -1 after one error line. */
static int resolve(const md_genome_t *g, const region_req_t *r, int *ci, int64_t *s, int64_t *e)
{
    if (r->text) return md_genome_parse_region(g, r->text, ci, s, e);
    *ci = md_genome_find(g, r->contig);
    if (*ci < 0) {
        md_error("%s: no contig '%s' in the genome", r->source, r->contig);
        return -1;
    }
    int64_t len = md_genome_contig(g, *ci)->len;
    if (r->end <= r->start) {
        md_error("%s: empty BED interval %s:%lld-%lld (END must exceed START)", r->source, r->contig,
                 (long long)r->start, (long long)r->end);
        return -1;
    }
    if (r->end > len) {
        md_error("%s: BED interval %s:%lld-%lld goes beyond the end of '%s' (length %lld)", r->source, r->contig,
                 (long long)r->start, (long long)r->end, r->contig, (long long)len);
        return -1;
    }
    *s = r->start;
    *e = r->end;
    return 0;
}

static int write_record(FILE *fp, md_genome_t *g, const char *header, int ci, int64_t start, int64_t end, int64_t width,
                        int keep_case, char *buf)
{
    fprintf(fp, ">%s\n", header);
    int64_t col = 0;
    for (int64_t p = start; p < end;) {
        int64_t q = end - p > VIEW_CHUNK ? p + VIEW_CHUNK : end;
        if (md_genome_fetch(g, ci, p, q, buf, keep_case) < 0) return -1;
        for (int64_t i = 0; i < q - p;) {
            int64_t m = q - p - i;
            if (width > 0 && m > width - col) m = width - col;
            fwrite(buf + i, 1, (size_t)m, fp);
            i += m;
            col += m;
            if (width > 0 && col == width) {
                putc('\n', fp);
                col = 0;
            }
        }
        p = q;
    }
    if (col > 0) putc('\n', fp);
    return 0;
}

int cmd_view(int argc, char **argv)
{
    md_common_opts_t co;
    md_common_init(&co);
    static const struct option longopts[] = {
        MD_COMMON_LONGOPTS,
        {"region", required_argument, 0, 'r'},
        {"regions-file", required_argument, 0, 'R'},
        {"width", required_argument, 0, 'w'},
        {"uppercase", no_argument, 0, 'U'},
        {"lengths", no_argument, 0, OPT_LENGTHS},
        {0, 0, 0, 0}};
    region_list_t regions = {0};
    int64_t width = 60;
    int uppercase = 0, lengths = 0, ret = 1, c;
    int any_region_option = 0;
    md_genome_t *g = NULL;
    md_outfile_t *out = NULL;
    char *buf = NULL;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, MD_COMMON_SHORTOPTS "r:R:w:U", longopts, NULL)) >= 0) {
        switch (c) {
        case 'h': usage(stdout); ret = 0; goto done;
        case 'r': add_region_text(&regions, optarg); any_region_option = 1; continue;
        case 'R':
            any_region_option = 1;
            if (read_regions_file(optarg, &regions) < 0) goto done;
            continue;
        case 'w':
            if (md_parse_i64("-w/--width", optarg, 0, INT32_MAX, 0, &width) < 0) goto done;
            continue;
        case 'U': uppercase = 1; continue;
        case OPT_LENGTHS: lengths = 1; continue;
        }
        int r = md_common_opt(&co, c, optarg);
        if (r < 0) goto done;
        if (r == 0) { md_report_bad_option("view", c, argv[optind - 1]); goto done; }
    }
    if (optind >= argc) {
        md_error("no genome files given; see 'mambadna view -h'");
        goto done;
    }
    if (lengths && any_region_option) {
        md_error("--lengths prints every contig; it does not combine with -r or -R");
        goto done;
    }
    if (!(g = md_genome_open((const char *const *)argv + optind, argc - optind))) goto done;
    if (!(out = md_outfile_open(co.output))) goto done;
    int n = md_genome_n_contigs(g);
    if (lengths) {
        for (int i = 0; i < n; i++) {
            const md_contig_t *ct = md_genome_contig(g, i);
            fprintf(out->fp, "%s\t%lld\n", ct->name, (long long)ct->len);
        }
    } else {
        buf = md_malloc(VIEW_CHUNK);
        if (!any_region_option) {
            for (int i = 0; i < n; i++) {
                const md_contig_t *ct = md_genome_contig(g, i);
                if (write_record(out->fp, g, ct->name, i, 0, ct->len, width, !uppercase, buf) < 0) goto done;
            }
        }
        for (size_t k = 0; k < regions.n; k++) {
            int ci;
            int64_t s, e;
            if (resolve(g, &regions.r[k], &ci, &s, &e) < 0) goto done;
            const char *name = md_genome_contig(g, ci)->name;
            /* a bare contig keeps its name, as in samtools faidx */
            char *header;
            if (regions.r[k].text && !strcmp(regions.r[k].text, name)) {
                header = md_strdup(name);
            } else {
                size_t hn = strlen(name) + 48;
                header = md_malloc(hn);
                snprintf(header, hn, "%s:%lld-%lld", name, (long long)s + 1, (long long)e);
            }
            int r = write_record(out->fp, g, header, ci, s, e, width, !uppercase, buf);
            free(header);
            if (r < 0) goto done;
        }
    }
    md_outfile_t *o = out;
    out = NULL;
    if (md_outfile_commit(o) < 0) goto done;
    ret = 0;
done:
    md_outfile_abort(out);
    free(buf);
    free_regions(&regions);
    md_genome_close(g);
    return ret;
}
