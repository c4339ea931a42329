#include "train/trainer.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dist/dist.h"
#include "nn/checkpoint.h"
#include "train/evaluate.h"
#include "train/graphstep.h"
#include "train/metrics.h"
#include "train/progress.h"
#include "train/schedule.h"
#include "train/trainguard.h"
#include "util/log.h"
#include "util/outfile.h"
#include "util/xalloc.h"

struct md_trainer {
    md_model_t *m;
    md_lm_data_t *d;
    md_train_opts_t o;
    md_adamw_t opt;
    md_lr_schedule_t lr;
    md_seq_schedule_t seq;
    md_train_progress_t prog;
    uint64_t val_windows;          /* usable validation windows (0 = no validation) */
    double baseline_bpb;           /* Markov baseline on the validation windows, or NaN */
    uint8_t *win, *in, *tg;        /* host staging: batch x (L+1), batch x L, batch x L */
};

void md_train_opts_init(md_train_opts_t *o)
{
    memset(o, 0, sizeof *o);
    md_train_fixed_t *f = &o->f;
    f->seq_len = 1024;
    f->batch = 8;
    f->tokens_per_step = 0;          /* 0: one micro-batch (batch x L) */
    f->steps = 1000;
    f->lr = 2e-3;
    f->lr_min = -1;                  /* < 0: 0.1 x lr */
    f->warmup = 0.1;
    f->clip = 1.0;
    md_adamw_opts_default(&f->adamw);
    f->seq_warmup_start = 1024;
    f->seq_warmup_steps = 0;
    f->seed = 1;
    f->max_n_frac = 0.1;
    f->revcomp = 0;
    o->log_every = 10;
    o->val_every = 0;
    o->val_windows = 64;
    o->save_every = 0;
    o->markov_order = 2;
    o->max_bad_steps = MD_MAX_BAD_STEPS_DEFAULT;
}

/* ---- the state JSON ---- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
    return h;
}

/* Names and lengths of the contigs: enough to tell a different genome. */
static json_t *genome_json(const md_genome_t *g)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    int n = md_genome_n_contigs(g);
    for (int c = 0; c < n; c++) {
        const md_contig_t *ct = md_genome_contig(g, c);
        h = fnv1a(h, ct->name, strlen(ct->name) + 1);
        h = fnv1a(h, &ct->len, sizeof ct->len);
    }
    char hex[32];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    return json_pack("{s:i, s:I, s:s}", "n_contigs", n, "total_len", (json_int_t)md_genome_total_len(g), "hash", hex);
}

static const char *holdout_kind_name(md_holdout_kind_t k)
{
    static const char *names[] = {"none", "bed", "contigs", "fraction"};
    return (unsigned)k < 4 ? names[k] : "none";
}

static json_t *fixed_json(const md_train_fixed_t *f)
{
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)f->seed);
    const md_holdout_t *h = &f->holdout;
    json_t *ho = json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:f}", "kind", holdout_kind_name(h->kind), "bed",
                           h->bed_path, "train_split", h->train_split, "val_split", h->val_split, "val_contigs",
                           h->val_contigs, "val_fraction", h->val_fraction);
    json_t *o = json_object();
    json_object_set_new(o, "seq_len", json_integer(f->seq_len));
    json_object_set_new(o, "batch", json_integer(f->batch));
    json_object_set_new(o, "tokens_per_step", json_integer(f->tokens_per_step));
    json_object_set_new(o, "steps", json_integer(f->steps));
    json_object_set_new(o, "lr", json_real(f->lr));
    json_object_set_new(o, "lr_min", json_real(f->lr_min));
    json_object_set_new(o, "warmup", json_real(f->warmup));
    json_object_set_new(o, "clip", json_real(f->clip));
    json_object_set_new(o, "beta1", json_real(f->adamw.beta1));
    json_object_set_new(o, "beta2", json_real(f->adamw.beta2));
    json_object_set_new(o, "eps", json_real(f->adamw.eps));
    json_object_set_new(o, "weight_decay", json_real(f->adamw.weight_decay));
    json_object_set_new(o, "seq_warmup_start", json_integer(f->seq_warmup_start));
    json_object_set_new(o, "seq_warmup_steps", json_integer(f->seq_warmup_steps));
    json_object_set_new(o, "seed", json_string(seed));
    json_object_set_new(o, "max_n_frac", json_real(f->max_n_frac));
    json_object_set_new(o, "revcomp", json_boolean(f->revcomp));
    json_object_set_new(o, "holdout", ho);
    return o;
}

