/* Internals of the genome simulator shared by simulate_model.c (background
 * model, repeat families), simulate_base.c (the base genome) and
 * simulate_derive.c (the tree). Not a public interface. */
#ifndef MD_DATA_SIMULATE_IMPL_H
#define MD_DATA_SIMULATE_IMPL_H

#include <stdint.h>

#include "data/simulate.h"
#include "util/rng.h"

/* Base codes used inside the simulator: A=0 C=1 G=2 T=3, so that the
 * complement is 3-b and the transition partner is b^2. 4 = anything else. */
extern const uint8_t sim_code[256];
static const char sim_base_upper[4] = {'A', 'C', 'G', 'T'};
static const char sim_base_lower[4] = {'a', 'c', 'g', 't'};

static inline int sim_is_lower(char c) { return c >= 'a' && c <= 'z'; }
static inline char sim_base_char(int b, int lower) { return lower ? sim_base_lower[b] : sim_base_upper[b]; }

/* Independent random streams: one per (purpose, chromosome, node). */
enum {
    SIM_STREAM_MODEL = 1,
    SIM_STREAM_FAMILIES,
    SIM_STREAM_BASE,
    SIM_STREAM_BRANCH,
    SIM_STREAM_READS,
    SIM_STREAM_SUBFAMILIES
};
static inline void sim_rng_init(md_rng_t *r, uint64_t seed, uint64_t stream, uint64_t a, uint64_t b)
{
    md_rng_seed(r, md_hash64(seed, stream, (a << 32) ^ b));
}

/* An order-5 Markov chain over A,C,G,T: cum[ctx] holds three 32-bit
 * thresholds splitting [0, 2^32) among the four next bases. */
enum { SIM_ORDER = 5, SIM_N_CTX = 1 << (2 * SIM_ORDER) };
typedef struct sim_markov {
    uint32_t cum[SIM_N_CTX][3];
    double gc;               /* stationary GC actually achieved */
} sim_markov_t;

static inline int sim_markov_next(const sim_markov_t *m, unsigned *ctx, md_rng_t *r)
{
    uint32_t u = (uint32_t)(md_rng_next(r) >> 32);
    const uint32_t *c = m->cum[*ctx];
    int b = (u >= c[0]) + (u >= c[1]) + (u >= c[2]);
    *ctx = ((*ctx << 2) | (unsigned)b) & (SIM_N_CTX - 1);
    return b;
}

enum { SIM_N_GC_CLASSES = 5 };
enum { SIM_SINE1, SIM_LINE1, SIM_SINE2, SIM_LTR1 };

/* Everything genome-wide: drawn once from the seed, shared read-only by the
 * per-chromosome work. */
typedef struct sim_model {
    sim_markov_t isochore[SIM_N_GC_CLASSES];
    double class_gc[SIM_N_GC_CLASSES];
    double class_weight[SIM_N_GC_CLASSES];
    sim_markov_t island;
    char *consensus[MD_SIM_N_FAMILIES];    /* uppercase */
    int64_t consensus_len[MD_SIM_N_FAMILIES];
    /* Per tree node, the SINE1 subfamily born on the branch above it (NULL
     * for the root): its parent node's subfamily, or the SINE1 consensus
     * below the root, with diagnostic substitutions and one insertion. */
    char *subfamily[MD_SIM_N_NODES];       /* uppercase */
    int64_t subfamily_len[MD_SIM_N_NODES];
} sim_model_t;

/* Builds the model from the seed; parent[v] is node v's parent in the tree
 * (preorder, parent[0] = -1), for the lineage subfamilies. */
void sim_model_build(sim_model_t *m, uint64_t seed, const int parent[MD_SIM_N_NODES]);
void sim_model_free(sim_model_t *m);
extern const char *const sim_family_names[MD_SIM_N_FAMILIES];

/* A growable byte buffer. */
typedef struct sim_buf {
    char *s;
    int64_t n;
    size_t cap;
} sim_buf_t;
void sim_buf_put(sim_buf_t *b, const char *s, int64_t n);
void sim_buf_putc(sim_buf_t *b, char c);

/* Appends to out one copy of family fam: a fragment of the consensus (5'
 * truncated for LINE1, a random piece for SINE2), its poly-A tail for the
 * SINE1/LINE1, diverged by 'divergence' substitutions per base (CpG sites
 * faster) plus a tenth as many small indels, reverse complemented half the
 * time, lowercase. young draws a low divergence (new lineage insertions). */
void sim_repeat_copy(const sim_model_t *m, int fam, int young, md_rng_t *r, sim_buf_t *out);

/* Appends to out one young copy of node's lineage subfamily, made as
 * sim_repeat_copy() makes a young SINE1 copy. */
void sim_subfamily_copy(const sim_model_t *m, int node, md_rng_t *r, sim_buf_t *out);

/* Applies n_sub substitutions to seq[0, len) in place, positions drawn
 * uniformly with CpG C/G accepted 10 times as often as other bases; N is
 * never touched and case is kept. Returns the number applied (n_sub unless
 * the sequence has no base). */
int64_t sim_substitute(char *seq, int64_t len, int64_t n_sub, md_rng_t *r);

/* Reverse complements s[0, n) in place, keeping case. */
void sim_revcomp(char *s, int64_t n);

/* A tandem-repeat locus [start, end) of a period-bp unit. */
typedef struct sim_locus {
    int64_t start, end;
    int period;
} sim_locus_t;

/* One chromosome of one tree node while it is being simulated. */
typedef struct sim_chrom {
    char *seq;
    int64_t len;
    int64_t *anc;          /* NULL: the identity (the base genome itself) */
    sim_locus_t *loci;     /* sorted, disjoint, not touching */
    int64_t n_loci;
} sim_chrom_t;

/* Builds chromosome ci of the base genome (chrom_len bases). Its isochores
 * and CpG islands are returned in *iso / *cgi (allocated; regions' chrom
 * set to ci). */
void sim_base_chrom(const sim_model_t *m, const md_sim_opts_t *o, int ci, sim_chrom_t *out,
                    md_sim_region_t **iso, int64_t *n_iso, md_sim_region_t **cgi, int64_t *n_cgi);

/* Derives tree node's chromosome from its parent's along the branch above
 * node, of the given length (substitutions per site); fills out and adds
 * what it did to *stats. */
void sim_derive_chrom(const sim_model_t *m, const md_sim_opts_t *o, int node, const sim_chrom_t *parent,
                      double length, md_rng_t *r, sim_chrom_t *out, md_sim_branch_t *stats);

#endif
