#include "train/clstrain.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/checkpoint.h"
#include "train/clsreport.h"
#include "train/graphstep.h"
#include "train/progress.h"
#include "train/schedule.h"
#include "train/trainer.h"
#include "train/trainguard.h"
#include "util/log.h"
#include "util/outfile.h"
#include "util/xalloc.h"

typedef struct {
    md_model_t *m;
    md_species_data_t *d;
    int64_t len, batch, micro;
    uint8_t *tokens;
    int32_t *labels;
    int64_t n_correct, n_seen;    /* this step's training accuracy */
    int rank, ranks;              /* data parallel: this rank's part of each micro-batch */
    uint8_t *stage;               /* a whole micro-batch of all ranks (ranks > 1) */
    int32_t *stage_labels;
} train_ctx_t;

/* Micro-batches per step: each is micro x ranks examples of the step's
 * batch (the last one fewer), of which every rank runs its share. */
static int64_t n_micro(const train_ctx_t *c)
{
    const int64_t M = c->micro * c->ranks;
    return (c->batch + M - 1) / M;
}

/* Micro-batch a: examples [a M, a M + n) of the step's batch (M = micro x
 * ranks), drawn whole on every rank so that the species streams advance
 * alike; this rank keeps those of index rank, rank + ranks, ... into
 * c->tokens, c->labels. Returns their number. */
static int64_t draw_micro_batch(train_ctx_t *c, int64_t a)
{
    const int64_t M = c->micro * c->ranks, n = c->batch - a * M < M ? c->batch - a * M : M;
    if (c->ranks == 1) {
        md_species_data_train_batch(c->d, c->len, n, c->tokens, c->labels);
        return n;
    }
    md_species_data_train_batch(c->d, c->len, n, c->stage, c->stage_labels);
    int64_t k = 0;
    for (int64_t b = c->rank; b < n; b += c->ranks, k++) {
        memcpy(c->tokens + k * c->len, c->stage + b * c->len, (size_t)c->len);
        c->labels[k] = c->stage_labels[b];
    }
    return k;
}

static int train_micro_batch(void *ud, int64_t a, double *loss_sum, int64_t *count)
{
    train_ctx_t *c = ud;
    int64_t n = draw_micro_batch(c, a);
    *loss_sum = 0, *count = 0;
    if (n == 0) return 0;   /* a last micro-batch smaller than the ranks: nothing here */
    md_class_result_t r;
    if (md_model_classify(c->m, c->tokens, c->labels, n, c->len, 1, NULL, &r) < 0) return -1;
    *loss_sum = r.loss_sum;
    *count = r.n_labelled;
    c->n_correct += r.n_correct;
    c->n_seen += r.n_labelled;
    return 0;
}

/* Every species' windows of a held-out split into the confusion matrix. */
static int evaluate(md_model_t *m, md_species_data_t *d, int split, int64_t len, const int64_t *n_per,
                    md_confusion_t *cm, uint8_t *tokens, int32_t *labels, float *logprobs)
{
    const int64_t micro = md_model_max_batch(m);
    const int C = md_species_data_n(d);
    md_confusion_clear(cm);
    md_class_result_t r;
    for (int s = 0; s < C; s++) {
        for (int64_t first = 0; first < n_per[s]; first += micro) {
            int64_t n = n_per[s] - first < micro ? n_per[s] - first : micro;
            md_species_data_eval_batch(d, split, s, first, n, tokens);
            for (int64_t b = 0; b < n; b++) labels[b] = s;
            if (md_model_classify(m, tokens, labels, n, len, 0, logprobs, &r) < 0) return -1;
            for (int64_t b = 0; b < n; b++) md_confusion_add(cm, s, logprobs + b * C);
        }
    }
    return 0;
}

int64_t md_cls_warmup_epochs(int64_t seq_len, int64_t start)
{
    md_seq_schedule_t s = {seq_len, start, 1};
    return md_seq_n_stages(&s) - 1;
}

static char *report_path(const char *prefix, const char *what)
{
    size_t n = strlen(prefix) + strlen(what) + 2;
    char *p = md_malloc(n);
    snprintf(p, n, "%s.%s", prefix, what);
    return p;
}

/* Where a run stands: enough, with the weights and moments, to continue
 * it bit-exactly (the training state file's JSON). */
typedef struct {
    int64_t step, epoch, epoch_steps;   /* epoch under way and its steps done */
    double lr, ep_loss;
    int64_t ep_correct, ep_n;
    json_t *options;                    /* what a resumed run must share */
    json_t *rows;                       /* the finished epochs' report rows */
} cls_state_t;

