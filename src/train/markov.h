/* An order-k Markov chain over A, C, G, T: the baseline a DNA language model
 * must beat. Counts are taken for every order 0..k; a prediction uses the
 * longest context of at most k bases that lies inside the window and holds
 * no N, with add-one (Laplace) smoothing:
 *   p(b | ctx) = (count(ctx, b) + 1) / (count(ctx) + 4).
 * Targets are scored exactly as the model's loss scores them: every
 * position t >= 1 of a window whose token is A, C, G or T.
 */
#ifndef MD_TRAIN_MARKOV_H
#define MD_TRAIN_MARKOV_H

#include <stdint.h>

#include "seq/genome.h"

#define MD_MARKOV_MAX_ORDER 10

typedef struct md_markov md_markov_t;

/* order in [0, MD_MARKOV_MAX_ORDER]. */
md_markov_t *md_markov_new(int order);
void md_markov_free(md_markov_t *mk);
int md_markov_order(const md_markov_t *mk);

/* Adds the transitions inside a run of n tokens. */
void md_markov_count(md_markov_t *mk, const uint8_t *tokens, int64_t n);
/* Adds the transitions of contig[start, end) of a loaded genome. */
void md_markov_count_region(md_markov_t *mk, const md_genome_t *g, int contig, int64_t start, int64_t end);
/* Transitions counted so far (order-0 events). */
uint64_t md_markov_n_counted(const md_markov_t *mk);

/* Sum of -ln p over the targets of one window of n tokens (positions 1..n-1
 * that are bases); *n_targets receives their count. */
double md_markov_window_loss(const md_markov_t *mk, const uint8_t *win, int64_t n, int64_t *n_targets);

#endif
