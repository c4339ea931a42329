/* mambadna simulate: great-ape-like genomes, or reads from any genome. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build_info.h"
#include "cmd/cmd.h"
#include "data/simulate.h"
#include "seq/fasta_write.h"
#include "seq/genome.h"
#include "seq/twobit.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/outfile.h"
#include "util/provenance.h"
#include "util/xalloc.h"

enum {
    OPT_CHROMS = MD_OPT_FIRST_COMMAND_SPECIFIC,
    OPT_DIV_SCALE,
    OPT_INDEL_RATIO,
    OPT_LINEAGE_REPEATS,
    OPT_SUBFAMILY_REPEATS,
    OPT_ISOCHORE_LEN,
    OPT_NO_GAPS,
    OPT_ANCESTOR,
    OPT_LABEL
};

static void usage_top(FILE *fp)
{
    fprintf(fp, "Usage: mambadna simulate <genomes|reads> [options]\n\n"
                "  genomes   a base genome and five great-ape-like species derived from it\n"
                "  reads     reads with errors from any genome, their truth in their names\n\n"
                "Run 'mambadna simulate genomes -h' or 'mambadna simulate reads -h' for options.\n");
}

static void usage_genomes(FILE *fp)
{
    fprintf(fp,
            "Usage: mambadna simulate genomes -o OUTDIR [options]\n\n"
            "Writes OUTDIR/{human,chimpanzee,bonobo,gorilla,orangutan}.{fa,2bit} and OUTDIR/summary.json.\n"
            "Each species descends from one simulated base genome (Markov background, GC isochores,\n"
            "CpG depletion and islands, soft-masked interspersed and tandem repeats) along the tree\n"
            "(((human,(chimpanzee,bonobo)),gorilla),orangutan), with pairwise divergences near\n"
            "human-chimpanzee 1.2%%, chimpanzee-bonobo 0.4%%, human-gorilla 1.6%%, human-orangutan 3.1%%.\n\n"
            "Options:\n"
            "  -o, --output DIR        output folder, created if absent (required)\n"
            "  -f, --format STR        fa or 2bit [fa]\n"
            "      --chroms INT        chromosomes per species [3]\n"
            "  -l, --length INT        bases per chromosome of the base genome, k/M suffixes [1M]\n"
            "      --div-scale FLOAT   multiply every divergence by this (0, 10] [1]\n"
            "      --indel-ratio FLOAT indel events per substitution [0.1]\n"
            "      --lineage-repeats FLOAT  new copies of the shared young repeat families per Mbp per\n"
            "                          1%% of branch length [10]\n"
            "      --subfamily-repeats FLOAT  new copies of each branch's own repeat subfamily per Mbp\n"
            "                          [64]: a window of L bases holds one of its species' own with\n"
            "                          P ~ 1 - exp(-64 L / 1e6): 6%% at 2^10, 23%% at 2^12, 65%% at\n"
            "                          2^14, 98.5%% at 2^16 (the species signal a classifier learns)\n"
            "      --isochore-len INT  median isochore length, k/M suffixes [300k]\n"
            "      --no-gaps           no N run at the chromosome starts\n"
            "      --ancestor          also write the base genome as OUTDIR/ancestor.{fa,2bit}\n"
            "  -t, --threads INT       worker threads (0 = all cores); the output does not depend on it [0]\n"
            "      --seed INT          random seed [1]\n"
            "  -q, --quiet             only warnings and errors on stderr\n"
            "      --json              print the summary JSON on stdout too\n"
            "  -h, --help              this help\n");
}

static void usage_reads(FILE *fp)
{
    fprintf(fp,
            "Usage: mambadna simulate reads GENOME... [options]\n\n"
            "Samples reads uniformly over the genomes' bases (FASTA, gzip/bgzip FASTA or 2bit; each\n"
            "file is one species' genome), both strands, clear of N, with substitution and indel\n"
            "errors. Each read is named LABEL|CONTIG|START-END|STRAND|INDEX: its species, its\n"
            "1-based source span on the forward strand, + or -, and its number.\n\n"
            "Options:\n"
            "  -n, --reads INT         number of reads, k/M suffixes [1000]\n"
            "  -l, --length SPEC       MEAN (fixed), MEAN,SD (normal) or MIN-MAX (uniform) [150]\n"
            "  -e, --error-rate FLOAT  errors per base: 70%% substitutions, 15%% insertions,\n"
            "                          15%% deletions [0]\n"
            "  -f, --format STR        fa or fq; default from -o's extension, else fq\n"
            "      --label STR         species label in read names [each file's name without extensions]\n"
            "  -o, --output FILE       output file, - for stdout [-]\n"
            "      --seed INT          random seed [1]\n"
            "  -q, --quiet             only warnings and errors on stderr\n"
            "  -h, --help              this help\n");
}

/* ---- simulate genomes ---- */