static char *dump(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    char *r = md_strdup(s);
    free(s);
    return r;
}

/* Parses the fixed options; strings are copied into one block *keep. */
static int fixed_from_json(json_t *o, md_train_fixed_t *f, char **keep, const char *what)
{
    memset(f, 0, sizeof *f);
    json_t *ho = json_object_get(o, "holdout");
    const char *seed = json_string_value(json_object_get(o, "seed"));
    const char *kind = ho ? json_string_value(json_object_get(ho, "kind")) : NULL;
    if (!json_is_object(o) || !ho || !seed || !kind || !json_is_integer(json_object_get(o, "seq_len"))) {
        md_error("training state '%s' lacks its options (not written by this version?)", what);
        return -1;
    }
#define GI(k) json_integer_value(json_object_get(o, k))
#define GR(k) json_number_value(json_object_get(o, k))
    f->seq_len = GI("seq_len");
    f->batch = GI("batch");
    f->tokens_per_step = GI("tokens_per_step");
    f->steps = GI("steps");
    f->lr = GR("lr");
    f->lr_min = GR("lr_min");
    f->warmup = GR("warmup");
    f->clip = GR("clip");
    f->adamw.beta1 = GR("beta1");
    f->adamw.beta2 = GR("beta2");
    f->adamw.eps = GR("eps");
    f->adamw.weight_decay = GR("weight_decay");
    f->seq_warmup_start = GI("seq_warmup_start");
    f->seq_warmup_steps = GI("seq_warmup_steps");
    f->seed = strtoull(seed, NULL, 10);
    f->max_n_frac = GR("max_n_frac");
    f->revcomp = json_is_true(json_object_get(o, "revcomp"));
#undef GI
#undef GR
    static const char *kinds[] = {"none", "bed", "contigs", "fraction"};
    for (int k = 0; k < 4; k++)
        if (!strcmp(kind, kinds[k])) f->holdout.kind = (md_holdout_kind_t)k;
    f->holdout.val_fraction = json_number_value(json_object_get(ho, "val_fraction"));
    const char *keys[4] = {"bed", "train_split", "val_split", "val_contigs"};
    const char **dst[4] = {&f->holdout.bed_path, &f->holdout.train_split, &f->holdout.val_split,
                           &f->holdout.val_contigs};
    size_t total = 1;
    for (int k = 0; k < 4; k++) {
        const char *s = json_string_value(json_object_get(ho, keys[k]));
        if (s) total += strlen(s) + 1;
    }
    char *block = md_malloc(total), *p = block;
    for (int k = 0; k < 4; k++) {
        const char *s = json_string_value(json_object_get(ho, keys[k]));
        if (!s) continue;
        strcpy(p, s);
        *dst[k] = p;
        p += strlen(s) + 1;
    }
    *keep = block;
    return 0;
}

static int progress_from_json(json_t *root, md_train_progress_t *p, const char *what)
{
    json_t *s = json_object_get(root, "step"), *t = json_object_get(root, "tokens"),
           *w = json_object_get(root, "next_window");
    if (!json_is_integer(s) || !json_is_integer(t) || !json_is_string(w) || json_integer_value(s) < 0) {
        md_error("training state '%s' lacks step, tokens or next_window", what);
        return -1;
    }
    p->step = json_integer_value(s);
    p->tokens = json_integer_value(t);
    p->next_window = strtoull(json_string_value(w), NULL, 10);
    return 0;
}

