/* Exact resume: N steps + save + resume + M steps must give bit-identical
 * losses, gradient norms and final weights to N + M steps straight, on a
 * tiny Mamba and a random genome written here. Also: a checkpoint round
 * trip of the weights, and a resume that changes a fixed option refused. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ops.h"
#include "nn/checkpoint.h"
#include "nn/config.h"
#include "nn/model.h"
#include "seq/fasta_write.h"
#include "seq/genome.h"
#include "testutil.h"
#include "train/lmdata.h"
#include "train/trainer.h"
#include "util/log.h"
#include "util/rng.h"

enum { TOTAL = 12, FIRST = 5, MAXREC = 64 };

typedef struct {
    int n;
    int64_t step[MAXREC];
    double loss[MAXREC], gnorm[MAXREC], lr[MAXREC];
} record_t;

static void on_step(void *ud, int64_t step, double loss, double grad_norm, double lr)
{
    record_t *r = ud;
    if (r->n >= MAXREC) return;
    r->step[r->n] = step;
    r->loss[r->n] = loss;
    r->gnorm[r->n] = grad_norm;
    r->lr[r->n++] = lr;
}

static char genome_path[512];

/* Two contigs of random DNA with an N run, as FASTA. */
static void write_genome(void)
{
    snprintf(genome_path, sizeof genome_path, "%s/g.fa", md_test_tmpdir());
    FILE *fp = fopen(genome_path, "w");
    md_rng_t r;
    md_rng_seed(&r, 12345);
    static char seq[20000];
    for (int c = 0; c < 2; c++) {
        int64_t n = c ? 9000 : 20000;
        for (int64_t i = 0; i < n; i++) seq[i] = "ACGT"[md_rng_below(&r, 4)];
        if (c == 0) memset(seq + 5000, 'N', 300);
        char name[16];
        snprintf(name, sizeof name, "ctg%d", c);
        md_fasta_write(fp, name, NULL, seq, n, 70);
    }
    fclose(fp);
}

static void train_opts(md_train_opts_t *o, const char *out)
{
    md_train_opts_init(o);
    o->f.seq_len = 64;
    o->f.batch = 2;
    o->f.tokens_per_step = 2 * 2 * 64;   /* two micro-batches: accumulation is part of the state */
    o->f.steps = TOTAL;
    o->f.lr = 3e-3;
    o->f.warmup = 0.25;
    o->f.seed = 99;
    o->f.revcomp = 1;
    o->f.holdout.kind = MD_HOLDOUT_FRACTION;
    o->f.holdout.val_fraction = 0.2;
    o->log_every = 1000;
    o->val_every = 4;
    o->val_windows = 3;
    o->markov_order = -1;
    o->out_path = out;
}

typedef struct {
    md_genome_t *g;
    md_lm_data_t *d;
    md_model_t *m;
    md_trainer_t *t;
} run_t;

static int run_open(run_t *r, const md_train_opts_t *o)
{
    memset(r, 0, sizeof *r);
    const char *paths[1] = {genome_path};
    if (!(r->g = md_genome_open(paths, 1)) || md_genome_load(r->g) < 0) return -1;
    if (!(r->d = md_lm_data_new(r->g, &o->f.holdout, o->f.seed, o->f.max_n_frac, o->f.revcomp))) return -1;
    md_config_t cfg;
    md_config_init(&cfg, MD_ARCH_MAMBA, 16, 2);
    if (!(r->m = md_model_new(&cfg, md_backend_cpu(), MD_DTYPE_F32, o->f.batch, o->f.seq_len))) return -1;
    if (!(r->t = md_trainer_new(r->m, r->d, o))) return -1;
    return 0;
}

static void run_close(run_t *r)
{
    md_trainer_free(r->t);
    md_model_free(r->m);
    md_lm_data_free(r->d);
    md_genome_close(r->g);
}

static float *params_of(md_model_t *m)
{
    int64_t n = md_model_params(m)->numel;
    float *p = malloc((size_t)n * sizeof *p);
    md_model_read_params(m, p);
    return p;
}