static int make_dir(const char *dir, int *created)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            md_error("output folder '%s' exists and is not a folder", dir);
            return -1;
        }
        return 0;
    }
    char *p = md_strdup(dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) break;
        *s = '/';
    }
    free(p);
    if (mkdir(dir, 0777) != 0) {
        md_error("cannot create output folder '%s': %s", dir, strerror(errno));
        return -1;
    }
    *created = 1;
    return 0;
}

static char *join_path(const char *dir, const char *name, const char *ext)
{
    size_t n = strlen(dir) + strlen(name) + strlen(ext) + 3;
    char *p = md_malloc(n);
    snprintf(p, n, "%s/%s%s", dir, name, ext);
    return p;
}

static json_t *summary_json(const md_sim_opts_t *so, const md_sim_result_t *res, const char *fmt)
{
    json_t *j = json_object();
    json_object_set_new(j, "version", json_string(MD_VERSION));
    json_object_set_new(j, "mambadna", md_provenance_json());
    json_object_set_new(j, "seed", json_integer((json_int_t)so->seed));
    json_object_set_new(j, "chroms", json_integer(so->n_chroms));
    json_object_set_new(j, "length", json_integer(so->chrom_len));
    json_object_set_new(j, "format", json_string(fmt));
    json_object_set_new(j, "div_scale", json_real(so->div_scale));
    json_object_set_new(j, "lineage_repeats", json_real(so->lineage_repeats));
    json_object_set_new(j, "subfamily_repeats", json_real(so->subfamily_repeats));
    char *nwk = NULL;
    size_t nwk_len = 0;
    FILE *mf = open_memstream(&nwk, &nwk_len);
    if (mf) {
        md_sim_write_newick(res, mf);
        fclose(mf);
        json_object_set_new(j, "tree", json_string(nwk));
        free(nwk);
    }
    json_t *sp = json_array();
    for (int s = 0; s < MD_SIM_N_SPECIES; s++) {
        int64_t bases = 0;
        for (int c = 0; c < res->species[s].n_chroms; c++) bases += res->species[s].chroms[c].len;
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(md_sim_species_names[s]));
        json_object_set_new(o, "bases", json_integer(bases));
        json_array_append_new(sp, o);
    }
    json_object_set_new(j, "species", sp);
    json_t *br = json_array();
    for (int v = 0; v < MD_SIM_N_NODES; v++) {
        const md_sim_branch_t *b = &res->branches[v];
        json_t *o = json_object();
        json_object_set_new(o, "node", json_string(b->name));
        json_object_set_new(o, "parent", b->parent >= 0 ? json_string(res->branches[b->parent].name) : json_null());
        json_object_set_new(o, "height", json_real(b->height));
        json_object_set_new(o, "length", json_real(b->length));
        json_object_set_new(o, "substitutions", json_integer(b->substitutions));
        json_object_set_new(o, "indels", json_integer(b->indels));
        json_object_set_new(o, "repeat_insertions", json_integer(b->repeat_insertions));
        json_object_set_new(o, "slippages", json_integer(b->slippages));
        json_object_set_new(o, "subfamily_insertions", json_integer(b->subfamily_insertions));
        json_object_set_new(o, "subfamily", v > 0 ? json_string(res->subfamily_consensus[v]) : json_null());
        json_array_append_new(br, o);
    }
    json_object_set_new(j, "branches", br);
    json_t *dv = json_array();
    for (int a = 0; a < MD_SIM_N_SPECIES; a++)
        for (int b = a + 1; b < MD_SIM_N_SPECIES; b++) {
            json_t *o = json_object();
            json_object_set_new(o, "a", json_string(md_sim_species_names[a]));
            json_object_set_new(o, "b", json_string(md_sim_species_names[b]));
            json_object_set_new(o, "target", json_real(res->target[a][b]));
            json_object_set_new(o, "realised", json_real(res->realised[a][b]));
            json_object_set_new(o, "sites", json_integer(res->sites[a][b]));
            json_object_set_new(o, "differences", json_integer(res->diffs[a][b]));
            json_array_append_new(dv, o);
        }
    json_object_set_new(j, "divergence", dv);
    json_t *bg = json_object();
    json_object_set_new(bg, "gc", json_real(res->base_gc));
    json_object_set_new(bg, "cpg_obs_exp", json_real(res->base_cpg_oe));
    json_object_set_new(bg, "masked", json_real(res->base_masked));
    json_object_set_new(bg, "isochores", json_integer(res->n_isochores));
    json_object_set_new(bg, "cpg_islands", json_integer(res->n_cpg_islands));
    json_object_set_new(bg, "tandem_loci", json_integer(res->n_tandem_loci));
    json_object_set_new(j, "base_genome", bg);
    return j;
}