int md_train_read_saved(const char *weights_path, md_train_fixed_t *saved, md_train_progress_t *prog, char **keep)
{
    char *sp = NULL, *js = NULL;
    int ret = -1;
    json_t *root = NULL;
    *keep = NULL;
    if (md_train_read_state(weights_path, &js, &sp) < 0) goto out;
    if (!(root = md_train_parse_state(sp, js))) goto out;
    if (fixed_from_json(json_object_get(root, "options"), saved, keep, sp) < 0) goto out;
    if (progress_from_json(root, prog, sp) < 0) goto out;
    ret = 0;
out:
    if (ret < 0) { free(*keep); *keep = NULL; }
    json_decref(root);
    free(js);
    free(sp);
    return ret;
}

/* The shortest decimal that reads back as v. */
static const char *shortest(char *buf, size_t n, double v)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

static int streq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

int md_train_merge_saved(md_train_fixed_t *o, const md_train_fixed_t *s, uint32_t given, const char *ckpt)
{
    char a[600], b[600];
#define CHECK_I(bit, field, name) \
    if ((given >> (bit) & 1) && o->field != s->field) { \
        md_error("option %s %lld differs from the %lld that checkpoint '%s' was trained with; it cannot change on " \
                 "--resume", name, (long long)o->field, (long long)s->field, ckpt); \
        return -1; \
    }
#define CHECK_D(bit, field, name) \
    if ((given >> (bit) & 1) && o->field != s->field) { \
        md_error("option %s %s differs from the %s that checkpoint '%s' was trained with; it cannot change " \
                 "on --resume", name, shortest(a, sizeof a, o->field), shortest(b, sizeof b, s->field), ckpt); \
        return -1; \
    }
    CHECK_I(MD_TF_SEQ_LEN, seq_len, "-L");
    CHECK_I(MD_TF_BATCH, batch, "-B");
    CHECK_I(MD_TF_TOKENS_PER_STEP, tokens_per_step, "--tokens-per-step");
    CHECK_D(MD_TF_LR, lr, "--lr");
    CHECK_D(MD_TF_LR_MIN, lr_min, "--lr-min");
    CHECK_D(MD_TF_WARMUP, warmup, "--warmup");
    CHECK_D(MD_TF_CLIP, clip, "--clip");
    CHECK_D(MD_TF_WEIGHT_DECAY, adamw.weight_decay, "--weight-decay");
    CHECK_D(MD_TF_BETA2, adamw.beta2, "--beta2");
    CHECK_I(MD_TF_SEQ_WARMUP_START, seq_warmup_start, "--seq-warmup-start");
    CHECK_I(MD_TF_SEQ_WARMUP_STEPS, seq_warmup_steps, "--seq-warmup");
    CHECK_I(MD_TF_SEED, seed, "--seed");
    CHECK_D(MD_TF_MAX_N, max_n_frac, "--max-n");
    CHECK_I(MD_TF_REVCOMP, revcomp, "--revcomp");
#undef CHECK_I
#undef CHECK_D
    if (given >> MD_TF_HOLDOUT & 1) {
        const md_holdout_t *x = &o->holdout, *y = &s->holdout;
        if (x->kind != y->kind || !streq(x->bed_path, y->bed_path) || !streq(x->train_split, y->train_split) ||
            !streq(x->val_split, y->val_split) || !streq(x->val_contigs, y->val_contigs) ||
            x->val_fraction != y->val_fraction) {
            md_holdout_describe(x, a, sizeof a);
            md_holdout_describe(y, b, sizeof b);
            md_error("held-out data '%s' differs from the '%s' that checkpoint '%s' was trained with", a, b, ckpt);
            return -1;
        }
    }
    int64_t steps = o->steps;
    int steps_given = given >> MD_TF_STEPS & 1;
    *o = *s;
    if (steps_given && steps != s->steps) {
        md_warn("--steps %lld differs from the checkpoint's %lld: the learning-rate schedule now ends at step %lld",
                (long long)steps, (long long)s->steps, (long long)steps);
        o->steps = steps;
    }
    return 0;
}

/* ---- the trainer ---- */

