/* Species-classification data and checkpoints:
 *   - held-out test sets (lmdata): with --test-fraction and --test-contigs,
 *     training windows never touch validation or test, validation and test
 *     windows lie in their own parts and the two never overlap;
 *   - species sampling: each example's tokens come from its label's genome
 *     (genomes of one base each make that checkable, reverse complements
 *     included), species are drawn uniformly, contigs by length, and the
 *     stream is a pure function of the seed; validation and test windows of
 *     a species come from its held-out parts only;
 *   - the species arguments and TSV;
 *   - checkpoints: an LM's backbone loads into a classifier whose head keeps
 *     its fresh initialisation; the classifier record round-trips; an LM is
 *     refused as a classifier. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/checkpoint.h"
#include "seq/fasta_write.h"
#include "seq/genome.h"
#include "seq/tokenizer.h"
#include "testutil.h"
#include "train/lmdata.h"
#include "train/species.h"
#include "util/log.h"
#include "util/rng.h"

/* A FASTA of contigs c0, c1, ... of the given lengths; base 0 = random. */
static char *write_genome(const char *name, const int64_t *lens, int n, char base)
{
    static char path[8][600];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 600, "%s/%s", md_test_tmpdir(), name);
    FILE *fp = fopen(p, "w");
    md_rng_t r;
    md_rng_seed(&r, 5);
    for (int c = 0; c < n; c++) {
        char *seq = malloc((size_t)lens[c]);
        for (int64_t i = 0; i < lens[c]; i++) seq[i] = base ? base : "ACGT"[md_rng_below(&r, 4)];
        char nm[16];
        snprintf(nm, sizeof nm, "c%d", c);
        md_fasta_write(fp, nm, NULL, seq, lens[c], 60);
        free(seq);
    }
    fclose(fp);
    return p;
}

static md_genome_t *load(const char *path)
{
    md_genome_t *g = md_genome_open(&path, 1);
    if (!g || md_genome_load(g) < 0) { fprintf(stderr, "genome %s\n", path); exit(2); }
    return g;
}

enum { W = 50, N = 2000 };

static int inside(const md_window_t *w, int c, int64_t s, int64_t e) { return w->contig == c && w->start >= s && w->end <= e; }

static void check_test_fraction(void)
{
    static const int64_t lens[2] = {4000, 2000};
    md_genome_t *g = load(write_genome("f.fa", lens, 2, 0));
    md_holdout_t h = {.kind = MD_HOLDOUT_FRACTION, .val_fraction = 0.1, .test_fraction = 0.15};
    md_lm_data_t *d = md_lm_data_new(g, &h, 9, 0.1, 1);
    CHECK(d && md_lm_data_prepare_train(d, W) == 0, "prepare train");
    uint64_t nv = 0, nt = 0;
    CHECK(md_lm_data_prepare_val(d, W, &nv) == 0 && md_lm_data_prepare_test(d, W, &nt) == 0, "prepare val, test");
    /* contig 0: train [0, 3000), val [3000, 3400), test [3400, 4000); contig 1: [0, 1500), [1500, 1700), [1700, 2000) */
    CHECK(nv == 8 + 4 && nt == 12 + 6, "%llu validation and %llu test tiles", (unsigned long long)nv,
          (unsigned long long)nt);
    uint8_t *tok = malloc(N * W);
    md_window_t *w = malloc(sizeof *w * N);
    uint64_t next = 0;
    md_lm_data_train_batch(d, W, &next, N, tok, w);
    int bad = 0, seen_end = 0;
    for (int i = 0; i < N; i++) {
        bad += !(inside(&w[i], 0, 0, 3000) || inside(&w[i], 1, 0, 1500));
        seen_end |= w[i].end == 3000;
    }
    CHECK(bad == 0, "%d training windows touch the held-out parts", bad);
    md_window_t v[12], t[18];
    md_lm_data_val_batch(d, 0, 12, tok, v);
    md_lm_data_test_batch(d, 0, 18, tok, t);
    for (int i = 0; i < 12; i++) bad += !(inside(&v[i], 0, 3000, 3400) || inside(&v[i], 1, 1500, 1700));
    for (int i = 0; i < 18; i++) bad += !(inside(&t[i], 0, 3400, 4000) || inside(&t[i], 1, 1700, 2000));
    CHECK(bad == 0, "%d validation or test windows outside their parts", bad);
    md_lm_data_free(d);
    /* no test set: asking for one is an error */
    md_holdout_t h2 = {.kind = MD_HOLDOUT_FRACTION, .val_fraction = 0.1};
    d = md_lm_data_new(g, &h2, 9, 0.1, 0);
    CHECK(md_lm_data_prepare_test(d, W, NULL) < 0, "no test set without a test fraction");
    md_lm_data_free(d);
    free(tok), free(w);
    md_genome_close(g);
}

