/* The genome simulator: the project's embedded default data.
 *
 * md_simulate_genomes() builds a base (ancestral) genome with the local
 * structure of a primate genome, then derives five great-ape-like species
 * from it along the real tree, so that demos and tests have realistic input
 * without shipping anyone else's data.
 *
 * The base genome, chromosome by chromosome:
 * - GC isochores: segments of about isochore_len bp (log-normal lengths),
 *   each of one of five families with GC 36, 39, 43, 48 or 53% (the human
 *   L1, L2, H1, H2, H3 classes, weighted as in the human genome), a family
 *   never repeated next to itself.
 * - An order-5 Markov background per isochore family. The 1024x4 transition
 *   table is drawn from the seed: log-normal noise per context and base plus
 *   the biases real DNA shows (A/T homopolymer persistence, TpA depletion),
 *   tilted towards the family's GC and with P(G | ...C) scaled down, the
 *   tilt and the scale calibrated on the chain's stationary distribution so
 *   that it has the family's GC and a CpG observed/expected of 0.21.
 * - CpG islands: about one per 100 kb, 500-2500 bp, GC 65% and CpG
 *   observed/expected 0.8, placed preferably in GC-rich isochores.
 * - Interspersed repeats from four families whose consensus sequences are
 *   drawn from the seed: SINE1 (Alu-like: two ~120 bp monomers joined by an
 *   A-rich linker, ~290 bp plus a poly-A tail, 2-16% diverged, favouring
 *   GC-rich isochores), LINE1 (L1-like, 6 kb with a GC-rich 5' UTR and
 *   A-rich ORFs, inserted mostly 5'-truncated, 3-22% diverged, favouring
 *   AT-rich isochores), SINE2 (MIR-like, old: 18-30% diverged fragments) and
 *   LTR1 (solo-LTR-like, 450 bp). Copies are laid down oldest family first,
 *   so younger ones nest in older ones; each copy is mutated on its own
 *   (CpG-biased substitutions and small indels) and half are reverse
 *   complemented. Coverage: ~11%, 19%, 3% and 7% of the sequence.
 * - Tandem repeats: microsatellites (unit 1-6 bp, 12-100 bp, slightly
 *   impure) at ~1 per 1.3 kb and minisatellites (unit 10-64 bp, 5-40
 *   copies) at ~1 per 40 kb.
 * - Repeats are soft-masked (lowercase), as RepeatMasker and TRF would.
 * - Each chromosome starts with an N run (its p telomere) of
 *   min(10 kb, 1% of its length), unless opts.gaps is 0.
 *
 * The species tree is (((human,(chimpanzee,bonobo)),gorilla),orangutan).
 * Target pairwise divergences (mismatches per aligned site) are
 * human-chimpanzee 1.2%, chimpanzee-bonobo 0.4%, human-gorilla 1.6% and
 * human-orangutan 3.1%, all scaled by opts.div_scale. These four fit an
 * ultrametric tree exactly: each ancestor sits at half its pair's
 * distance. The simulator turns each p-distance into an expected number of
 * substitutions per site with the Jukes-Cantor correction
 * d = -3/4 ln(1 - 4p'/3), applied to p' = p (1 + 0.9 p) rather than p
 * because CpG hot spots and the transition bias hide more repeated hits
 * than Jukes-Cantor's uniform model expects (the factor was measured on the
 * simulator's output, which then lands within ~0.3% of the targets at
 * div_scale 1 and ~1.5% up to 3; larger scales overshoot, e.g. 35% for a
 * 31% target at 10), and
 * takes half of d as the ancestor's height. A branch's length is its
 * parent's height minus its own; in substitutions per site, at div_scale 1:
 *
 *   node (parent)                 height    branch length
 *   root                          0.01628   -         (human-orangutan anc.)
 *   homininae (root)              0.00820   0.00808   (human-gorilla anc.)
 *   hominini (homininae)          0.00611   0.00209   (human-chimpanzee anc.)
 *   pan (hominini)                0.00201   0.00410   (chimpanzee-bonobo anc.)
 *   human (hominini)              0         0.00611
 *   chimpanzee, bonobo (pan)      0         0.00201
 *   gorilla (homininae)           0         0.00820
 *   orangutan (root)              0         0.01628
 *
 * A branch of length b applies round(b x non-N bases) substitutions to a copy
 * of its parent, at a relative rate 10 for the C and G of CpG sites (which
 * then turn to TpG or CpA 95% of the time) and 1 elsewhere, with
 * transitions:transversions 2:1 elsewhere. Then, in one pass, small indels
 * (indel_ratio x substitutions events, half insertions and half deletions,
 * 1-10 bp with short ones most common; insertions half tandem duplications,
 * half random bases), lineage-specific copies of the young families (SINE1
 * 70%, LINE1 30%; lineage_repeats per Mbp per 1% of branch length, young,
 * with a target-site duplication), lineage subfamily copies (below) and
 * tandem-repeat slippage (25 x b
 * events per locus, each a gain or loss of 1-3 units). An edit that
 * collides with an earlier one, touches N, or reaches into a tandem repeat
 * (which only slippage edits) is dropped, so slightly fewer indels are
 * realised than drawn. Mutations go branch by branch from the root down, so
 * descendants share their ancestors' changes.
 *
 * Lineage subfamilies: as Alu and L1 subfamilies are born on one branch of
 * the primate tree and amplify there (AluYb8 in human), every branch gets
 * its own SINE1 subfamily, derived from its parent branch's subfamily (from
 * the SINE1 consensus below the root) with 3% substitutions and one
 * insertion, a 36-48 bp tandem array of a 4-7 bp unit of its own (as mouse
 * L1 subfamilies are told apart by their 5' monomers), so that it carries
 * its ancestors' diagnostic changes plus its own. The array gives a copy a
 * local k-mer spectrum no other branch's copies have, which a small model
 * learns far sooner than a few substituted sites (with a random 16-24 bp
 * insertion instead, a 2-block d 32 Mamba stayed at chance after 300 steps
 * on 4 kb windows at 1000 copies per Mbp; with the array it reached 39%
 * test accuracy). Each
 * branch inserts subfamily_repeats young copies (0-1.5% diverged, 80% full
 * length, half reverse complemented) per Mbp of its parent, a rate per
 * branch rather than per branch length so that the short chimpanzee and
 * bonobo branches carry as much as the others. A copy of a terminal
 * branch's subfamily thus marks one species, one of an ancestral branch's
 * the species below it: what a classifier can learn from one window of one
 * species' genome (substitutions cannot be told apart without a reference).
 * At the default 64 per Mbp a window of L bases holds at least one copy of
 * its species' own subfamily with probability about 1 - exp(-64 L / 10^6):
 * 6% at L = 2^10, 23% at 2^12, 65% at 2^14 and 98.5% at 2^16. Real
 * subfamilies are far sparser (AluYb8: ~0.6 per Mbp); the default is dense
 * on purpose, so that a small experiment has something to learn.
 *
 * Every random draw comes from a stream keyed by (seed, chromosome, branch),
 * and chromosomes are simulated in parallel without shared state, so the
 * result depends on the seed and options only, never on the thread count.
 */