static json_t *options_json(const md_model_t *m, md_species_data_t *d, const md_cls_train_opts_t *o)
{
    const md_config_t *cfg = md_model_config(m);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    json_t *species = json_array();
    for (int k = 0; k < md_species_data_n(d); k++) json_array_append_new(species, json_string(md_species_data_label(d, k)));
    /* keyed by the option that sets each, for the message when one differs */
    return json_pack("{s:o, s:s, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
                     "s:f, s:s, s:I, s:I, s:s, s:f, s:b}",
                     "species", species, "-m/--model", md_arch_name(cfg->arch), "--d-model", (json_int_t)cfg->d_model,
                     "--n-layer", (json_int_t)cfg->n_layer, "--pooling", md_pooling_name(cfg->cls_pooling), "-L",
                     (json_int_t)o->seq_len, "-B", (json_int_t)o->batch, "--micro-batch", (json_int_t)md_model_max_batch(m),
                     "--epochs", (json_int_t)o->epochs, "--steps-per-epoch", (json_int_t)o->steps_per_epoch,
                     "--seq-warmup-start", (json_int_t)o->seq_warmup_start, "--lr", o->lr, "--lr-min", o->lr_min,
                     "--warmup", o->warmup, "--clip", o->clip, "--weight-decay", o->adamw.weight_decay, "beta1",
                     o->adamw.beta1, "beta2", o->adamw.beta2, "eps", o->adamw.eps, "--seed", seed, "--val-windows",
                     (json_int_t)o->val_windows, "--test-windows", (json_int_t)o->test_windows, "held-out data",
                     o->holdout_desc ? o->holdout_desc : "", "--max-n", o->max_n_frac, "--revcomp", o->revcomp);
}

/* JSON has no NaN (an epoch of skipped steps only has no training loss):
 * null stands for it. */
static json_t *num_json(double v) { return isnan(v) ? json_null() : json_real(v); }
static double num_value(const json_t *j) { return json_is_number(j) ? json_number_value(j) : NAN; }

static json_t *row_json(const md_epoch_row_t *r, int C)
{
    json_t *cls = json_array();
    for (int k = 0; k < C; k++) json_array_append_new(cls, num_json(r->val_class_acc[k]));
    return json_pack("[I, I, f, o, o, o, o, o]", (json_int_t)r->epoch, (json_int_t)r->step, r->lr,
                     num_json(r->train_loss), num_json(r->train_acc), num_json(r->val_loss), num_json(r->val_acc), cls);
}

typedef struct {
    md_model_t *m;
    const char *training_json;
    md_cls_info_t *info;
} cls_weights_t;

static int save_cls_weights(void *ud, const char *path)
{
    cls_weights_t *w = ud;
    return md_ckpt_save_classifier(path, w->m, w->training_json, w->info);
}