static void check_test_contigs(void)
{
    static const int64_t lens[4] = {3000, 1000, 1200, 900};
    md_genome_t *g = load(write_genome("c.fa", lens, 4, 0));
    md_holdout_t h = {.kind = MD_HOLDOUT_CONTIGS, .val_contigs = "c1", .test_contigs = "c2,c3"};
    md_lm_data_t *d = md_lm_data_new(g, &h, 9, 0.1, 0);
    CHECK(d && md_lm_data_prepare_train(d, W) == 0, "prepare train");
    uint64_t nv = 0, nt = 0;
    CHECK(md_lm_data_prepare_val(d, W, &nv) == 0 && md_lm_data_prepare_test(d, W, &nt) == 0, "prepare val, test");
    CHECK(nv == 20 && nt == 24 + 18, "%llu validation, %llu test tiles", (unsigned long long)nv, (unsigned long long)nt);
    uint8_t *tok = malloc(N * W);
    md_window_t *w = malloc(sizeof *w * N);
    uint64_t next = 0;
    md_lm_data_train_batch(d, W, &next, N, tok, w);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += w[i].contig != 0;
    md_window_t t[42];
    md_lm_data_test_batch(d, 0, 42, tok, t);
    for (int i = 0; i < 42; i++) bad += t[i].contig != 2 && t[i].contig != 3;
    CHECK(bad == 0, "%d windows outside their contigs", bad);
    md_lm_data_free(d);
    md_holdout_t h2 = {.kind = MD_HOLDOUT_CONTIGS, .val_contigs = "c1", .test_contigs = "c1"};
    CHECK(md_lm_data_new(g, &h2, 9, 0.1, 0) == NULL, "a contig in both sets is refused");
    free(tok), free(w);
    md_genome_close(g);
}

/* Species of one base each: label 0 = A (rc T), 1 = C (rc G), 2 = two
 * contigs, A (1000 bp) and C (3000 bp), without reverse complements. */