#ifndef MD_DATA_SIMULATE_H
#define MD_DATA_SIMULATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum {
    MD_SIM_N_SPECIES = 5,     /* human, chimpanzee, bonobo, gorilla, orangutan */
    MD_SIM_N_NODES = 9,       /* the species plus four ancestors */
    MD_SIM_N_FAMILIES = 4     /* SINE1, LINE1, SINE2, LTR1 */
};

/* The species in the order of md_sim_result_t.species, and their file names. */
extern const char *const md_sim_species_names[MD_SIM_N_SPECIES];

typedef struct md_sim_opts {
    uint64_t seed;
    int n_chroms;              /* chromosomes per species [3] */
    int64_t chrom_len;         /* bases per chromosome of the base genome [1,000,000] */
    double div_scale;          /* multiplies every target divergence [1] */
    double indel_ratio;        /* indel events per substitution [0.1] */
    double lineage_repeats;    /* new repeat copies per Mbp per 1% of branch length [10] */
    double subfamily_repeats;  /* copies of each branch's own subfamily per Mbp [64] */
    int64_t isochore_len;      /* median isochore length [300,000] */
    int gaps;                  /* N run at each chromosome's start [1] */
    int keep_ancestry;         /* fill md_sim_chrom_t.anc_pos of the species [0] */
    int keep_ancestor;         /* keep the base genome in md_sim_result_t.ancestor [0] */
} md_sim_opts_t;

void md_sim_opts_init(md_sim_opts_t *o);

typedef struct md_sim_chrom {
    char name[16];             /* chr1, chr2, ... */
    char *seq;                 /* len bases: ACGT, acgt where soft-masked, N in gaps; NUL-terminated */
    int64_t len;
    /* With keep_ancestry: the base genome coordinate each base descends
     * from, or -1 for bases inserted since (indels, new repeat copies,
     * slippage); strictly increasing over the non-negative entries. Chromosome
     * i of every species descends from chromosome i of the base genome. */
    int64_t *anc_pos;
} md_sim_chrom_t;

typedef struct md_sim_genome {
    int n_chroms;
    md_sim_chrom_t *chroms;
} md_sim_genome_t;

/* A node of the tree and the branch above it, with what the derivation
 * actually did there (summed over chromosomes). */
typedef struct md_sim_branch {
    const char *name;          /* node name: root, homininae, hominini, pan, or a species */
    int parent;                /* index into md_sim_result_t.branches; -1 for the root */
    double height;             /* substitutions per site from the node to the present */
    double length;             /* parent's height minus this node's; 0 for the root */
    int64_t substitutions, indels, repeat_insertions, slippages;
    int64_t subfamily_insertions;   /* copies of this branch's subfamily kept */
} md_sim_branch_t;

/* A segment of the base genome, for tests and reports. */
typedef struct md_sim_region {
    int chrom;
    int64_t start, end;
    double gc_target;          /* isochores: the family's GC; CpG islands: 0.65 */
} md_sim_region_t;