/* A file written to a temporary name, renamed into place only once every
 * output is complete, so that a failure leaves no partial set behind. */
typedef struct {
    char *final, *staged;
} staged_t;

static int write_genome_file(const md_sim_genome_t *g, const char *path, int twobit)
{
    if (twobit) {
        const char **names = md_malloc((size_t)g->n_chroms * sizeof *names);
        const char **seqs = md_malloc((size_t)g->n_chroms * sizeof *seqs);
        int64_t *lens = md_malloc((size_t)g->n_chroms * sizeof *lens);
        for (int c = 0; c < g->n_chroms; c++) {
            names[c] = g->chroms[c].name;
            seqs[c] = g->chroms[c].seq;
            lens[c] = g->chroms[c].len;
        }
        int r = md_twobit_write(path, g->n_chroms, names, seqs, lens);
        free(names); free(seqs); free(lens);
        return r;
    }
    md_outfile_t *o = md_outfile_open(path);
    if (!o) return -1;
    for (int c = 0; c < g->n_chroms; c++)
        if (md_fasta_write(o->fp, g->chroms[c].name, NULL, g->chroms[c].seq, g->chroms[c].len, 60) < 0) {
            md_error("cannot write '%s': %s", path, strerror(errno));
            md_outfile_abort(o);
            return -1;
        }
    return md_outfile_commit(o);
}

static int write_json_file(json_t *j, const char *path)
{
    md_outfile_t *o = md_outfile_open(path);
    if (!o) return -1;
    if (json_dumpf(j, o->fp, JSON_INDENT(2)) != 0 || fputc('\n', o->fp) == EOF) {
        md_error("cannot write '%s': %s", path, strerror(errno));
        md_outfile_abort(o);
        return -1;
    }
    return md_outfile_commit(o);
}

static int write_outputs(const char *dir, const md_sim_opts_t *so, const md_sim_result_t *res, int twobit, int json)
{
    const char *ext = twobit ? ".2bit" : ".fa";
    enum { MAX_FILES = MD_SIM_N_SPECIES + 2 };
    staged_t f[MAX_FILES];
    int n = 0, ret = -1;
    json_t *j = summary_json(so, res, twobit ? "2bit" : "fa");
    for (int s = 0; s <= MD_SIM_N_SPECIES; s++) {
        const md_sim_genome_t *g = s < MD_SIM_N_SPECIES ? &res->species[s] : &res->ancestor;
        if (s == MD_SIM_N_SPECIES && !so->keep_ancestor) continue;
        const char *name = s < MD_SIM_N_SPECIES ? md_sim_species_names[s] : "ancestor";
        f[n].final = join_path(dir, name, ext);
        f[n].staged = join_path(dir, name, twobit ? ".2bit.partial" : ".fa.partial");
        n++;
        if (write_genome_file(g, f[n - 1].staged, twobit) < 0) goto out;
    }
    f[n].final = join_path(dir, "summary", ".json");
    f[n].staged = join_path(dir, "summary", ".json.partial");
    n++;
    if (write_json_file(j, f[n - 1].staged) < 0) goto out;
    for (int k = 0; k < n; k++)
        if (rename(f[k].staged, f[k].final) != 0) {
            md_error("cannot rename '%s' into place as '%s': %s", f[k].staged, f[k].final, strerror(errno));
            for (int t = 0; t < k; t++) unlink(f[t].final);
            goto out;
        }
    if (json) {
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
    }
    ret = 0;
out:
    for (int k = 0; k < n; k++) {
        if (ret < 0) unlink(f[k].staged);
        free(f[k].final);
        free(f[k].staged);
    }
    json_decref(j);
    return ret;
}

static int parse_format(const char *arg, const char *a, const char *b, int *is_b)
{
    if (!strcmp(arg, a) || (!strcmp(a, "fa") && !strcmp(arg, "fasta"))) { *is_b = 0; return 0; }
    if (!strcmp(arg, b) || (!strcmp(b, "fq") && !strcmp(arg, "fastq"))) { *is_b = 1; return 0; }
    md_error("option -f/--format: '%s' is not one of %s, %s", arg, a, b);
    return -1;
}