static void check_sampling(void)
{
    static const int64_t one[1] = {2000}, a[1] = {1000}, c[1] = {3000};
    md_species_spec_t spec;
    memset(&spec, 0, sizeof spec);
    char arg[1400];
    snprintf(arg, sizeof arg, "aa=%s", write_genome("a.fa", one, 1, 'A'));
    CHECK(md_species_spec_add(&spec, arg) == 0, "species aa");
    snprintf(arg, sizeof arg, "cc=%s", write_genome("cc.fa", one, 1, 'C'));
    CHECK(md_species_spec_add(&spec, arg) == 0, "species cc");
    char *pa = write_genome("mixa.fa", a, 1, 'A');
    /* the second contig must not share the first's name: rename it in a copy */
    char *pc = write_genome("mixc.fa", c, 1, 'C');
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "sed -i 's/^>c0/>d0/' %s", pc);
    CHECK(system(cmd) == 0, "rename");
    snprintf(arg, sizeof arg, "mix=%s,%s", pa, pc);
    CHECK(md_species_spec_add(&spec, arg) == 0, "species mix, two files");
    CHECK(spec.n == 3 && spec.n_paths[2] == 2, "3 species, the third of 2 files");
    CHECK(md_species_spec_add(&spec, "noequals") < 0, "LABEL=GENOME needed");

    md_holdout_t h = {.kind = MD_HOLDOUT_FRACTION, .val_fraction = 0.1, .test_fraction = 0.1};
    md_species_data_t *d = md_species_data_new(&spec, &h, 4, 0.1, 1);
    CHECK(d != NULL && md_species_data_n(d) == 3, "species data");
    if (!d) return;
    CHECK(!strcmp(md_species_data_label(d, 2), "mix"), "labels in order");
    CHECK(md_species_data_prepare_train(d, W) == 0, "prepare train");
    uint8_t *tok = malloc(N * W);
    int32_t lab[N];
    md_species_data_train_batch(d, W, N, tok, lab);
    int count[3] = {0}, wrong = 0, rc_seen = 0, mix_a = 0;
    for (int i = 0; i < N; i++) {
        count[lab[i]]++;
        uint8_t t0 = tok[i * W];
        int uniform = 1;
        for (int j = 1; j < W; j++) uniform &= tok[i * W + j] == t0;
        if (lab[i] == 0) wrong += !uniform || (t0 != MD_TOK_A && t0 != MD_TOK_T), rc_seen += t0 == MD_TOK_T;
        if (lab[i] == 1) wrong += !uniform || (t0 != MD_TOK_C && t0 != MD_TOK_G);
        if (lab[i] == 2) wrong += !uniform, mix_a += t0 == MD_TOK_A || t0 == MD_TOK_T;
    }
    CHECK(wrong == 0, "%d examples not from their label's genome", wrong);
    for (int k = 0; k < 3; k++)
        CHECK(fabs(count[k] - N / 3.0) < 4 * sqrt(N * (1 / 3.0) * (2 / 3.0)), "species %d drawn %d times of %d", k,
              count[k], N);
    CHECK(rc_seen > N / 3 / 4 && rc_seen < N / 3 * 3 / 4, "reverse complements: %d of ~%d", rc_seen, N / 3);
    /* contig by length: starts in the training parts, 800 - 49 and 2400 - 49 */
    double want = (800.0 - W + 1) / (800.0 - W + 1 + 2400.0 - W + 1);
    CHECK(fabs(mix_a / (double)count[2] - want) < 0.06, "the short contig's share %.3f, want %.3f",
          mix_a / (double)count[2], want);
    /* validation and test windows of a species come from its genome */
    int64_t nper[3];
    CHECK(md_species_data_prepare_eval(d, MD_SPLIT_TEST, W, 1000, nper) == 0, "prepare test");
    CHECK(nper[0] == 4 && nper[2] == 2 + 6, "test windows per species %lld %lld", (long long)nper[0], (long long)nper[2]);
    md_species_data_eval_batch(d, MD_SPLIT_TEST, 1, 0, nper[1], tok);
    wrong = 0;
    for (int64_t i = 0; i < nper[1] * W; i++) wrong += tok[i] != MD_TOK_C;
    CHECK(wrong == 0, "test windows of species cc are all C (no reverse complement)");
    md_species_data_free(d);
    /* the same seed gives the same examples */
    md_species_data_t *d1 = md_species_data_new(&spec, &h, 4, 0.1, 1), *d2 = md_species_data_new(&spec, &h, 4, 0.1, 1);
    md_species_data_prepare_train(d1, W), md_species_data_prepare_train(d2, W);
    uint8_t *tok2 = malloc(N * W);
    int32_t lab2[N];
    md_species_data_train_batch(d1, W, 100, tok, lab);
    md_species_data_train_batch(d2, W, 60, tok2, lab2);
    md_species_data_train_batch(d2, W, 40, tok2 + 60 * W, lab2 + 60);
    CHECK(!memcmp(tok, tok2, 100 * W) && !memcmp(lab, lab2, sizeof(int32_t) * 100), "the stream does not depend on batching");
    md_species_data_free(d1), md_species_data_free(d2);
    /* a held-out contig every species must have */
    md_holdout_t hc = {.kind = MD_HOLDOUT_CONTIGS, .val_contigs = "c0", .test_contigs = "c1"};
    CHECK(md_species_data_new(&spec, &hc, 4, 0.1, 0) == NULL, "a species without the contig is refused");
    free(tok), free(tok2);
    md_species_spec_free(&spec);

    /* the TSV */
    char tsv[700];
    snprintf(tsv, sizeof tsv, "%s/sp.tsv", md_test_tmpdir());
    FILE *fp = fopen(tsv, "w");
    fprintf(fp, "# comment\nx\t%s\n\ny\t%s\nx\t%s\n", pa, pc, pc);
    fclose(fp);
    CHECK(md_species_spec_read_tsv(&spec, tsv) == 0 && spec.n == 2 && spec.n_paths[0] == 2, "TSV: 2 species");
    md_species_spec_free(&spec);
    fp = fopen(tsv, "w");
    fprintf(fp, "x\t%s\textra\n", pa);
    fclose(fp);
    CHECK(md_species_spec_read_tsv(&spec, tsv) < 0, "an extra column is refused");
    md_species_spec_free(&spec);
}