typedef struct md_sim_result {
    md_sim_genome_t species[MD_SIM_N_SPECIES];
    md_sim_genome_t ancestor;  /* the base genome with keep_ancestor, else empty */
    md_sim_branch_t branches[MD_SIM_N_NODES];   /* preorder: root first */
    /* Pairwise, over base-genome positions that both species still carry
     * as A, C, G or T: sites compared, sites that differ, their ratio, and
     * the target. Indexed like species; symmetric; zero on the diagonal. */
    int64_t sites[MD_SIM_N_SPECIES][MD_SIM_N_SPECIES];
    int64_t diffs[MD_SIM_N_SPECIES][MD_SIM_N_SPECIES];
    double realised[MD_SIM_N_SPECIES][MD_SIM_N_SPECIES];
    double target[MD_SIM_N_SPECIES][MD_SIM_N_SPECIES];
    /* The base genome's layout and repeat families. */
    md_sim_region_t *isochores, *cpg_islands;
    int64_t n_isochores, n_cpg_islands;
    const char *family_names[MD_SIM_N_FAMILIES];
    char *family_consensus[MD_SIM_N_FAMILIES];  /* without poly-A tails */
    char *subfamily_consensus[MD_SIM_N_NODES];  /* per branch, indexed like branches; NULL for the root */
    int64_t n_tandem_loci;
    double base_gc, base_cpg_oe, base_masked;   /* base genome GC, CpG obs/exp, masked fraction */
} md_sim_result_t;

/* Simulates the base genome and the five species into *res (which the
 * caller then frees with md_sim_result_free()). Uses OpenMP threads over
 * chromosomes. Returns 0, or -1 after one error line when an option is out
 * of range (n_chroms < 1, chrom_len < 1000 or >= 2^32, div_scale outside
 * (0, 10], indel_ratio outside [0, 1], lineage_repeats or subfamily_repeats
 * outside [0, 1000], isochore_len < 1000). */
int md_simulate_genomes(const md_sim_opts_t *opts, md_sim_result_t *res);
void md_sim_result_free(md_sim_result_t *res);

/* Writes the tree as Newick with branch lengths in substitutions per site. */
void md_sim_write_newick(const md_sim_result_t *res, FILE *fp);

/* ---- Reads from any genome ---- */

struct md_genome;

typedef struct md_readsim_opts {
    uint64_t seed;
    int64_t n_reads;
    /* Read lengths: fixed (len_min == len_max, len_sd == 0), uniform on
     * [len_min, len_max], or normal(len_mean, len_sd) rounded and redrawn
     * until >= 1 (len_sd > 0). */
    int64_t len_min, len_max;
    double len_mean, len_sd;
    double error_rate;         /* errors per source base: 70% substitutions, 15% insertions, 15% deletions */
    const char *label;         /* species label of every read; NULL: each genome's file name (see below) */
    int fastq;                 /* FASTQ (quality = the error rate's Phred score) rather than FASTA */
} md_readsim_opts_t;

void md_readsim_opts_init(md_readsim_opts_t *o);

/* Parses a --length value: "MEAN" (fixed), "MEAN,SD" (normal) or "MIN-MAX"
 * (uniform), each number with an optional k/M/G suffix, into o. 0, or -1
 * after one error line naming opt_name. */
int md_readsim_parse_length(const char *opt_name, const char *s, md_readsim_opts_t *o);

/* Samples o->n_reads reads from the loaded genomes g[0..n_genomes) and
 * writes them to fp (out_name names fp in errors). Each genome is one
 * species: its label is o->label when set, else the name of its first file
 * without folder and extensions (human.fa.gz -> human); contig names need
 * only be unique within a genome. Start positions are uniform over all
 * genomes' bases together (so genomes and contigs are chosen in proportion
 * to their length), both strands equally, and reads never overlap N or
 * leave their contig. Each read's name records its truth (see
 * md_readsim_parse_name):
 *     LABEL|CONTIG|START-END|STRAND|INDEX
 * START-END being the 1-based inclusive source span on the forward strand,
 * STRAND + or - (the read is then the reverse complement of the span), INDEX
 * the 0-based read number; the comment holds "errors=K", the number of
 * error events. Read bases are uppercase. Read i is a function of (seed, i)
 * and the genomes only. 0, or -1 after one error line (reads of the
 * requested length cannot be placed, write failure). */
int md_simulate_reads(struct md_genome *const *g, int n_genomes, const md_readsim_opts_t *o, FILE *fp,
                      const char *out_name);

/* The truth in a read name written by md_simulate_reads(): label and contig
 * are written, NUL-terminated, into the caller's buffers of label_size and
 * contig_size bytes. 0, or -1 when name is not in that form or a buffer is
 * too small (no message: callers decide whether that is an error). */
int md_readsim_parse_name(const char *name, char *label, size_t label_size, char *contig, size_t contig_size,
                          int64_t *start, int64_t *end, int *strand, int64_t *index);

#endif