static int simulate_genomes(int argc, char **argv)
{
    md_common_opts_t co;
    md_common_init(&co);
    co.output = NULL;
    md_sim_opts_t so;
    md_sim_opts_init(&so);
    int twobit = 0;
    static const struct option longopts[] = {
        MD_COMMON_LONGOPTS,
        {"format", required_argument, 0, 'f'},
        {"chroms", required_argument, 0, OPT_CHROMS},
        {"length", required_argument, 0, 'l'},
        {"div-scale", required_argument, 0, OPT_DIV_SCALE},
        {"indel-ratio", required_argument, 0, OPT_INDEL_RATIO},
        {"lineage-repeats", required_argument, 0, OPT_LINEAGE_REPEATS},
        {"subfamily-repeats", required_argument, 0, OPT_SUBFAMILY_REPEATS},
        {"isochore-len", required_argument, 0, OPT_ISOCHORE_LEN},
        {"no-gaps", no_argument, 0, OPT_NO_GAPS},
        {"ancestor", no_argument, 0, OPT_ANCESTOR},
        {0, 0, 0, 0}};
    int c;
    int64_t v;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":" MD_COMMON_SHORTOPTS "f:l:", longopts, NULL)) >= 0) {
        switch (c) {
        case 'h': usage_genomes(stdout); return 0;
        case 'f': if (parse_format(optarg, "fa", "2bit", &twobit) < 0) return 1; break;
        case OPT_CHROMS:
            if (md_parse_i64("--chroms", optarg, 1, 1000, 0, &v) < 0) return 1;
            so.n_chroms = (int)v;
            break;
        case 'l':
            if (md_parse_i64("-l/--length", optarg, 1000, 1000000000, 1, &v) < 0) return 1;
            so.chrom_len = v;
            break;
        case OPT_DIV_SCALE:
            if (md_parse_double("--div-scale", optarg, 1e-6, 10, &so.div_scale) < 0) return 1;
            break;
        case OPT_INDEL_RATIO:
            if (md_parse_double("--indel-ratio", optarg, 0, 1, &so.indel_ratio) < 0) return 1;
            break;
        case OPT_LINEAGE_REPEATS:
            if (md_parse_double("--lineage-repeats", optarg, 0, 1000, &so.lineage_repeats) < 0) return 1;
            break;
        case OPT_SUBFAMILY_REPEATS:
            if (md_parse_double("--subfamily-repeats", optarg, 0, 1000, &so.subfamily_repeats) < 0) return 1;
            break;
        case OPT_ISOCHORE_LEN:
            if (md_parse_i64("--isochore-len", optarg, 1000, 1000000000, 1, &v) < 0) return 1;
            so.isochore_len = v;
            break;
        case OPT_NO_GAPS: so.gaps = 0; break;
        case OPT_ANCESTOR: so.keep_ancestor = 1; break;
        default: {
            int r = md_common_opt(&co, c, optarg);
            if (r < 0) return 1;
            if (r == 0) { md_report_bad_option("simulate genomes", c, argv[optind - 1]); return 1; }
        }
        }
    }
    if (optind < argc) {
        md_error("unexpected argument '%s'; see 'mambadna simulate genomes -h'", argv[optind]);
        return 1;
    }
    if (!co.output) {
        md_error("no output folder: give one with -o/--output DIR");
        return 1;
    }
    if (!strcmp(co.output, "-")) {
        md_error("option -o/--output: genomes go to a folder, not to standard output");
        return 1;
    }
    so.seed = co.seed;
    md_common_apply_threads(&co);
    int created = 0;
    if (make_dir(co.output, &created) < 0) return 1;
    double t0 = md_realtime();
    md_sim_result_t res;
    if (md_simulate_genomes(&so, &res) < 0) {
        if (created) rmdir(co.output);
        return 1;
    }
    double t_sim = md_realtime() - t0;
    md_info("base genome: %d x %" PRId64 " bp, GC %.1f%%, CpG obs/exp %.2f, %.1f%% soft-masked, %" PRId64
            " isochores, %" PRId64 " CpG islands, %" PRId64 " tandem repeats",
            so.n_chroms, so.chrom_len, 100 * res.base_gc, res.base_cpg_oe, 100 * res.base_masked, res.n_isochores,
            res.n_cpg_islands, res.n_tandem_loci);
    for (int a = 0; a < MD_SIM_N_SPECIES; a++)
        for (int b = a + 1; b < MD_SIM_N_SPECIES; b++)
            md_info("%s-%s divergence %.3f%% (target %.3f%%) over %" PRId64 " aligned sites", md_sim_species_names[a],
                    md_sim_species_names[b], 100 * res.realised[a][b], 100 * res.target[a][b], res.sites[a][b]);
    int r = write_outputs(co.output, &so, &res, twobit, co.json);
    if (r < 0 && created) rmdir(co.output);
    else if (r == 0)
        md_info("wrote 5 species to %s in %.2f s (simulation %.2f s)", co.output, md_realtime() - t0, t_sim);
    md_sim_result_free(&res);
    return r < 0 ? 1 : 0;
}