static void check_checkpoints(void)
{
    md_config_t cfg;
    md_config_init(&cfg, MD_ARCH_MAMBA, 8, 2);
    const md_backend_t *be = md_backend_cpu();
    md_model_t *lm = md_model_new(&cfg, be, MD_DTYPE_F32, 1, 8);
    md_model_init_weights(lm, 1);
    char lm_path[700], cls_path[700];
    snprintf(lm_path, sizeof lm_path, "%s/lm.safetensors", md_test_tmpdir());
    snprintf(cls_path, sizeof cls_path, "%s/cls.safetensors", md_test_tmpdir());
    CHECK(md_ckpt_save_weights(lm_path, lm, NULL) == 0, "save LM");
    md_config_t cc = cfg;
    cc.n_classes = 3;
    md_model_t *cls = md_model_new(&cc, be, MD_DTYPE_F32, 1, 8), *fresh = md_model_new(&cc, be, MD_DTYPE_F32, 1, 8);
    md_model_init_weights(cls, 2);
    md_model_init_weights(fresh, 2);
    md_ckpt_t *ck = md_ckpt_open(lm_path);
    md_cls_info_t info;
    CHECK(ck && md_ckpt_classifier(ck, &info) < 0, "an LM is not a classifier");
    CHECK(ck && md_ckpt_load_params(ck, cls) < 0, "an LM does not load whole into a classifier");
    CHECK(ck && md_ckpt_load_backbone(ck, cls) == 0, "the LM's backbone loads");
    md_ckpt_close(ck);
    const md_params_t *rl = md_model_params(lm), *rc = md_model_params(cls);
    const float *pl = md_model_param_buffer(lm).data, *pc = md_model_param_buffer(cls).data,
                *pf = md_model_param_buffer(fresh).data;
    int same = 1, head_fresh = 1;
    for (int64_t i = 0; i < rc->n; i++) {
        const md_param_t *p = &rc->p[i];
        if (p->role == MD_ROLE_CLS_W || p->role == MD_ROLE_CLS_B) {
            head_fresh &= !memcmp(pc + p->offset, pf + p->offset, (size_t)p->numel * 4);
            continue;
        }
        const md_param_t *q = &rl->p[md_params_find(rl, p->name)];
        same &= !memcmp(pc + p->offset, pl + q->offset, (size_t)p->numel * 4);
    }
    CHECK(same, "every backbone tensor equals the LM's");
    CHECK(head_fresh, "the head keeps its seeded initialisation");
    char *labels[3] = {"human", "chimp", "gorilla"};
    md_cls_info_t out = {3, labels, MD_POOL_LAST, 4096};
    CHECK(md_ckpt_save_classifier(cls_path, cls, "{}", &out) == 0, "save classifier");
    ck = md_ckpt_open(cls_path);
    CHECK(ck && ck->cfg.n_classes == 3 && md_ckpt_classifier(ck, &info) == 0, "classifier record");
    if (ck && info.labels)
        CHECK(info.n_classes == 3 && !strcmp(info.labels[2], "gorilla") && info.seq_len == 4096 &&
                  info.pooling == MD_POOL_LAST, "labels, length and pooling round trip");
    md_model_t *back = md_model_new(&cc, be, MD_DTYPE_F32, 1, 8);
    CHECK(ck && md_ckpt_load_params(ck, back) == 0 &&
              !memcmp(md_model_param_buffer(back).data, pc, (size_t)rc->numel * 4), "the classifier loads whole");
    CHECK(ck && md_ckpt_load_params(ck, lm) < 0, "a classifier does not load whole into an LM");
    md_cls_info_free(&info);
    md_ckpt_close(ck);
    md_model_free(back), md_model_free(lm), md_model_free(cls), md_model_free(fresh);
}

int main(void)
{
    md_verbose = 0;
    check_test_fraction();
    check_test_contigs();
    check_sampling();
    check_checkpoints();
    return md_test_done();
}
