/* Language-model data: training windows never touch the held-out part,
 * validation windows lie inside it and do not overlap, and the Markov
 * baseline counts every transition of a region exactly once (chunked
 * counting equals counting the whole sequence at once). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seq/fasta_write.h"
#include "seq/genome.h"
#include "seq/tokenizer.h"
#include "testutil.h"
#include "train/lmdata.h"
#include "train/markov.h"
#include "util/log.h"
#include "util/rng.h"

static const int64_t LENS[3] = {5000, 3000, 800};

static md_genome_t *make_genome(const char *name, const int64_t *lens, int n)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", md_test_tmpdir(), name);
    FILE *fp = fopen(path, "w");
    md_rng_t r;
    md_rng_seed(&r, 77);
    int64_t maxlen = 0;
    for (int c = 0; c < n; c++) if (lens[c] > maxlen) maxlen = lens[c];
    char *seq = malloc((size_t)maxlen);
    for (int c = 0; c < n; c++) {
        for (int64_t i = 0; i < lens[c]; i++) seq[i] = "ACGT"[md_rng_below(&r, 4)];
        char nm[16];
        snprintf(nm, sizeof nm, "c%d", c);
        md_fasta_write(fp, nm, NULL, seq, lens[c], 60);
    }
    free(seq);
    fclose(fp);
    const char *paths[1] = {path};
    md_genome_t *g = md_genome_open(paths, 1);
    if (!g || md_genome_load(g) < 0) { fprintf(stderr, "genome\n"); exit(2); }
    return g;
}

enum { W = 65, NTRAIN = 3000, NVAL = 20 };

static void check_fraction(md_genome_t *g)
{
    md_holdout_t h = {.kind = MD_HOLDOUT_FRACTION, .val_fraction = 0.2};
    md_lm_data_t *d = md_lm_data_new(g, &h, 3, 0.1, 0);
    CHECK(d != NULL, "fraction data");
    if (!d) return;
    CHECK(md_lm_data_prepare_train(d, W) == 0, "prepare train");
    uint64_t avail;
    CHECK(md_lm_data_prepare_val(d, W, &avail) == 0, "prepare val");
    /* tails: 1000, 600, 160 bp -> 15 + 9 + 2 tiles of 65 */
    CHECK(avail == 15 + 9 + 2, "%llu validation tiles", (unsigned long long)avail);
    uint8_t *tok = malloc(NTRAIN * W);
    md_window_t *w = malloc(sizeof *w * NTRAIN);
    uint64_t next = 0;
    md_lm_data_train_batch(d, W, &next, NTRAIN, tok, w);
    int bad = 0, seen_c2 = 0;
    for (int i = 0; i < NTRAIN; i++) {
        int64_t cut = LENS[w[i].contig] - (int64_t)(LENS[w[i].contig] * 0.2);
        bad += w[i].end > cut || w[i].end - w[i].start != W;
        seen_c2 += w[i].contig == 2;
    }
    CHECK(bad == 0, "%d training windows reach into the held-out tails", bad);
    CHECK(seen_c2 > 0, "the short contig is trained on");
    CHECK(next > NTRAIN, "rejected windows are skipped (next %llu)", (unsigned long long)next);
    /* The same indices give the same windows: resuming from `next` is exact. */
    uint64_t again = 0;
    md_window_t w2[10];
    md_lm_data_train_batch(d, W, &again, 10, tok, w2);
    CHECK(!memcmp(w, w2, sizeof w2), "training windows are not a pure function of the index");
    /* Data-parallel parts: 3 ranks taking every third window of a batch of
     * 11 hold, between them, exactly the one-process batch (windows and
     * tokens), and all end at the same next index. */
    enum { B = 11, PARTS = 3 };
    uint64_t whole_next = 5;
    md_window_t whole[B], part_w[B];
    uint8_t whole_tok[B * W], part_tok[B * W];
    md_lm_data_train_batch(d, W, &whole_next, B, whole_tok, whole);
    int mism = 0, total = 0;
    for (int r = 0; r < PARTS; r++) {
        uint64_t pn = 5;
        int64_t n = md_lm_data_train_batch_part(d, W, &pn, B, r, PARTS, part_tok, part_w);
        CHECK(n == (B - r + PARTS - 1) / PARTS, "part %d holds %lld windows", r, (long long)n);
        CHECK(pn == whole_next, "part %d ends at index %llu, the batch at %llu", r, (unsigned long long)pn,
              (unsigned long long)whole_next);
        for (int64_t k = 0; k < n; k++) {
            const int64_t b = r + k * PARTS;
            mism += memcmp(&part_w[k], &whole[b], sizeof *whole) != 0 ||
                    memcmp(part_tok + k * W, whole_tok + b * W, W) != 0;
        }
        total += (int)n;
    }
    CHECK(total == B && mism == 0, "the parts hold %d windows, %d unlike the whole batch's", total, mism);
    md_window_t v[NVAL];
    md_lm_data_val_batch(d, 0, NVAL, tok, v);
    int outside = 0, overlap = 0;
    for (int i = 0; i < NVAL; i++) {
        int64_t cut = LENS[v[i].contig] - (int64_t)(LENS[v[i].contig] * 0.2);
        outside += v[i].start < cut || v[i].end > LENS[v[i].contig];
        for (int j = 0; j < i; j++)
            overlap += v[i].contig == v[j].contig && v[i].start < v[j].end && v[j].start < v[i].end;
    }
    CHECK(outside == 0, "%d validation windows outside the held-out tails", outside);
    CHECK(overlap == 0, "%d overlapping validation windows", overlap);
    free(tok);
    free(w);
    md_lm_data_free(d);
}

