/* mambadna classify: assigns reads to the species of a classifier made by
 * `mambadna finetune`.
 *
 * Reads stream in chunks (at most CHUNK_READS reads and about CHUNK_BASES
 * bases, a longer read making a chunk of its own), so memory stays
 * constant whatever the input's size. Each read becomes windows: one of its
 * own length when it is no longer than the window length W (the length the
 * classifier was trained at, or -L), else ceil(len / W) windows of W bases
 * (tiles from the start, the last one ending at the read's end), and the
 * reverse complements of these with --both-strands. A chunk's windows are
 * sorted by length and run in batches of equal length -- so no batch is
 * ever padded, and every window's prediction is exactly that of the window
 * alone -- the CPU spreading a batch's sequences over its threads (-t), a
 * GPU running it whole (-x).
 *
 * A read's class log-probabilities are the sum over its windows (each
 * window is independent evidence), renormalised; with --both-strands the
 * probabilities of the two strands are averaged. Rows come out in input
 * order. Reads with no sequence are skipped with a warning and counted in
 * the summary; the summary report follows Kraken2's (percent, reads,
 * label), with the mean confidence of each label's reads.
 *
 * On a GPU a second thread reads and tokenises the next chunk and writes
 * the rows of the one before while this one runs (the main thread, which
 * owns the device, runs the model), so that the GPU waits on none of them; on the CPU the model's threads have the cores and the
 * chunks run one after the other.
 *
 * For tests: MD_CLASSIFY_CHUNK_READS=N caps a chunk at N reads (so that
 * small inputs cross chunks), MD_CLASSIFY_OVERLAP=1 runs the GPU's
 * two-thread pipeline on the CPU too; neither changes a row.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "backend/ops.h"
#include "build_info.h"
#include "cmd/cmd.h"
#include "nn/checkpoint.h"
#include "nn/model.h"
#include "seq/reads.h"
#include "seq/tokenizer.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/outfile.h"
#include "util/provenance.h"
#include "util/xalloc.h"

enum { OPT_MIN_PROB = MD_OPT_FIRST_COMMAND_SPECIFIC, OPT_BOTH_STRANDS, OPT_SUMMARY, OPT_LABELS, OPT_PRECISION };

#define CHUNK_READS 16384
#define CHUNK_BASES (16 << 20)
#define MAX_WARNINGS 5

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: mambadna classify -i MODEL.safetensors [options] READS...\n\n"
            "Assigns each read to a species with a classifier from 'mambadna finetune'. READS are FASTA\n"
            "or FASTQ, plain, gzip or bgzip; - is standard input. Output: a TSV with a '#' header line,\n"
            "then read_id, length, label, prob (the label's probability) and one p_<label> column per\n"
            "label, in input order. Reads longer than the window length are split into windows whose\n"
            "log-probabilities are summed.\n\n"
            "  -i FILE               classifier checkpoint\n"
            "  -L INT                window length [the length the classifier was trained at]\n"
            "  -B INT                windows per batch [CPU: 64, fewer for windows above 32 kb (2^21\n"
            "                        bases); GPU: 4096, fewer for windows above 1 kb (2^22 bases)]\n"
            "      --min-prob FLOAT  below this probability a read is 'unclassified' [0]\n"
            "      --both-strands    average the forward and reverse-complement predictions\n"
            "      --summary FILE    a Kraken2-style report: reads and percent per label, mean\n"
            "                        confidence, unclassified and skipped reads\n"
            "      --labels STR      labels the model must have, comma-separated (an error otherwise)\n"
            "      --precision STR   fp32, or bf16 (GPU only): bf16 matrix products and block\n"
            "                        activations, fp32 scan state and head [GPU: bf16; CPU: fp32]\n"
            "  -o, --output FILE     per-read TSV, - for stdout [-]\n"
            "  -t, --threads INT     worker threads (0 = all cores) [0]\n"
            "  -x, --device STR      auto, cpu, cuda or cuda:N [auto]\n"
            "      --seed INT        recorded in the header (classification draws nothing) [1]\n"
            "  -q, --quiet           only warnings and errors on stderr\n"
            "  -h, --help            this help\n");
}

typedef struct {
    int64_t read;            /* index in the chunk */
    int64_t off, len;
    int rc;
} job_t;