void md_trainer_free(md_trainer_t *t)
{
    if (!t) return;
    md_adamw_free(&t->opt);
    free(t->win);
    free(t->in);
    free(t->tg);
    free(t);
}

const md_train_progress_t *md_trainer_progress(const md_trainer_t *t) { return &t->prog; }

md_trainer_t *md_trainer_new(md_model_t *m, md_lm_data_t *d, const md_train_opts_t *o)
{
    const md_train_fixed_t *f = &o->f;
    if (f->seq_len < 1 || f->batch < 1 || f->steps < 1) {
        md_error("-L, -B and --steps must be positive");
        return NULL;
    }
    if (f->seq_len > md_model_max_len(m)) {
        md_error("the model was planned for sequences of %lld, shorter than -L %lld", (long long)md_model_max_len(m),
                 (long long)f->seq_len);
        return NULL;
    }
    const int ranks = o->comm ? md_comm_size(o->comm) : 1;
    if (f->batch < ranks) {
        md_error("-B %lld is smaller than the %d ranks: each rank takes its share of every micro-batch of B "
                 "sequences, and needs at least one", (long long)f->batch, ranks);
        return NULL;
    }
    const int64_t share = md_dist_share(f->batch, 0, ranks);   /* rank 0's is the largest */
    if (share > md_model_max_batch(m)) {
        md_error("the model was planned for batches of %lld, smaller than this rank's share %lld of -B %lld",
                 (long long)md_model_max_batch(m), (long long)share, (long long)f->batch);
        return NULL;
    }
    md_trainer_t *t = md_calloc(1, sizeof *t);
    t->m = m;
    t->d = d;
    t->o = *o;
    t->baseline_bpb = NAN;
    md_train_fixed_t *tf = &t->o.f;
    if (tf->tokens_per_step <= 0) tf->tokens_per_step = tf->batch * tf->seq_len;
    if (tf->lr_min < 0) tf->lr_min = 0.1 * tf->lr;
    t->lr = (md_lr_schedule_t){tf->lr, tf->lr_min, (int64_t)llround(tf->warmup * (double)tf->steps), tf->steps};
    t->seq = (md_seq_schedule_t){tf->seq_len, tf->seq_warmup_steps > 0 ? tf->seq_warmup_start : tf->seq_len,
                                 tf->seq_warmup_steps};
    if (md_train_adamw_init(&t->opt, m, o->comm, &tf->adamw) < 0) goto fail;
    /* Say plainly when no window fits at all (the samplers would word it in
     * window lengths, L + 1). */
    const md_genome_t *g = md_lm_data_genome(d);
    int64_t longest = 0;
    int li = 0;
    for (int c = 0; c < md_genome_n_contigs(g); c++)
        if (md_genome_contig(g, c)->len > longest) longest = md_genome_contig(g, (li = c))->len;
    if (longest < tf->seq_len + 1) {
        md_error("the genome is too short for -L %lld: its longest contig ('%s') has %lld bp, and a training window "
                 "needs L + 1 = %lld", (long long)tf->seq_len, md_genome_contig(g, li)->name, (long long)longest,
                 (long long)tf->seq_len + 1);
        goto fail;
    }
    int64_t n_total = 0;
    for (int c = 0; c < md_genome_n_contigs(g); c++)
        n_total += md_genome_count_n(g, c, 0, md_genome_contig(g, c)->len);
    if (n_total == md_genome_total_len(g)) {
        md_error("the genome is all N (%lld bp, no A, C, G or T): there is nothing to learn from", (long long)n_total);
        goto fail;
    }
    /* Every stage's sampler now, so that a genome too short for any of them
     * fails before the first step. */
    int n_stages = md_seq_n_stages(&t->seq);
    for (int s = 0; s < n_stages; s++) {
        int64_t len = md_seq_len_at(&t->seq, (int64_t)s * (tf->seq_warmup_steps > 0 ? tf->seq_warmup_steps : 1));
        if (md_lm_data_prepare_train(d, len + 1) < 0) goto fail;
    }
    if (o->val_every > 0) {
        if (tf->holdout.kind == MD_HOLDOUT_NONE) {
            md_error("option --val-every needs held-out data: --val-fraction, --val-contigs or --bed with "
                     "--train-split/--val-split");
            goto fail;
        }
        uint64_t avail;
        if (md_lm_data_prepare_val(d, tf->seq_len + 1, &avail) < 0) goto fail;
        t->val_windows = (uint64_t)o->val_windows < avail ? (uint64_t)o->val_windows : avail;
        if (t->val_windows < (uint64_t)o->val_windows)
            md_warn("only %llu validation windows of %lld bp exist; using them all", (unsigned long long)avail,
                    (long long)tf->seq_len + 1);
    }
    /* Make sure the checkpoint can be written before spending time: a
     * temporary beside it, removed at once (the checkpoint is not touched). */
    struct stat st;
    if (o->out_path && stat(o->out_path, &st) == 0 && S_ISDIR(st.st_mode)) {
        md_error("option -o: '%s' is a folder; give the checkpoint's file name", o->out_path);
        goto fail;
    }
    if (o->out_path) {
        md_outfile_t *probe = md_outfile_open(o->out_path);
        if (!probe) goto fail;
        md_outfile_abort(probe);
    }
    size_t B = (size_t)tf->batch, L = (size_t)tf->seq_len;
    t->win = md_malloc(B * (L + 1));
    t->in = md_malloc(B * L);
    t->tg = md_malloc(B * L);
    return t;
fail:
    md_trainer_free(t);
    return NULL;
}