static void check_contigs(md_genome_t *g)
{
    md_holdout_t h = {.kind = MD_HOLDOUT_CONTIGS, .val_contigs = "c1"};
    md_lm_data_t *d = md_lm_data_new(g, &h, 3, 0.1, 1);
    CHECK(d && md_lm_data_prepare_train(d, W) == 0 && md_lm_data_prepare_val(d, W, NULL) == 0, "contigs data");
    if (!d) return;
    uint8_t *tok = malloc(NTRAIN * W);
    md_window_t *w = malloc(sizeof *w * NTRAIN);
    uint64_t next = 0;
    md_lm_data_train_batch(d, W, &next, NTRAIN, tok, w);
    int on_held = 0;
    for (int i = 0; i < NTRAIN; i++) on_held += w[i].contig == 1;
    CHECK(on_held == 0, "%d training windows on the held-out contig", on_held);
    md_lm_data_val_batch(d, 0, NVAL, tok, w);
    int off = 0;
    for (int i = 0; i < NVAL; i++) off += w[i].contig != 1;
    CHECK(off == 0, "%d validation windows off the held-out contig", off);
    free(tok);
    free(w);
    md_lm_data_free(d);
    /* Errors: an unknown contig, and all of them. */
    md_holdout_t bad1 = {.kind = MD_HOLDOUT_CONTIGS, .val_contigs = "c1,nope"};
    CHECK(md_lm_data_new(g, &bad1, 3, 0.1, 0) == NULL, "unknown contig accepted");
    md_holdout_t bad2 = {.kind = MD_HOLDOUT_CONTIGS, .val_contigs = "c0,c1,c2"};
    CHECK(md_lm_data_new(g, &bad2, 3, 0.1, 0) == NULL, "every contig held out accepted");
}

/* Counting a region chunk by chunk (1 MiB chunks with k bases of overlap)
 * must give the same model as counting its tokens at once. */
static void check_markov(void)
{
    const int64_t big[1] = {(1 << 20) + 5000};
    md_genome_t *g = make_genome("big.fa", big, 1);
    uint8_t *t = malloc((size_t)big[0]);
    md_genome_tokens(g, 0, 0, big[0], t);
    for (int k = 0; k <= 3; k += 3) {
        md_markov_t *a = md_markov_new(k), *b = md_markov_new(k);
        md_markov_count(a, t, big[0]);
        md_markov_count_region(b, g, 0, 0, big[0]);
        CHECK(md_markov_n_counted(a) == (uint64_t)big[0], "order %d: %llu transitions", k,
              (unsigned long long)md_markov_n_counted(a));
        CHECK(md_markov_n_counted(b) == md_markov_n_counted(a), "order %d chunked: %llu vs %llu", k,
              (unsigned long long)md_markov_n_counted(b), (unsigned long long)md_markov_n_counted(a));
        int64_t na, nb;
        double la = md_markov_window_loss(a, t + 1000000, 5000, &na);
        double lb = md_markov_window_loss(b, t + 1000000, 5000, &nb);
        CHECK(la == lb && na == nb && na == 4999, "order %d: chunked counts differ (%g vs %g)", k, la, lb);
        /* Uniform random DNA: about 2 bits per base, whatever the order. */
        CHECK(fabs(la / na / M_LN2 - 2.0) < 0.02, "order %d: %g bits on random DNA", k, la / na / M_LN2);
        md_markov_free(a);
        md_markov_free(b);
    }
    /* A periodic sequence is certain to an order-2 chain, not to order 0. */
    uint8_t rep[3000];
    for (int i = 0; i < 3000; i++) rep[i] = (uint8_t)(MD_TOK_A + (i % 3));
    md_markov_t *m2 = md_markov_new(2), *m0 = md_markov_new(0);
    md_markov_count(m2, rep, 3000);
    md_markov_count(m0, rep, 3000);
    int64_t n2, n0;
    double l2 = md_markov_window_loss(m2, rep, 300, &n2), l0 = md_markov_window_loss(m0, rep, 300, &n0);
    CHECK(l2 / n2 < 0.01, "order 2 on ACGACG...: %g nats", l2 / n2);
    CHECK(fabs(l0 / n0 - log(3.0)) < 0.01, "order 0 on ACGACG...: %g nats (ln 3 expected)", l0 / n0);
    /* N breaks the context: after an N only shorter orders apply, and N
     * itself is never a target. */
    uint8_t withn[6] = {MD_TOK_A, MD_TOK_C, MD_TOK_N, MD_TOK_G, MD_TOK_A, MD_TOK_C};
    CHECK((md_markov_window_loss(m2, withn, 6, &n2), n2 == 4), "targets around an N: %lld", (long long)n2);
    md_markov_free(m2);
    md_markov_free(m0);
    free(t);
    md_genome_close(g);
}

int main(void)
{
    md_verbose = 0;
    md_genome_t *g = make_genome("g.fa", LENS, 3);
    check_fraction(g);
    check_contigs(g);
    md_genome_close(g);
    check_markov();
    if (!md_test_failures) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", md_test_tmpdir());
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", md_test_tmpdir());
    }
    return md_test_done();
}