typedef struct {
    md_model_t *m;
    md_cls_info_t info;
    int64_t W, batch;
    int both, C;
    double min_prob;
    /* chunk state, by chunk parity (classify_all): the chunk that runs, and
     * the one being prepared or whose rows are being written */
    job_t *jobs[2];          /* the windows, sorted by length */
    size_t jobs_cap[2], n_jobs[2];
    uint8_t *tokens[2];      /* every window's tokens, in the jobs' order */
    size_t tokens_cap[2];
    double *acc[2];          /* reads x strands x C summed log-probabilities */
    size_t acc_cap[2];
    float *logprobs;
    /* totals */
    int64_t n_reads, n_bases, n_skipped, n_unclassified, n_warned;
    int64_t *n_label;
    double *conf_label, conf_unclassified;
} classify_t;

static int job_cmp(const void *a, const void *b)
{
    const job_t *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    if (x->read != y->read) return x->read < y->read ? -1 : 1;
    if (x->rc != y->rc) return x->rc - y->rc;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* The chunk's windows into jobs[slot], sorted by length, and their tokens
 * into tokens[slot], so that a batch's are one block: off the GPU's
 * thread where the chunks overlap. */
static void prepare_chunk(classify_t *k, const md_read_batch_t *rb, int slot)
{
    size_t n = 0, bases = 0;
    for (int64_t i = 0; i < rb->n; i++) {
        int64_t len = rb->reads[i].len;
        if (len == 0) continue;
        int64_t nw = len <= k->W ? 1 : (len + k->W - 1) / k->W, wl = len <= k->W ? len : k->W;
        for (int s = 0; s <= k->both; s++) {
            for (int64_t w = 0; w < nw; w++) {
                MD_GROW(k->jobs[slot], k->jobs_cap[slot], n + 1);
                int64_t off = w * k->W + wl <= len ? w * k->W : len - wl;
                k->jobs[slot][n++] = (job_t){i, off, wl, s};
                bases += (size_t)wl;
            }
        }
    }
    job_t *jobs = k->jobs[slot];
    qsort(jobs, n, sizeof *jobs, job_cmp);
    MD_GROW(k->tokens[slot], k->tokens_cap[slot], bases ? bases : 1);
    uint8_t *t = k->tokens[slot];
    for (size_t j = 0; j < n; j++) {
        md_tokenize(rb->reads[jobs[j].read].seq + jobs[j].off, (size_t)jobs[j].len, t);
        if (jobs[j].rc) md_tok_revcomp(t, (size_t)jobs[j].len);
        t += jobs[j].len;
    }
    k->n_jobs[slot] = n;
}

/* The chunk prepare_chunk left in slot through the model, in batches of
 * equal length, summed per read into acc[slot]. */
static int run_chunk(classify_t *k, const md_read_batch_t *rb, int slot)
{
    const int C = k->C, S = k->both + 1;
    const job_t *jobs = k->jobs[slot];
    const size_t n = k->n_jobs[slot];
    MD_GROW(k->acc[slot], k->acc_cap[slot], (size_t)(rb->n * S * C));
    double *acc = k->acc[slot];
    memset(acc, 0, (size_t)(rb->n * S * C) * sizeof *acc);
    const uint8_t *t = k->tokens[slot];
    for (size_t j = 0; j < n;) {
        int64_t len = jobs[j].len, B = 0;
        while (j + B < n && B < k->batch && jobs[j + B].len == len) B++;
        md_class_result_t r;
        if (md_model_classify(k->m, t, NULL, B, len, 0, k->logprobs, &r) < 0) return -1;
        t += B * len;
        for (int64_t b = 0; b < B; b++) {
            const job_t *jb = &jobs[j + b];
            double *a = acc + (jb->read * S + jb->rc) * C;
            for (int c = 0; c < C; c++) a[c] += k->logprobs[b * C + c];
        }
        j += (size_t)B;
    }
    return 0;
}

/* A read's class probabilities from its summed window log-probabilities. */
static void read_probs(const classify_t *k, const double *acc, double *p)
{
    const int C = k->C, S = k->both + 1;
    for (int c = 0; c < C; c++) p[c] = 0;
    for (int s = 0; s < S; s++) {
        const double *a = acc + s * C;
        double mx = a[0], sum = 0;
        for (int c = 1; c < C; c++) mx = a[c] > mx ? a[c] : mx;
        for (int c = 0; c < C; c++) sum += exp(a[c] - mx);
        for (int c = 0; c < C; c++) p[c] += exp(a[c] - mx) / sum / S;
    }
}

/* The rows of a chunk that run_chunk summed into acc[slot] (the slot a
 * prepare_chunk may be filling meanwhile: it does not touch acc), and the
 * totals. */
static void write_rows(classify_t *k, const md_read_batch_t *rb, int slot, FILE *fp, const char *src)
{
    const int C = k->C, S = k->both + 1;
    double *p = md_malloc((size_t)C * sizeof *p);
    for (int64_t i = 0; i < rb->n; i++) {
        const md_read_t *r = &rb->reads[i];
        k->n_reads++;
        if (r->len == 0) {
            if (k->n_warned++ < MAX_WARNINGS)
                md_warn("'%s' record %lld ('%s') has no sequence; skipped%s", src, (long long)r->index + 1, r->name,
                        k->n_warned == MAX_WARNINGS ? " (further such warnings are not shown; the summary counts them)" : "");
            k->n_skipped++;
            continue;
        }
        k->n_bases += r->len;
        read_probs(k, k->acc[slot] + i * S * C, p);
        int best = 0;
        for (int c = 1; c < C; c++) best = p[c] > p[best] ? c : best;
        int unclassified = p[best] < k->min_prob;
        fprintf(fp, "%s\t%lld\t%s\t%.4f", r->name, (long long)r->len, unclassified ? "unclassified" : k->info.labels[best],
                p[best]);
        for (int c = 0; c < C; c++) fprintf(fp, "\t%.4f", p[c]);
        fputc('\n', fp);
        if (unclassified) {
            k->n_unclassified++;
            k->conf_unclassified += p[best];
        } else {
            k->n_label[best]++;
            k->conf_label[best] += p[best];
        }
    }
    free(p);
}

/* The inputs, read chunk by chunk across their files. */
typedef struct {
    char **files;
    int n_files, next_file;
    md_reads_t *rd;          /* the file being read, or NULL between files */
    int64_t chunk_reads;     /* reads a chunk at most */
} reader_t;

/* A test knob's value (the top of this file): def unless the variable
 * holds an integer in [lo, hi]. */
static int64_t env_knob(const char *name, int64_t lo, int64_t hi, int64_t def)
{
    const char *v = getenv(name);
    char *end;
    long long x = v ? strtoll(v, &end, 10) : 0;
    return v && *v && !*end && x >= lo && x <= hi ? (int64_t)x : def;
}

/* The next chunk into rb and a copy of its file's name into *path (the
 * file may be closed before the chunk's rows are written): the number of
 * reads, 0 after the last file, or -1 after one error line. */
static int64_t read_chunk(reader_t *r, md_read_batch_t *rb, char **path)
{
    for (;;) {
        if (!r->rd) {
            if (r->next_file == r->n_files) return 0;
            if (!(r->rd = md_reads_open(r->files[r->next_file++]))) return -1;
        }
        int64_t n = md_reads_next_batch(r->rd, rb, r->chunk_reads, CHUNK_BASES);
        if (n != 0) {
            free(*path);
            *path = md_strdup(md_reads_path(r->rd));
            return n;
        }
        md_reads_close(r->rd);
        r->rd = NULL;
    }
}

/* Classifies every chunk of the inputs and writes its rows in input order.
 * With overlap, chunk i runs on the calling thread while a second one
 * reads and prepares chunk i + 1 and writes chunk i - 1's rows: three read
 * buffers in turn, the rest by chunk parity. 0, or -1 after one error
 * line. */
static int classify_all(classify_t *k, reader_t *r, FILE *fp, int overlap)
{
    md_read_batch_t rb[3];
    char *path[3] = {NULL, NULL, NULL};
    for (int b = 0; b < 3; b++) md_read_batch_init(&rb[b]);
    int failed = 0;
    int64_t chunk = 0, next = 0;   /* chunk: the index of the chunk that runs */
    int64_t n = read_chunk(r, &rb[0], &path[0]);
    if (n > 0) prepare_chunk(k, &rb[0], 0);
    for (; n > 0 && !failed; chunk++) {
        const int cur = (int)(chunk % 3), ahead = (int)((chunk + 1) % 3), done = (int)((chunk + 2) % 3);
        /* thread 0, the one that set the device up, runs the model; with a
         * single thread it reads, prepares and writes first, then runs */
#pragma omp parallel num_threads(2) if (overlap)
        {
            int t = omp_get_thread_num();
            if (t == omp_get_num_threads() - 1) {
                next = read_chunk(r, &rb[ahead], &path[ahead]);
                if (next > 0) prepare_chunk(k, &rb[ahead], (int)((chunk + 1) % 2));
                if (chunk > 0) write_rows(k, &rb[done], (int)((chunk - 1) % 2), fp, path[done]);
            }
            if (t == 0) failed = run_chunk(k, &rb[cur], (int)(chunk % 2)) < 0;
        }
        n = next;
    }
    /* the last chunk's rows (chunk: one past it) */
    if (!failed && n == 0 && chunk > 0) {
        const int last = (int)((chunk - 1) % 3);
        write_rows(k, &rb[last], (int)((chunk - 1) % 2), fp, path[last]);
    }
    for (int b = 0; b < 3; b++) md_read_batch_free(&rb[b]), free(path[b]);
    return failed || n < 0 ? -1 : 0;
}

static void write_summary(const classify_t *k, md_outfile_t *o, const char *model)
{
    double tot = k->n_reads ? (double)k->n_reads : 1;
    fprintf(o->fp, "# mambadna classify summary: model %s; %lld reads, %lld classified, %lld unclassified, %lld skipped "
                   "(no sequence)\npercent\treads\tmean_prob\tlabel\n",
            model, (long long)k->n_reads, (long long)(k->n_reads - k->n_unclassified - k->n_skipped),
            (long long)k->n_unclassified, (long long)k->n_skipped);
    fprintf(o->fp, "%.2f\t%lld\t%.4f\tunclassified\n", 100 * k->n_unclassified / tot, (long long)k->n_unclassified,
            k->n_unclassified ? k->conf_unclassified / k->n_unclassified : 0.0);
    for (int c = 0; c < k->C; c++)
        fprintf(o->fp, "%.2f\t%lld\t%.4f\t%s\n", 100 * k->n_label[c] / tot, (long long)k->n_label[c],
                k->n_label[c] ? k->conf_label[c] / k->n_label[c] : 0.0, k->info.labels[c]);
    fprintf(o->fp, "%.2f\t%lld\tNA\tskipped\n", 100 * k->n_skipped / tot, (long long)k->n_skipped);
}

/* Every label of a comma list must be one of the model's. */
static int check_labels(const md_cls_info_t *info, const char *list, const char *model)
{
    char *copy = md_strdup(list), *p = copy, *name;
    int ret = 0;
    while (ret == 0 && (name = strsep(&p, ","))) {
        if (!*name) continue;
        int found = 0;
        for (int64_t c = 0; c < info->n_classes && !found; c++) found = !strcmp(info->labels[c], name);
        if (!found) {
            char have[512];
            int off = 0;
            for (int64_t c = 0; c < info->n_classes && off < (int)sizeof have - 2; c++)
                off += snprintf(have + off, sizeof have - off, "%s%s", c ? "," : "", info->labels[c]);
            md_error("option --labels: classifier '%s' has no label '%s' (it has %s)", model, name, have);
            ret = -1;
        }
    }
    free(copy);
    return ret;
}

int cmd_classify(int argc, char **argv)
{
    md_common_opts_t co;
    md_common_init(&co);
    const char *input = NULL, *summary = NULL, *labels = NULL;
    md_precision_t precision = MD_PRECISION_FP32;
    int have_precision = 0;
    classify_t k;
    memset(&k, 0, sizeof k);
    k.batch = 0;   /* 0: from the window length */
    static const struct option longopts[] = {
        MD_COMMON_LONGOPTS,
        {"min-prob", required_argument, 0, OPT_MIN_PROB},
        {"both-strands", no_argument, 0, OPT_BOTH_STRANDS},
        {"summary", required_argument, 0, OPT_SUMMARY},
        {"labels", required_argument, 0, OPT_LABELS},
        {"precision", required_argument, 0, OPT_PRECISION},
        {0, 0, 0, 0}};
    int c, r;
    opterr = 0;
    while ((c = getopt_long(argc, argv, MD_COMMON_SHORTOPTS "i:L:B:", longopts, NULL)) >= 0) {
        r = 0;
        switch (c) {
        case 'h': usage(stdout); return 0;
        case 'i': input = optarg; break;
        case 'L': r = md_parse_i64("-L", optarg, 1, 1 << 24, 1, &k.W); break;
        case 'B': r = md_parse_i64("-B", optarg, 1, 1 << 16, 0, &k.batch); break;
        case OPT_MIN_PROB: r = md_parse_double("--min-prob", optarg, 0, 1, &k.min_prob); break;
        case OPT_BOTH_STRANDS: k.both = 1; break;
        case OPT_SUMMARY: summary = optarg; break;
        case OPT_LABELS: labels = optarg; break;
        case OPT_PRECISION:
            r = md_precision_parse("--precision", optarg, &precision);
            have_precision = 1;
            break;
        default:
            r = md_common_opt(&co, c, optarg);
            if (r < 0) return 1;
            if (r == 0) { md_report_bad_option("classify", c, argv[optind - 1]); return 1; }
            r = 0;
        }
        if (r < 0) return 1;
    }
    if (!input) {
        md_error("no classifier given: -i MODEL.safetensors (made by 'mambadna finetune')");
        return 1;
    }
    if (optind >= argc) {
        md_error("no reads given; see 'mambadna classify -h'");
        return 1;
    }
    int ret = 1;
    md_ckpt_t *ck = NULL;
    md_outfile_t *out = NULL, *sum = NULL;
    reader_t rd = {argv + optind, argc - optind, 0, NULL, env_knob("MD_CLASSIFY_CHUNK_READS", 1, CHUNK_READS, CHUNK_READS)};
    if (!(ck = md_ckpt_open(input))) goto done;
    if (md_ckpt_classifier(ck, &k.info) < 0) goto done;
    if (labels && check_labels(&k.info, labels, input) < 0) goto done;
    k.C = (int)k.info.n_classes;
    if (!k.W) k.W = k.info.seq_len;
    md_cpu_set_threads(co.threads);
    md_device_t dev;
    if (md_device_resolve(co.device, &dev) < 0) goto done;
    if (!have_precision) precision = dev.kind != MD_DEVICE_CPU ? MD_PRECISION_BF16 : MD_PRECISION_FP32;
    const md_backend_t *be = md_backend_for_device(&dev, precision);
    if (!be || !(be = md_backend_for_arch(ck->cfg.arch, be, co.device))) goto done;
    int gpu = be->device != MD_DEVICE_CPU;
    if (!gpu) precision = MD_PRECISION_FP32;   /* -x auto fell back to the CPU */
    if (!k.batch) {
        /* the model's buffers scale with batch x window: about 2^21 bases
         * at most on the CPU, whose threads need only a few sequences each;
         * 2^22 on a GPU, whose one-pass scan wants thousands of sequences */
        int64_t cap = gpu ? 4096 : 64;
        k.batch = (INT64_C(1) << (gpu ? 22 : 21)) / k.W;
        k.batch = k.batch < 1 ? 1 : k.batch > cap ? cap : k.batch;
    }
    /* forward only: one shared activation set, two residual streams, no
     * scan states (model.h) */
    md_model_opts_t mo = {.inference = 1};
    if (!(k.m = md_model_new_ex(&ck->cfg, be, MD_DTYPE_F32, k.batch, k.W, &mo))) goto done;
    if (md_ckpt_load_params(ck, k.m) < 0) goto done;
    k.logprobs = md_malloc((size_t)(k.batch * k.C) * sizeof *k.logprobs);
    k.n_label = md_calloc((size_t)k.C, sizeof *k.n_label);
    k.conf_label = md_calloc((size_t)k.C, sizeof *k.conf_label);
    if (!(out = md_outfile_open(co.output))) goto done;
    if (summary && !(sum = md_outfile_open(summary))) goto done;
    md_provenance_comment(out->fp, "#");
    if (sum) md_provenance_comment(sum->fp, "#");
    fprintf(out->fp, "# mambadna %s classify; model %s (%s %lld x %lld, %lld labels, trained at L %lld); window %lld%s; "
                     "device %s, %s; seed %llu\nread_id\tlength\tlabel\tprob",
            MD_VERSION, input, md_arch_name(ck->cfg.arch), (long long)ck->cfg.d_model, (long long)ck->cfg.n_layer,
            (long long)k.C, (long long)k.info.seq_len, (long long)k.W, k.both ? ", both strands" : "", dev.name,
            md_precision_name(precision), (unsigned long long)co.seed);
    for (int i = 0; i < k.C; i++) fprintf(out->fp, "\tp_%s", k.info.labels[i]);
    fputc('\n', out->fp);
    double t0 = md_realtime();
    if (classify_all(&k, &rd, out->fp, gpu || env_knob("MD_CLASSIFY_OVERLAP", 0, 1, 0)) < 0) goto done;
    if (k.n_reads == 0) {
        md_error("no reads in %s", argc - optind > 1 ? "the inputs" : argv[optind]);
        goto done;
    }
    double dt = md_realtime() - t0;
    int failed = md_outfile_commit(out) < 0;
    out = NULL;
    if (sum) {
        write_summary(&k, sum, input);
        failed |= md_outfile_commit(sum) < 0;
        sum = NULL;
    }
    if (failed) goto done;
    md_info("%lld reads (%lld bases) in %.2f s: %.0f reads/s; %lld unclassified, %lld skipped", (long long)k.n_reads,
            (long long)k.n_bases, dt, (double)k.n_reads / (dt > 1e-9 ? dt : 1e-9), (long long)k.n_unclassified,
            (long long)k.n_skipped);
    ret = 0;
done:
    md_outfile_abort(out);
    md_outfile_abort(sum);
    md_reads_close(rd.rd);
    md_model_free(k.m);
    md_ckpt_close(ck);
    md_cls_info_free(&k.info);
    for (int b = 0; b < 2; b++) free(k.jobs[b]), free(k.tokens[b]), free(k.acc[b]);
    free(k.logprobs), free(k.n_label), free(k.conf_label);
    return ret;
}
