#include "train/markov.h"

#include <math.h>
#include <stdlib.h>

#include "seq/tokenizer.h"
#include "util/xalloc.h"

struct md_markov {
    int order;
    uint64_t *count[MD_MARKOV_MAX_ORDER + 1];   /* order j: 4^j contexts x 4 bases */
};

md_markov_t *md_markov_new(int order)
{
    if (order < 0) order = 0;
    if (order > MD_MARKOV_MAX_ORDER) order = MD_MARKOV_MAX_ORDER;
    md_markov_t *mk = md_calloc(1, sizeof *mk);
    mk->order = order;
    for (int j = 0; j <= order; j++) mk->count[j] = md_calloc((size_t)4 << (2 * j), sizeof(uint64_t));
    return mk;
}

void md_markov_free(md_markov_t *mk)
{
    if (!mk) return;
    for (int j = 0; j <= mk->order; j++) free(mk->count[j]);
    free(mk);
}

int md_markov_order(const md_markov_t *mk) { return mk->order; }

uint64_t md_markov_n_counted(const md_markov_t *mk)
{
    uint64_t n = 0;
    for (int b = 0; b < 4; b++) n += mk->count[0][b];
    return n;
}

/* Counts the transitions at positions >= skip of t[0, n); the tokens before
 * skip serve as context only. */
static void count_run(md_markov_t *mk, const uint8_t *t, int64_t n, int64_t skip)
{
    const int k = mk->order;
    const uint64_t ctx_mask = (1ULL << (2 * (k > 0 ? k : 1))) - 1;
    uint64_t ctx = 0;     /* the last `run` bases, 2 bits each, newest lowest */
    int run = 0;          /* consecutive bases just before position i, capped at k */
    for (int64_t i = 0; i < n; i++) {
        if (!md_tok_is_base(t[i])) { run = 0; ctx = 0; continue; }
        uint64_t b = (uint64_t)(t[i] - MD_TOK_A);
        if (i >= skip)
            for (int j = 0; j <= run; j++) mk->count[j][(ctx & ((1ULL << (2 * j)) - 1)) * 4 + b]++;
        ctx = (ctx << 2 | b) & ctx_mask;
        if (run < k) run++;
    }
}

void md_markov_count(md_markov_t *mk, const uint8_t *t, int64_t n)
{
    count_run(mk, t, n, 0);
}

void md_markov_count_region(md_markov_t *mk, const md_genome_t *g, int contig, int64_t start, int64_t end)
{
    enum { CHUNK = 1 << 20 };
    const int64_t k = mk->order;
    uint8_t *buf = md_malloc(CHUNK + MD_MARKOV_MAX_ORDER);
    /* Chunks overlap by k bases so that no transition is lost or doubled:
     * the first bases of a later chunk are context only. */
    for (int64_t a = start; a < end; a += CHUNK) {
        int64_t b = a + CHUNK < end ? a + CHUNK : end;
        int64_t a0 = a - k > start ? a - k : start;
        md_genome_tokens(g, contig, a0, b, buf);
        count_run(mk, buf, b - a0, a - a0);
    }
    free(buf);
}

double md_markov_window_loss(const md_markov_t *mk, const uint8_t *t, int64_t n, int64_t *n_targets)
{
    const int k = mk->order;
    const uint64_t ctx_mask = (1ULL << (2 * (k > 0 ? k : 1))) - 1;
    double loss = 0;
    int64_t nt = 0;
    uint64_t ctx = 0;
    int run = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!md_tok_is_base(t[i])) { run = 0; ctx = 0; continue; }
        uint64_t b = (uint64_t)(t[i] - MD_TOK_A);
        if (i >= 1) {
            int j = run;
            const uint64_t *cnt = mk->count[j] + (ctx & ((1ULL << (2 * j)) - 1)) * 4;
            double tot = (double)(cnt[0] + cnt[1] + cnt[2] + cnt[3]);
            loss -= log(((double)cnt[b] + 1.0) / (tot + 4.0));
            nt++;
        }
        ctx = (ctx << 2 | b) & ctx_mask;
        if (run < k) run++;
    }
    *n_targets = nt;
    return loss;
}
