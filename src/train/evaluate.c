#include "train/evaluate.h"

#include <math.h>
#include <stdlib.h>

#include "util/log.h"
#include "util/xalloc.h"

void md_eval_finish(md_eval_result_t *r)
{
    if (r->n_targets > 0) {
        r->loss = r->loss_sum / (double)r->n_targets;
        r->ppl = exp(r->loss);
        r->bits_per_base = r->loss / M_LN2;
    } else {
        r->loss = r->ppl = r->bits_per_base = NAN;
    }
}

int md_eval_model(md_model_t *m, md_lm_data_t *d, int64_t seq_len, int64_t n_windows, int64_t batch,
                  md_eval_result_t *r)
{
    const int64_t W = seq_len + 1;
    uint8_t *win = md_malloc((size_t)(batch * W));
    uint8_t *in = md_malloc((size_t)(batch * seq_len)), *tg = md_malloc((size_t)(batch * seq_len));
    r->loss_sum = 0;
    r->n_targets = 0;
    r->n_windows = n_windows;
    int ret = 0;
    for (int64_t first = 0; first < n_windows; first += batch) {
        int64_t B = n_windows - first < batch ? n_windows - first : batch;
        md_lm_data_val_batch(d, (uint64_t)first, B, win, NULL);
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < seq_len; t++) {
                in[b * seq_len + t] = win[b * W + t];
                tg[b * seq_len + t] = win[b * W + t + 1];
            }
        md_loss_t l;
        if ((ret = md_model_forward_backward(m, in, tg, B, seq_len, 0, &l)) < 0) break;
        r->loss_sum += l.loss_sum;
        r->n_targets += l.n_targets;
    }
    free(win);
    free(in);
    free(tg);
    md_eval_finish(r);
    return ret;
}

typedef struct {
    md_markov_t *mk;
    const md_genome_t *g;
} count_ctx_t;

static void count_region(void *ud, int contig, int64_t start, int64_t end)
{
    count_ctx_t *c = ud;
    if (end > start) md_markov_count_region(c->mk, c->g, contig, start, end);
}

void md_eval_markov(md_lm_data_t *d, int order, int64_t seq_len, int64_t n_windows, md_eval_result_t *r)
{
    count_ctx_t c = {md_markov_new(order), md_lm_data_genome(d)};
    md_lm_data_train_regions(d, count_region, &c);
    const int64_t W = seq_len + 1, chunk = 64;
    uint8_t *win = md_malloc((size_t)(chunk * W));
    r->loss_sum = 0;
    r->n_targets = 0;
    r->n_windows = n_windows;
    for (int64_t first = 0; first < n_windows; first += chunk) {
        int64_t B = n_windows - first < chunk ? n_windows - first : chunk;
        md_lm_data_val_batch(d, (uint64_t)first, B, win, NULL);
        for (int64_t b = 0; b < B; b++) {
            int64_t nt;
            r->loss_sum += md_markov_window_loss(c.mk, win + b * W, W, &nt);
            r->n_targets += nt;
        }
    }
    free(win);
    md_markov_free(c.mk);
    md_eval_finish(r);
}