static int save(md_model_t *m, md_species_data_t *d, const md_cls_train_opts_t *o, const md_adamw_t *opt,
                const cls_state_t *st, int64_t epoch, const md_cls_train_result_t *res)
{
    const int C = md_species_data_n(d);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    json_t *t = json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:f}", "task", "species classification", "step",
                          (json_int_t)st->step, "epoch", (json_int_t)epoch, "seq_len", (json_int_t)o->seq_len, "batch",
                          (json_int_t)o->batch, "seed", seed, "lr", o->lr);
    /* (none yet when a signal stops the first epoch) */
    if (!isnan(res->val_acc)) json_object_set_new(t, "val_accuracy", json_real(res->val_acc));
    if (o->source) json_object_set_new(t, "pretrained", json_string(o->source));
    if (!isnan(res->test_acc)) json_object_set_new(t, "test_accuracy", json_real(res->test_acc));
    char *tj = json_dumps(t, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(t);
    json_t *sj = json_pack("{s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:O, s:O}", "step", (json_int_t)st->step, "epoch",
                           (json_int_t)st->epoch, "epoch_steps", (json_int_t)st->epoch_steps, "lr", st->lr,
                           "epoch_loss", st->ep_loss, "epoch_correct", (json_int_t)st->ep_correct, "epoch_n",
                           (json_int_t)st->ep_n, "options", st->options, "rows", st->rows);
    json_object_set_new(sj, "val_accuracy", num_json(res->val_acc));
    json_object_set_new(sj, "val_loss", num_json(res->val_loss));
    char *state = json_dumps(sj, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(sj);
    md_cls_info_t info = {C, md_malloc((size_t)C * sizeof(char *)), md_model_config(m)->cls_pooling, o->seq_len};
    for (int k = 0; k < C; k++) info.labels[k] = (char *)md_species_data_label(d, k);
    cls_weights_t w = {m, tj, &info};
    int ret = md_train_save_pair(o->out_path, opt, state, save_cls_weights, &w);
    free(info.labels);
    free(state);
    free(tj);
    return ret;
}

/* Every rank's part of a save: under ZeRO-1 the moments gathered from all
 * ranks (a collective), then rank 0's save. */
static int gathered_save(md_model_t *m, md_species_data_t *d, const md_cls_train_opts_t *o, md_adamw_t *opt,
                         md_comm_t *comm, const cls_state_t *st, int64_t epoch, const md_cls_train_result_t *res)
{
    const int lead = !comm || md_comm_rank(comm) == 0;
    if (md_adamw_gather_host(opt, comm, md_model_grad_buffer(m).data, lead) < 0) return -1;
    int ret = lead ? save(m, d, o, opt, st, epoch, res) : 0;
    md_adamw_drop_host(opt);
    return ret;
}

/* The state JSON text of a finetune run, or NULL after one error line. */
static json_t *finetune_state(const char *text, const char *sp)
{
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (!json_is_object(json_object_get(root, "options")) || !json_is_array(json_object_get(root, "rows")) ||
        !json_is_integer(json_object_get(root, "epoch"))) {
        md_error("training state '%s' is not a finetune run's (no options, epoch or report rows)", sp);
        json_decref(root);
        return NULL;
    }
    return root;
}

/* Takes up the run saved at o->resume: moments, weights, where it stands
 * (*st, *res) and its report rows (into elog); the species' training
 * streams are advanced past the steps done. 0, or -1 after one error line. */
static int resume(md_model_t *m, md_adamw_t *opt, const md_cls_train_opts_t *o, cls_state_t *st,
                  md_cls_train_result_t *res, md_epoch_log_t *elog, train_ctx_t *tc, const md_seq_schedule_t *seq,
                  int C)
{
    char *text = NULL, *sp = NULL;
    json_t *root = NULL;
    md_ckpt_t *ck = NULL;
    int ret = -1;
    /* The options first: a model of another size must be named as such,
     * not as moments of the wrong number. */
    if (md_train_read_state(o->resume, &text, &sp) < 0 || !(root = finetune_state(text, sp))) goto out;
    const char *key;
    json_t *was;
    json_object_foreach(json_object_get(root, "options"), key, was) {
        json_t *now = json_object_get(st->options, key);
        if (now && json_equal(now, was)) continue;
        char *a = now ? json_dumps(now, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17)) : md_strdup("none");
        char *b = json_dumps(was, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
        md_error("%s %s on --resume, but checkpoint '%s' was trained with %s", key, a, o->resume, b);
        free(a), free(b);
        goto out;
    }
    json_decref(root);
    free(text), free(sp);
    root = NULL, text = sp = NULL;
    if (md_train_load_pair(o->resume, opt, &text, &sp) < 0 || !(root = finetune_state(text, sp))) goto out;
    json_t *rows = json_object_get(root, "rows");
#define GI(k) json_integer_value(json_object_get(root, k))
#define GR(k) json_number_value(json_object_get(root, k))
    st->step = GI("step"), st->epoch = GI("epoch"), st->epoch_steps = GI("epoch_steps");
    st->lr = GR("lr"), st->ep_loss = GR("epoch_loss"), st->ep_correct = GI("epoch_correct"), st->ep_n = GI("epoch_n");
    res->val_acc = num_value(json_object_get(root, "val_accuracy"));
    res->val_loss = num_value(json_object_get(root, "val_loss"));
#undef GI
#undef GR
    size_t i;
    json_t *r;
    double *cls = md_malloc((size_t)C * sizeof *cls);
    json_array_foreach(rows, i, r) {
        for (int k = 0; k < C; k++) cls[k] = num_value(json_array_get(json_array_get(r, 7), (size_t)k));
        md_epoch_row_t row = {json_integer_value(json_array_get(r, 0)), json_integer_value(json_array_get(r, 1)),
                              num_value(json_array_get(r, 2)), num_value(json_array_get(r, 3)),
                              num_value(json_array_get(r, 4)), num_value(json_array_get(r, 5)),
                              num_value(json_array_get(r, 6)), cls};
        json_array_append_new(st->rows, row_json(&row, C));
        if (tc->rank == 0 && md_epoch_log_add(elog, &row) < 0) { free(cls); goto out; }
    }
    free(cls);
    if (!(ck = md_ckpt_open(o->resume)) || md_ckpt_load_params(ck, m) < 0) goto out;
    /* Every example is a function of the seed and the order of the draws:
     * drawing (and dropping) the steps done puts the streams where they were. */
    const int64_t accum = n_micro(tc);
    for (int64_t s = 0; s < st->step; s++) {
        tc->len = md_seq_len_at(seq, s);
        for (int64_t a = 0; a < accum; a++) draw_micro_batch(tc, a);
    }
    md_info("resumed from '%s' at step %lld (epoch %lld)", o->resume, (long long)st->step, (long long)st->epoch);
    ret = 0;
out:
    md_ckpt_close(ck);
    json_decref(root);
    free(text);
    free(sp);
    return ret;
}

static void log_eval(const char *what, const md_confusion_t *cm, md_species_data_t *d)
{
    char per[1024];
    int off = 0;
    for (int k = 0; k < cm->n_classes && off < (int)sizeof per - 64; k++)
        off += snprintf(per + off, sizeof per - off, "%s%s %.1f%%", k ? ", " : "", md_species_data_label(d, k),
                        100 * md_confusion_class_accuracy(cm, k));
    md_info("%s: accuracy %.2f%%, loss %.4f on %lld windows (%s)", what, 100 * md_confusion_accuracy(cm),
            md_confusion_mean_loss(cm), (long long)cm->n, per);
}

int md_cls_train(md_model_t *m, md_species_data_t *d, const md_cls_train_opts_t *o, md_cls_train_result_t *res)
{
    md_step_kind_t kind;   /* always the host's step: said in a log line, or refused for --cuda-graph on */
    if (md_step_kind_choose(o->cuda_graph, m, o->comm ? md_comm_size(o->comm) : 1,
                            "the classification head takes its softmax on the host", &kind) < 0)
        return -1;
    const int C = md_species_data_n(d);
    const int64_t L = o->seq_len, micro = md_model_max_batch(m), spe = o->steps_per_epoch;
    md_seq_schedule_t seq = {L, L > o->seq_warmup_start ? o->seq_warmup_start : L, spe};
    const int64_t warm = md_seq_n_stages(&seq) - 1, total_epochs = o->epochs + warm, steps = total_epochs * spe;
    md_lr_schedule_t lrs = {o->lr, o->lr_min, (int64_t)llround(o->warmup * (double)steps), steps};
    *res = (md_cls_train_result_t){NAN, NAN, NAN, NAN, 0};
    for (int s = 0; s <= warm; s++)
        if (md_species_data_prepare_train(d, md_seq_len_at(&seq, (int64_t)s * spe)) < 0) return -1;
    int64_t *n_val = md_calloc((size_t)C, sizeof *n_val), *n_test = md_calloc((size_t)C, sizeof *n_test);
    const char **labels = md_malloc((size_t)C * sizeof *labels);
    for (int k = 0; k < C; k++) labels[k] = md_species_data_label(d, k);
    md_comm_t *comm = o->comm;
    const int rank = comm ? md_comm_rank(comm) : 0, ranks = comm ? md_comm_size(comm) : 1, lead = rank == 0;
    train_ctx_t tc = {m, d, L, o->batch, micro, md_malloc((size_t)(micro * L)),
                      md_malloc((size_t)micro * sizeof(int32_t)), 0, 0, rank, ranks, NULL, NULL};
    if (ranks > 1) {
        tc.stage = md_malloc((size_t)(micro * ranks * L));
        tc.stage_labels = md_malloc((size_t)(micro * ranks) * sizeof(int32_t));
    }
    float *logprobs = md_malloc((size_t)(micro * C) * sizeof *logprobs);
    char *p_epochs = report_path(o->report_prefix, "epochs.tsv"), *p_val = report_path(o->report_prefix, "val-confusion.tsv");
    char *p_test = report_path(o->report_prefix, "test-confusion.tsv");
    char title[256];
    const md_config_t *cfg = md_model_config(m);
    snprintf(title, sizeof title, "mambadna finetune: %s %lld x %lld, L %lld, %d species", md_arch_name(cfg->arch),
             (long long)cfg->d_model, (long long)cfg->n_layer, (long long)L, C);
    md_epoch_log_t *elog = md_epoch_log_new(p_epochs, C, labels, title);
    md_confusion_t cm;
    md_confusion_init(&cm, C);
    md_adamw_t opt;
    int ret = -1;
    memset(&opt, 0, sizeof opt);
    cls_state_t st = {0, 1, 0, 0, 0, 0, 0, options_json(m, d, o), json_array()};
    if (md_species_data_prepare_eval(d, MD_SPLIT_VAL, L, o->val_windows, n_val) < 0 ||
        md_species_data_prepare_eval(d, MD_SPLIT_TEST, L, o->test_windows, n_test) < 0)
        goto out;
    const md_params_t *reg = md_model_params(m);
    if (md_train_adamw_init(&opt, m, comm, &o->adamw) < 0) goto out;
    if (o->resume && resume(m, &opt, o, &st, res, elog, &tc, &seq, C) < 0) goto out;
    /* Data parallel: every rank trains a replica from rank 0's weights;
     * rank 0 alone evaluates, reports and saves (the moments and the data
     * position are the same on every rank). */
    if (comm) {
        md_tensor_t pbuf = md_model_param_buffer(m);
        if (md_comm_broadcast(comm, pbuf.data, reg->numel, pbuf.dtype, 0) < 0) goto out;
    }
    md_info("%lld epoch%s of %lld steps (%lld of them sequence-length warmup from %lld), %lld examples per step "
            "(%lld micro-batch%s), lr %g -> %g",
            (long long)total_epochs, total_epochs == 1 ? "" : "s", (long long)spe, (long long)warm,
            (long long)seq.start_len, (long long)o->batch, (long long)n_micro(&tc), n_micro(&tc) == 1 ? "" : "es",
            o->lr, o->lr_min);
    md_progress_t pg;
    const int64_t step0 = st.step;   /* (0 unless resumed) */
    md_progress_init(&pg, step0);
    if (!lead) pg.active = 0;
    md_step_guard_t guard = {o->max_bad_steps > 0 ? o->max_bad_steps : MD_MAX_BAD_STEPS_DEFAULT, 0, 0};
    md_train_catch_signals();
    int64_t step = st.step;
    for (int64_t epoch = st.epoch; epoch <= total_epochs; epoch++) {
        double t0 = md_realtime();
        st.epoch = epoch;
        tc.len = md_seq_len_at(&seq, step);
        if (warm > 0) {
            md_progress_clear(&pg);
            md_info("epoch %lld: sequence length %lld", (long long)epoch, (long long)tc.len);
        }
        for (int64_t k = st.epoch_steps; k < spe; k++, step++) {
            md_step_result_t sr;
            const double lr = st.lr = md_lr_at(&lrs, step);
            tc.n_correct = tc.n_seen = 0;
            const int stepped =
                md_train_step(m, comm, &opt, n_micro(&tc), train_micro_batch, &tc, lr, o->clip, step, &pg, &guard, &sr);
            if (stepped < 0) goto out;
            /* the step's accuracy over all ranks, and whether any was asked to stop */
            double sums[3] = {(double)tc.n_correct, (double)tc.n_seen, md_train_stop_signal() != 0};
            if (comm && md_comm_allreduce_host(comm, sums, 3) < 0) goto out;
            tc.n_correct = llround(sums[0]), tc.n_seen = llround(sums[1]);
            const int stop = sums[2] > 0;
            if (stepped == 0) {   /* a skipped step stays out of the epoch's figures */
                st.ep_loss += sr.loss_sum;
                st.ep_correct += tc.n_correct;
                st.ep_n += tc.n_seen;
            }
            st.step = step + 1, st.epoch_steps = k + 1;
            if (o->stop_at == step + 1 && k + 1 < spe) {   /* (at an epoch's end, after its reports) */
                md_progress_clear(&pg);
                if (gathered_save(m, d, o, &opt, comm, &st, epoch, res) < 0) goto out;
                md_info("stopped after step %lld (epoch %lld): saved '%s'", (long long)step + 1, (long long)epoch,
                        o->out_path);
                ret = 0;
                goto out;
            }
            if (stop) {
                md_progress_clear(&pg);
                if (gathered_save(m, d, o, &opt, comm, &st, epoch, res) < 0) goto out;
                const int sig = md_train_stop_signal();
                md_info("stopped by %s after step %lld (epoch %lld): saved '%s' (no reports for the unfinished "
                        "epoch); continue with --resume %s", sig ? md_train_signal_name(sig) : "another rank's signal",
                        (long long)step + 1, (long long)epoch, o->out_path, o->out_path);
                ret = MD_TRAIN_INTERRUPTED;
                goto out;
            }
            double eps = (double)((step + 1 - step0) * o->batch) / (md_realtime() - pg.t_start + 1e-9);
            if (lead) md_progress_update(&pg, step + 1, steps, sr.loss, eps * (double)tc.len);
            if (!pg.active && o->log_every > 0 && (step + 1) % o->log_every == 0)
                md_info("step %lld/%lld: loss %.4f, lr %.3g, grad norm %.3g, %.1f examples/s", (long long)step + 1,
                        (long long)steps, sr.loss, lr, sr.grad_norm, eps);
        }
        md_progress_clear(&pg);
        if (!lead) {   /* the figures, reports and checkpoint are rank 0's */
            if (gathered_save(m, d, o, &opt, comm, &st, epoch, res) < 0) goto out;   /* (rank 0's ZeRO-1 moments) */
            st.epoch = epoch + 1, st.epoch_steps = 0, st.ep_loss = 0, st.ep_correct = st.ep_n = 0;
            if (o->stop_at == step && epoch < total_epochs) {
                ret = 0;
                goto out;
            }
            continue;
        }
        if (evaluate(m, d, MD_SPLIT_VAL, L, n_val, &cm, tc.tokens, tc.labels, logprobs) < 0) goto out;
        res->val_acc = md_confusion_accuracy(&cm);
        res->val_loss = md_confusion_mean_loss(&cm);
        double *cls_acc = md_malloc((size_t)C * sizeof *cls_acc);
        for (int k = 0; k < C; k++) cls_acc[k] = md_confusion_class_accuracy(&cm, k);
        md_epoch_row_t row = {epoch, step, st.lr, st.ep_loss / (double)st.ep_n,
                              (double)st.ep_correct / (double)st.ep_n, res->val_loss, res->val_acc, cls_acc};
        md_info("epoch %lld/%lld (%.1f s): train loss %.4f, accuracy %.2f%%", (long long)epoch,
                (long long)total_epochs, md_realtime() - t0, row.train_loss, 100 * row.train_acc);
        char what[64];
        snprintf(what, sizeof what, "epoch %lld validation", (long long)epoch);
        log_eval(what, &cm, d);
        int r = md_epoch_log_add(elog, &row);
        json_array_append_new(st.rows, row_json(&row, C));
        free(cls_acc);
        if (r < 0) goto out;
        snprintf(what, sizeof what, "validation confusion, epoch %lld (%s)", (long long)epoch, o->out_path);
        if (md_confusion_write(&cm, labels, what, p_val) < 0) goto out;
        /* the next epoch, not yet begun, is where a resumed run starts */
        st.epoch = epoch + 1, st.epoch_steps = 0, st.ep_loss = 0, st.ep_correct = st.ep_n = 0;
        if (gathered_save(m, d, o, &opt, comm, &st, epoch, res) < 0) goto out;
        if (o->stop_at == step && epoch < total_epochs) {
            md_info("stopped after step %lld (epoch %lld): saved '%s'", (long long)step, (long long)epoch, o->out_path);
            ret = 0;
            goto out;
        }
    }
    if (!lead) {   /* (its part of the final save's ZeRO-1 gather) */
        ret = md_adamw_gather_host(&opt, comm, md_model_grad_buffer(m).data, 0) < 0 ? -1 : 0;
        goto out;
    }
    if (evaluate(m, d, MD_SPLIT_TEST, L, n_test, &cm, tc.tokens, tc.labels, logprobs) < 0) goto out;
    res->test_acc = md_confusion_accuracy(&cm);
    res->test_loss = md_confusion_mean_loss(&cm);
    res->n_test = cm.n;
    log_eval("test", &cm, d);
    char what[300];
    snprintf(what, sizeof what, "test confusion (%s)", o->out_path);
    if (md_confusion_write(&cm, labels, what, p_test) < 0) goto out;
    if (gathered_save(m, d, o, &opt, comm, &st, total_epochs, res) < 0) goto out;
    md_info("saved '%s'; reports %s, %s, %s (and .svg)", o->out_path, p_epochs, p_val, p_test);
    ret = 0;
out:
    md_train_release_signals();
    md_adamw_free(&opt);
    json_decref(st.options);
    json_decref(st.rows);
    md_confusion_free(&cm);
    md_epoch_log_free(elog);
    free(p_epochs), free(p_val), free(p_test);
    free(tc.tokens), free(tc.labels), free(tc.stage), free(tc.stage_labels), free(logprobs), free(labels), free(n_val),
        free(n_test);
    return ret;
}