int main(void)
{
    md_verbose = 0;
    write_genome();
    char straight_ckpt[600], part_ckpt[600];
    snprintf(straight_ckpt, sizeof straight_ckpt, "%s/straight.safetensors", md_test_tmpdir());
    snprintf(part_ckpt, sizeof part_ckpt, "%s/part.safetensors", md_test_tmpdir());

    /* N + M straight. */
    md_train_opts_t o;
    train_opts(&o, straight_ckpt);
    run_t a;
    record_t ra = {0};
    CHECK(run_open(&a, &o) == 0, "straight run setup");
    md_model_init_weights(a.m, o.f.seed);
    CHECK(md_trainer_run(a.t, on_step, &ra) == 0, "straight run");
    CHECK(ra.n == TOTAL, "%d steps recorded", ra.n);
    float *pa = params_of(a.m);
    int64_t numel = md_model_params(a.m)->numel;

    /* The saved weights read back bit for bit. */
    md_ckpt_t *ck = md_ckpt_open(straight_ckpt);
    CHECK(ck != NULL, "open saved checkpoint");
    if (ck) {
        md_model_t *m2 = md_model_new(&ck->cfg, md_backend_cpu(), MD_DTYPE_F32, 1, 8);
        CHECK(m2 && md_ckpt_load_params(ck, m2) == 0, "load saved checkpoint");
        float *p2 = params_of(m2);
        CHECK(memcmp(pa, p2, (size_t)numel * 4) == 0, "checkpoint weights differ from the model's");
        CHECK(md_st_find(ck->st, "lm_head.weight") != NULL, "lm_head.weight written");
        free(p2);
        md_model_free(m2);
        md_ckpt_close(ck);
    }

    /* N steps, saved. */
    train_opts(&o, part_ckpt);
    o.stop_at = FIRST;
    run_t b;
    record_t rb = {0};
    CHECK(run_open(&b, &o) == 0, "first part setup");
    md_model_init_weights(b.m, o.f.seed);
    CHECK(md_trainer_run(b.t, on_step, &rb) == 0, "first part");
    run_close(&b);

    /* Resume in a fresh process state, with one thread (results must not
     * depend on the thread count), and M more steps. */
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    train_opts(&o, part_ckpt);
    run_t c;
    record_t rc = {0};
    CHECK(run_open(&c, &o) == 0, "resume setup");
    md_model_init_weights(c.m, 4242);   /* must be overwritten by the checkpoint */
    CHECK(md_trainer_resume(c.t, part_ckpt) == 0, "resume");
    CHECK(md_trainer_progress(c.t)->step == FIRST, "resumed at step %lld", (long long)md_trainer_progress(c.t)->step);
    CHECK(md_trainer_run(c.t, on_step, &rc) == 0, "second part");
    omp_set_num_threads(threads);

    CHECK(rb.n == FIRST && rc.n == TOTAL - FIRST, "%d + %d steps", rb.n, rc.n);
    int same = rb.n == FIRST && rc.n == TOTAL - FIRST;
    for (int i = 0; same && i < TOTAL; i++) {
        const record_t *r = i < FIRST ? &rb : &rc;
        int k = i < FIRST ? i : i - FIRST;
        if (r->step[k] != ra.step[i] || r->loss[k] != ra.loss[i] || r->gnorm[k] != ra.gnorm[i] ||
            r->lr[k] != ra.lr[i]) {
            CHECK(0, "step %lld: loss %.17g vs %.17g straight, grad norm %.17g vs %.17g", (long long)ra.step[i],
                  r->loss[k], ra.loss[i], r->gnorm[k], ra.gnorm[i]);
            same = 0;
        }
    }
    CHECK(same, "resumed losses differ from the straight run");
    float *pc = params_of(c.m);
    CHECK(memcmp(pa, pc, (size_t)numel * 4) == 0, "final weights differ from the straight run");
    /* Training moved the weights at all (the comparison is not vacuous). */
    CHECK(ra.loss[TOTAL - 1] < ra.loss[0], "loss did not fall: %g -> %g", ra.loss[0], ra.loss[TOTAL - 1]);
    run_close(&c);

    /* A fixed option that changed is refused on resume. */
    train_opts(&o, part_ckpt);
    o.f.lr = 1e-3;
    run_t d;
    CHECK(run_open(&d, &o) == 0, "changed-option setup");
    CHECK(md_trainer_resume(d.t, part_ckpt) < 0, "resume with another --lr accepted");
    run_close(&d);

    free(pa);
    free(pc);
    run_close(&a);
    if (!md_test_failures) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", md_test_tmpdir());
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", md_test_tmpdir());
    }
    return md_test_done();
}