static char *training_json(const md_trainer_t *t)
{
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)t->o.f.seed);
    json_t *o = json_pack("{s:I, s:I, s:I, s:s}", "step", (json_int_t)t->prog.step, "tokens",
                          (json_int_t)t->prog.tokens, "seq_len", (json_int_t)t->o.f.seq_len, "seed", seed);
    char *s = dump(o);
    json_decref(o);
    return s;
}

typedef struct {
    md_trainer_t *t;
    const char *training_json;
} lm_weights_t;

static int save_lm_weights(void *ud, const char *path)
{
    lm_weights_t *w = ud;
    return md_ckpt_save_weights(path, w->t->m, w->training_json);
}

int md_trainer_save(md_trainer_t *t, const char *path)
{
    char wnext[32];
    snprintf(wnext, sizeof wnext, "%llu", (unsigned long long)t->prog.next_window);
    json_t *root = json_pack("{s:I, s:I, s:s, s:o, s:o}", "step", (json_int_t)t->prog.step, "tokens",
                             (json_int_t)t->prog.tokens, "next_window", wnext, "options", fixed_json(&t->o.f),
                             "genome", genome_json(md_lm_data_genome(t->d)));
    char *state = dump(root);
    json_decref(root);
    lm_weights_t w = {t, training_json(t)};
    int ret = md_train_save_pair(path, &t->opt, state, save_lm_weights, &w);
    free((char *)w.training_json);
    free(state);
    return ret;
}

static int fixed_equal(const md_train_fixed_t *a, const md_train_fixed_t *b, const char *ckpt)
{
    md_train_fixed_t x = *a;
    /* Everything but --steps must match; merge reports the first difference. */
    return md_train_merge_saved(&x, b, (1u << MD_TF_N) - 1, ckpt);
}

/* Reads the state file sp into m, v, *state and *step. 0, or -1 after one
 * error line. */