/* ---- simulate reads ---- */

static int simulate_reads(int argc, char **argv)
{
    md_common_opts_t co;
    md_common_init(&co);
    md_readsim_opts_t ro;
    md_readsim_opts_init(&ro);
    int fmt = -1;   /* 0 fa, 1 fq, -1 from the output's name */
    int64_t v;
    static const struct option longopts[] = {
        MD_COMMON_LONGOPTS,
        {"reads", required_argument, 0, 'n'},
        {"length", required_argument, 0, 'l'},
        {"error-rate", required_argument, 0, 'e'},
        {"format", required_argument, 0, 'f'},
        {"label", required_argument, 0, OPT_LABEL},
        {0, 0, 0, 0}};
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":" MD_COMMON_SHORTOPTS "n:l:e:f:", longopts, NULL)) >= 0) {
        switch (c) {
        case 'h': usage_reads(stdout); return 0;
        case 'n':
            if (md_parse_i64("-n/--reads", optarg, 1, INT64_C(1000000000000), 1, &v) < 0) return 1;
            ro.n_reads = v;
            break;
        case 'l': if (md_readsim_parse_length("-l/--length", optarg, &ro) < 0) return 1; break;
        case 'e': if (md_parse_double("-e/--error-rate", optarg, 0, 0.5, &ro.error_rate) < 0) return 1; break;
        case 'f': if (parse_format(optarg, "fa", "fq", &fmt) < 0) return 1; break;
        case OPT_LABEL:
            if (!*optarg || strpbrk(optarg, "| \t\n\r")) {
                md_error("option --label: '%s' must be non-empty, without '|' or whitespace", optarg);
                return 1;
            }
            ro.label = optarg;
            break;
        default: {
            int r = md_common_opt(&co, c, optarg);
            if (r < 0) return 1;
            if (r == 0) { md_report_bad_option("simulate reads", c, argv[optind - 1]); return 1; }
        }
        }
    }
    if (optind >= argc) {
        md_error("no genome given; see 'mambadna simulate reads -h'");
        return 1;
    }
    size_t on = strlen(co.output);
    if (on > 3 && (!strcmp(co.output + on - 3, ".gz") || !strcmp(co.output + on - 4, ".bgz"))) {
        md_error("output '%s': compressed output is not supported; write plain text and pipe it through gzip",
                 co.output);
        return 1;
    }
    if (fmt < 0) {
        const char *dot = strrchr(co.output, '.');
        fmt = dot && (!strcmp(dot, ".fa") || !strcmp(dot, ".fasta") || !strcmp(dot, ".fna")) ? 0 : 1;
    }
    ro.fastq = fmt;
    ro.seed = co.seed;
    /* Each file is a genome of its own: species files share contig names. */
    int n_genomes = argc - optind, r = -1;
    md_genome_t **g = md_calloc((size_t)n_genomes, sizeof *g);
    md_outfile_t *o = NULL;
    for (int k = 0; k < n_genomes; k++)
        if (!(g[k] = md_genome_open((const char *const *)(argv + optind + k), 1)) || md_genome_load(g[k]) < 0)
            goto out;
    if (!(o = md_outfile_open(co.output))) goto out;
    double t0 = md_realtime();
    r = md_simulate_reads(g, n_genomes, &ro, o->fp, co.output);
    if (r < 0) md_outfile_abort(o);
    else r = md_outfile_commit(o);
    if (r == 0) md_info("wrote %" PRId64 " reads to %s in %.2f s", ro.n_reads, co.output, md_realtime() - t0);
out:
    for (int k = 0; k < n_genomes; k++) md_genome_close(g[k]);
    free(g);
    return r < 0 ? 1 : 0;
}

int cmd_simulate(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage_top(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "genomes")) return simulate_genomes(argc - 1, argv + 1);
    if (!strcmp(argv[1], "reads")) return simulate_reads(argc - 1, argv + 1);
    md_error("unknown subcommand '%s': expected genomes or reads", argv[1]);
    return 1;
}
