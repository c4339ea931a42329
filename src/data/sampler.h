/* Training windows, exactly as the trainer sees them.
 *
 * A sampler turns a loaded genome (and optionally BED intervals) into an
 * endless, numbered stream of windows of L bases. Window number i is a pure
 * function of (seed, i): it is computed from md_hash64(seed, stream, i), never
 * from a sequential generator, so
 *   - the output is the same whatever the thread count or batch split, and
 *   - a trainer resumes exactly by remembering the next window index.
 * A trainer's batch k of size B is simply windows k*B .. k*B+B-1
 * (md_sampler_fill_batch).
 *
 * Uniform mode (no BED): start positions are uniform over every valid start
 * of every contig with len >= L, i.e. contig c is drawn with weight
 * len_c - L + 1; contigs shorter than L get no windows. The N filter is
 * applied exactly rather than by rejection: at construction the sampler
 * works out, from the contigs' N runs, the set of starts whose window holds
 * at most floor(max_n_frac * L) N, and draws uniformly from that set. The
 * distribution is the one rejection sampling would give (uniform over
 * accepted starts), but a draw never fails or loops, and a genome with no
 * acceptable window at all (e.g. all N) is an error at construction.
 *
 * BED mode: every interval is tiled without overlap. An interval of len >= L
 * gives floor(len / L) tiles, centred in it: the remainder (len mod L) is
 * left out, half (rounded down) before the first tile, the rest after the
 * last. An interval shorter than L is either extended symmetrically around
 * its centre to L (extra floor(d/2) before, ceil(d/2) after, then shifted
 * to stay inside the contig; a contig shorter than L drops it), or skipped.
 * Tiles with more than floor(max_n_frac * L) N are dropped. The tiles are
 * numbered in file order (intervals in file order, tiles left to right).
 * MD_ORDER_FILE gives window i = tile i mod n_tiles. MD_ORDER_SHUFFLE
 * visits the tiles in passes: pass p = i / n_tiles is a pseudo-random
 * permutation of all tiles, keyed by (seed, p), so every tile is seen once
 * per pass (sampling without replacement within a pass).
 * Tiles of different, overlapping intervals may overlap each other.
 * Every interval of the file, whatever its split, is checked against the
 * genome: an end beyond its contig is an error, as is an unknown contig
 * unless skip_unknown_contigs is set (then such intervals are skipped with
 * one warning giving their count).
 *
 * Reverse-complement augmentation, when on, flips each window with
 * probability 1/2 (an independent hash bit of the window index); the
 * window's coordinates stay those of the forward strand.
 */
#ifndef MD_DATA_SAMPLER_H
#define MD_DATA_SAMPLER_H

#include <stdint.h>

#include "seq/bed.h"
#include "seq/genome.h"

enum { MD_SHORT_EXTEND = 0, MD_SHORT_SKIP = 1 };
enum { MD_ORDER_SHUFFLE = 0, MD_ORDER_FILE = 1 };

typedef struct md_sampler_opts {
    int64_t len;               /* L, window length in bases (>= 1) */
    uint64_t seed;
    int revcomp;               /* 1: reverse-complement with probability 1/2 */
    double max_n_frac;         /* in [0, 1]: windows with more N than max_n_frac * L are never drawn */
    /* BED mode, when bed is set: */
    const md_bed_t *bed;       /* tile these intervals; NULL for uniform mode */
    const char *split;         /* comma list of split labels (see bed.h); NULL = every interval */
    int short_policy;          /* MD_SHORT_EXTEND or MD_SHORT_SKIP, for intervals shorter than L */
    int order;                 /* MD_ORDER_SHUFFLE or MD_ORDER_FILE */
    int skip_unknown_contigs;  /* 1: warn and skip intervals on contigs the genome lacks */
} md_sampler_opts_t;

/* What construction kept and dropped, for logs. */
typedef struct md_sampler_stats {
    uint64_t n_windows;        /* distinct windows: accepted starts (uniform) or tiles (BED) */
    uint64_t n_positions;      /* uniform mode: valid starts before the N filter */
    int n_contigs_used;        /* uniform mode: contigs with len >= L */
    int64_t n_intervals;       /* BED mode: intervals of the selected splits */
    int64_t n_extended;        /* short intervals extended to L */
    int64_t n_short_skipped;   /* short intervals skipped (policy, or contig shorter than L) */
    int64_t n_unknown_skipped; /* intervals on contigs absent from the genome (whole file) */
    int64_t n_tiles_n_dropped; /* BED tiles dropped by the N filter */
} md_sampler_stats_t;

/* A window: contig[start, start + L) on the forward strand, reverse-
 * complemented when rc is 1. */
typedef struct md_window {
    uint64_t index;            /* its number in the sampler's stream */
    int64_t start, end;
    int32_t contig;
    int32_t rc;
} md_window_t;

typedef struct md_sampler md_sampler_t;

/* Defaults, shared by `mambadna sample` and the trainer: len 1024, seed 1,
 * no reverse complement, max_n_frac 0.1 (a window mostly of N teaches a
 * model whose loss skips N nothing), uniform mode, MD_SHORT_EXTEND,
 * MD_ORDER_SHUFFLE. */
void md_sampler_opts_init(md_sampler_opts_t *o);

/* Builds a sampler over a loaded genome g (md_genome_load), which must
 * outlive it; o is copied (o->bed and o->split must outlive it too).
 * Returns NULL after one error line: L < 1, max_n_frac outside [0, 1],
 * genome not loaded, L longer than every contig, no window passing the N
 * filter, and in BED mode an unknown split, an interval beyond its contig
 * or on an unknown contig (file:line and the interval), no tiles left.
 * Logs what it kept and dropped with md_info. */
md_sampler_t *md_sampler_new(const md_genome_t *g, const md_sampler_opts_t *o);
void md_sampler_free(md_sampler_t *s);

int64_t md_sampler_len(const md_sampler_t *s);
const md_sampler_stats_t *md_sampler_stats(const md_sampler_t *s);

/* Fills w with window number index. Pure, thread-safe, O(log segments).
 * Returns 0 (it cannot fail on a sampler that was built). */
int md_sampler_window(const md_sampler_t *s, uint64_t index, md_window_t *w);

/* Writes w's L tokens (tokenizer.h ids, reverse-complemented when w->rc).
 * Thread-safe. */
void md_sampler_tokens(const md_sampler_t *s, const md_window_t *w, uint8_t *out);

/* Windows first_index .. first_index + B - 1: their tokens as a B x L
 * row-major batch, and the windows themselves when windows is not NULL.
 * Parallel over windows with OpenMP; the result does not depend on the
 * thread count. */
void md_sampler_fill_batch(const md_sampler_t *s, uint64_t first_index, int64_t B, uint8_t *tokens,
                           md_window_t *windows);

#endif