int md_trainer_resume(md_trainer_t *t, const char *weights_path)
{
    char *state = NULL, *sp = NULL, *keep = NULL;
    json_t *root = NULL;
    md_ckpt_t *ck = NULL;
    int ret = -1;
    if (md_train_load_pair(weights_path, &t->opt, &state, &sp) < 0) goto out;
    md_train_progress_t prog;
    if (!(root = md_train_parse_state(sp, state)) || progress_from_json(root, &prog, sp) < 0) goto out;
    md_train_fixed_t saved;
    if (fixed_from_json(json_object_get(root, "options"), &saved, &keep, sp) < 0) goto out;
    if (fixed_equal(&t->o.f, &saved, weights_path) < 0) goto out;
    json_t *gj = genome_json(md_lm_data_genome(t->d));
    int same_genome = json_equal(gj, json_object_get(root, "genome"));
    json_decref(gj);
    if (!same_genome) {
        md_error("checkpoint '%s' was trained on another genome (its contig names or lengths differ)", weights_path);
        goto out;
    }
    if (prog.step > t->o.f.steps) {
        md_error("checkpoint '%s' is at step %lld, beyond --steps %lld", weights_path, (long long)prog.step,
                 (long long)t->o.f.steps);
        goto out;
    }
    if (!(ck = md_ckpt_open(weights_path)) || md_ckpt_load_params(ck, t->m) < 0) goto out;
    t->prog = prog;
    md_info("resumed from '%s' at step %lld (%lld tokens seen)", weights_path, (long long)prog.step,
            (long long)prog.tokens);
    ret = 0;
out:
    json_decref(root);
    free(keep);
    free(state);
    free(sp);
    md_ckpt_close(ck);
    return ret;
}

static int validate(md_trainer_t *t, md_progress_t *pg, double *val_loss)
{
    md_eval_result_t r;
    double t0 = md_realtime();
    const int64_t batch = md_model_max_batch(t->m) < t->o.f.batch ? md_model_max_batch(t->m) : t->o.f.batch;
    if (md_eval_model(t->m, t->d, t->o.f.seq_len, (int64_t)t->val_windows, batch, &r) < 0) return -1;
    *val_loss = r.loss;
    md_progress_clear(pg);
    char base[96] = "";
    if (!isnan(t->baseline_bpb))
        snprintf(base, sizeof base, " (order-%d Markov %.4f)", t->o.markov_order, t->baseline_bpb);
    md_info("step %lld validation: loss %.4f, perplexity %.4f, %.4f bits per base%s on %lld windows (%.1f s)",
            (long long)t->prog.step, r.loss, r.ppl, r.bits_per_base, base, (long long)r.n_windows,
            md_realtime() - t0);
    return 0;
}

/* One micro-batch of next-base prediction for md_train_step: this rank's
 * share of the micro-batch's B windows. */
typedef struct { md_trainer_t *t; int64_t len, W; int rank, ranks; } lm_batch_t;

/* The next windows of this rank's share into in and tg; returns how many. */
static int64_t lm_draw(lm_batch_t *lb, uint8_t *in, uint8_t *tg)
{
    md_trainer_t *t = lb->t;
    const int64_t len = lb->len, W = lb->W;
    const int64_t B = md_lm_data_train_batch_part(t->d, W, &t->prog.next_window, t->o.f.batch, lb->rank, lb->ranks,
                                                  t->win, NULL);
    for (int64_t b = 0; b < B; b++) {
        memcpy(in + b * len, t->win + b * W, (size_t)len);
        memcpy(tg + b * len, t->win + b * W + 1, (size_t)len);
    }
    return B;
}

/* md_graph_step_run's micro-batch (one rank: every window of it) */
static int lm_micro_tokens(void *ud, int64_t micro, uint8_t *in, uint8_t *tg)
{
    lm_draw(ud, in, tg);
    return 0;
}

static int lm_micro_batch(void *ud, int64_t micro, double *loss_sum, int64_t *count)
{
    lm_batch_t *lb = ud;
    md_trainer_t *t = lb->t;
    const int64_t B = lm_draw(lb, t->in, t->tg), len = lb->len;
    md_loss_t l;
    if (md_model_forward_backward(t->m, t->in, t->tg, B, len, 1, &l) < 0) return -1;
    *loss_sum = l.loss_sum;
    *count = l.n_targets;
    return 0;
}

int md_trainer_run(md_trainer_t *t, md_train_step_fn fn, void *ud)
{
    const md_train_fixed_t *f = &t->o.f;
    const md_train_opts_t *o = &t->o;
    const int64_t B = f->batch;
    md_model_t *m = t->m;
    md_metrics_t *mt = NULL;
    int ret = -1;
    /* Data parallel: every rank trains a replica from rank 0's weights;
     * rank 0 alone validates, logs, writes metrics and saves (the moments
     * and the data position are the same on every rank). */
    md_comm_t *comm = o->comm;
    const int rank = comm ? md_comm_rank(comm) : 0, ranks = comm ? md_comm_size(comm) : 1, lead = rank == 0;
    if (comm) {
        md_tensor_t pbuf = md_model_param_buffer(m);
        if (md_comm_broadcast(comm, pbuf.data, md_model_params(m)->numel, pbuf.dtype, 0) < 0) return -1;
    }
    md_step_kind_t kind;
    if (md_step_kind_choose(o->cuda_graph, m, ranks,
                            md_adamw_sharded(&t->opt) ? "ZeRO-1's sharded optimizer is not captured" : NULL,
                            &kind) < 0)
        return -1;
    md_graph_step_t *gs = kind == MD_STEP_HOST ? NULL : md_graph_step_new(m, kind);
    if (kind != MD_STEP_HOST && !gs) return -1;
    if (lead && o->val_every > 0 && o->markov_order >= 0) {
        md_eval_result_t r;
        double t0 = md_realtime();
        md_eval_markov(t->d, o->markov_order, f->seq_len, (int64_t)t->val_windows, &r);
        t->baseline_bpb = r.bits_per_base;
        md_info("order-%d Markov baseline (fitted on the training part): %.4f bits per base on the validation "
                "windows (%.1f s)", o->markov_order, r.bits_per_base, md_realtime() - t0);
    }
    if (lead && o->metrics_path) {
        char title[256];
        const md_config_t *c = md_model_config(m);
        snprintf(title, sizeof title, "mambadna pretrain: %s %lld x %lld, L %lld", md_arch_name(c->arch),
                 (long long)c->d_model, (long long)c->n_layer, (long long)f->seq_len);
        if (!(mt = md_metrics_open(o->metrics_path, t->prog.step > 0 ? t->prog.step : -1, title))) {
            md_graph_step_free(gs);
            return -1;
        }
        if (!isnan(t->baseline_bpb)) {
            char lab[64];
            snprintf(lab, sizeof lab, "order-%d Markov", o->markov_order);
            md_metrics_set_baseline(mt, t->baseline_bpb, lab);
        }
    }
    md_progress_t pg;
    md_progress_init(&pg, t->prog.step);
    if (!lead) pg.active = 0;
    md_step_guard_t guard = {o->max_bad_steps > 0 ? o->max_bad_steps : 1, 0, 0};
    md_train_catch_signals();
    double iv_loss = 0, iv_t0 = md_realtime();
    int64_t iv_targets = 0, iv_tokens = 0, last_len = -1;
    const int64_t end = o->stop_at > 0 && o->stop_at < f->steps ? o->stop_at : f->steps;
    while (t->prog.step < end) {
        const int64_t step = t->prog.step;
        const int64_t len = md_seq_len_at(&t->seq, step), W = len + 1;
        const int64_t accum = md_accum_steps(f->tokens_per_step, B, len);
        if (len != last_len && md_seq_n_stages(&t->seq) > 1) {
            md_progress_clear(&pg);
            md_info("step %lld: sequence length %lld, %lld x %lld windows per step (%lld micro-batch%s)",
                    (long long)step, (long long)len, (long long)(B * accum), (long long)W, (long long)accum,
                    accum == 1 ? "" : "es");
            last_len = len;
        }
        lm_batch_t lb = {t, len, W, rank, ranks};
        md_step_result_t sr;
        const double lr = md_lr_at(&t->lr, step);
        const int stepped =
            gs ? md_graph_step_run(gs, &t->opt, B, len, accum, lm_micro_tokens, &lb, lr, f->clip, step, &pg, &guard,
                                   &sr)
               : md_train_step(m, comm, &t->opt, accum, lm_micro_batch, &lb, lr, f->clip, step, &pg, &guard, &sr);
        if (stepped < 0) goto out;
        const double loss = sr.loss, gnorm = sr.grad_norm;
        t->prog.step++;
        t->prog.tokens += B * len * accum;
        if (stepped == 0) {   /* a skipped step's loss stays out of the interval's mean */
            iv_loss += sr.loss_sum;
            iv_targets += sr.count;
        }
        iv_tokens += B * len * accum;
        if (fn) fn(ud, t->prog.step, loss, gnorm, lr);

        const int64_t s = t->prog.step;
        const int last = s == end;
        const double now = md_realtime();
        const double tps = (double)iv_tokens / (now - iv_t0 > 1e-9 ? now - iv_t0 : 1e-9);
        if (lead) md_progress_update(&pg, s, f->steps, loss, tps);
        int do_val = lead && o->val_every > 0 && (s % o->val_every == 0 || last);
        int do_log = lead && o->log_every > 0 && (s % o->log_every == 0 || last);
        double val_loss = NAN;
        if (do_val && validate(t, &pg, &val_loss) < 0) goto out;
        if (do_log || do_val) {
            double iv_mean = iv_targets ? iv_loss / (double)iv_targets : NAN;   /* NaN: every step skipped */
            if (!pg.active) {
                char eta[32];
                md_format_duration(eta, sizeof eta, (double)(f->steps - s) * (now - pg.t_start) /
                                                        (double)(s - pg.step0 > 0 ? s - pg.step0 : 1));
                md_info("step %lld/%lld: loss %.4f (%.4f bits/base), lr %.3g, grad norm %.3g, %.0f tokens/s, ETA %s",
                        (long long)s, (long long)f->steps, iv_mean, iv_mean / M_LN2, lr, gnorm, tps, eta);
            }
            if (mt) {
                md_metrics_row_t row = {s, t->prog.tokens, len, lr, iv_mean, gnorm, tps, val_loss};
                if (md_metrics_append(mt, &row) < 0) goto out;
            }
            iv_loss = 0;
            iv_targets = 0;
            iv_tokens = 0;
            iv_t0 = md_realtime();
        }
        /* The ranks stop together: a rank that went on alone would wait in
         * its next collective for ever. */
        double stop_votes = md_train_stop_signal() != 0;
        if (comm && md_comm_allreduce_host(comm, &stop_votes, 1) < 0) goto out;
        const int stop = stop_votes > 0;
        /* No periodic save inside a streak of skipped steps: should the
         * streak stop the run, the last checkpoint is the last good step's. */
        const int periodic = o->save_every > 0 && s % o->save_every == 0 && guard.streak == 0;
        if (o->out_path && (periodic || last || stop) &&   /* (ZeRO-1: every rank's moments for rank 0's save) */
            md_adamw_gather_host(&t->opt, comm, md_model_grad_buffer(m).data, lead) < 0)
            goto out;
        if (lead && o->out_path && (periodic || last || stop)) {
            double t0 = md_realtime();
            int saved = md_trainer_save(t, o->out_path);
            md_adamw_drop_host(&t->opt);
            if (saved < 0) goto out;
            md_progress_clear(&pg);
            md_info("step %lld: saved '%s'", (long long)s, o->out_path);
            iv_t0 += md_realtime() - t0;   /* keep the save out of tokens/s */
        }
        if (stop) {
            md_progress_clear(&pg);
            const int sig = md_train_stop_signal();
            const char *why = sig ? md_train_signal_name(sig) : "another rank's signal";
            if (o->out_path) md_info("stopped by %s after step %lld; continue with --resume %s", why, (long long)s, o->out_path);
            else md_info("stopped by %s after step %lld (no -o: nothing saved)", why, (long long)s);
            ret = MD_TRAIN_INTERRUPTED;
            goto out;
        }
    }
    md_progress_clear(&pg);
    ret = 0;
out:
    md_train_release_signals();
    md_metrics_close(mt);
    md_graph_step_free(gs);
    return ret;
}
