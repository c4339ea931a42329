/* The record of `mambadna bench all`: measured cells beside the reference
 * figures they are judged against, printed as one table and written as JSON.
 *
 * Nothing here touches a device: the suite (bench_suite.c) fills the cells,
 * this module only holds the reference tables, judges each cell against its
 * goal and formats the result, so it is unit-tested on fake measurements
 * (tests/test_bench_report.c).
 *
 * A cell's ratio is always "times better than the reference": ours / ref
 * for a rate (tokens/s, reads/s), ref / ours for a time or a size (ms,
 * GiB). Its goal is the smallest ratio that meets it (3 for "3x faster than
 * the official scan", 3 for "at most a third of PyTorch's memory", 1 for
 * "at least torch.compile's throughput").
 */
#ifndef MD_CMD_BENCH_REPORT_H
#define MD_CMD_BENCH_REPORT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

/* Where the reference figures come from, stated in the table and the JSON. */
#define MD_BENCH_ANCHOR_SOURCE                                                                                   \
    "issue #9: PyTorch 2.11 + the official Mamba kernels (mamba_ssm), bf16 autocast, fused AdamW, "           \
    "measured on the same H200; issue #3 for the CPU figure"

/* The selective-scan shapes of `bench scan` and the official Mamba kernel's
 * fwd+bwd on an H200 (issue #9's anchors; f32 from issue #4). */
typedef struct md_scan_shape {
    const char *name;
    int64_t B, D, L;
    double official_bf16_ms, official_f32_ms;
} md_scan_shape_t;

enum { MD_SCAN_N_SHAPES = 5, MD_SCAN_BENCH_STATE = 16 };
extern const md_scan_shape_t md_scan_shapes[MD_SCAN_N_SHAPES];

/* One cell of issue #9's training table: PyTorch's tokens/s in millions
 * and its peak GiB (0 where the issue gives none); oom: PyTorch ran out of
 * memory. */
typedef struct md_train_anchor {
    const char *arch;          /* "mamba", "hyena", "transformer" */
    int64_t d_model, n_layer, len;
    double mtokens_per_s, peak_gib;
    int oom;
} md_train_anchor_t;

/* The anchor of (arch, d_model, n_layer, len), or NULL when the issue has
 * none for it. */
const md_train_anchor_t *md_train_anchor_find(const char *arch, int64_t d_model, int64_t n_layer, int64_t len);

typedef enum {
    MD_BENCH_HIGHER_BETTER = 0,   /* a rate: ratio = ours / reference */
    MD_BENCH_LOWER_BETTER = 1,    /* a time or a size: ratio = reference / ours */
} md_bench_sense_t;

typedef enum {
    MD_BENCH_MEASURED = 0,
    MD_BENCH_SKIPPED,             /* not run (time budget); note says why */
    MD_BENCH_FAILED,              /* ran and failed (out of memory, say); note says how */
} md_bench_state_t;

typedef struct md_bench_cell {
    char group[16];               /* scan, mamba, hyena, transformer, memory, classify, cpu */
    char name[48];                /* "S1 bf16", "128x6 L=1024" */
    char metric[24];              /* "fwd+bwd ms", "Mtokens/s", "peak GiB", "reads/s" */
    md_bench_sense_t sense;
    md_bench_state_t state;
    double ours;                  /* the measurement (meaningful when MEASURED) */
    double ref;                   /* the reference; 0 = none */
    char ref_text[24];            /* shown instead of a number when ref is 0 ("OOM"), may be empty */
    double goal;                  /* the ratio that meets the goal; 0 = no goal */
    int goal_runs;                /* the goal is only that it runs (the reference could not) */
    int judged;                   /* 0 in --quick runs: the shapes are not the reference's */
    char note[128];               /* one line for the table: floor multiple, peak memory, settings */
    json_t *settings;             /* owned: what was run (shape, batch, precision, steps, ...) */
    json_t *extra;                /* owned: every other figure of the measurement */
} md_bench_cell_t;

typedef struct md_bench_report {
    md_bench_cell_t *cells;
    int n, cap;
    json_t *meta;                 /* owned: date, device, git revision, command, options */
} md_bench_report_t;

void md_bench_report_init(md_bench_report_t *rep);
void md_bench_report_free(md_bench_report_t *rep);

/* Appends a cell (zeroed, state MEASURED, settings and extra empty
 * objects) and returns it; valid until the next append. */
md_bench_cell_t *md_bench_report_add(md_bench_report_t *rep, const char *group, const char *name,
                                     const char *metric, md_bench_sense_t sense);

/* The cell's ratio to its reference (see the top of this file); NAN when
 * it has no numeric reference or was not measured. */
double md_bench_cell_ratio(const md_bench_cell_t *c);

typedef enum { MD_GOAL_NONE = 0, MD_GOAL_MET, MD_GOAL_NOT_MET, MD_GOAL_NOT_JUDGED } md_goal_status_t;

/* MET when the ratio reaches the goal (or, for goal_runs, the cell was
 * measured at all); NOT_MET otherwise, a skipped or failed cell included;
 * NOT_JUDGED for cells of a --quick run; NONE when the cell has no goal. */
md_goal_status_t md_bench_cell_status(const md_bench_cell_t *c);
const char *md_goal_status_name(md_goal_status_t s);   /* "", "met", "NOT MET", "not judged" */

/* The table: '#' lines with meta's date, git_revision, device, driver,
 * cuda and mambadna.command (those present), the references' source, a
 * header, one aligned row per cell, and a closing line counting the goals
 * met of those judged. */
void md_bench_report_print(const md_bench_report_t *rep, FILE *fp);

/* The whole record as a new JSON object: meta's keys, then "anchors"
 * (the source) and "cells" (each with its ratio, goal and status), then
 * "goals_met" / "goals_judged". */
json_t *md_bench_report_json(const md_bench_report_t *rep);

/* Writes md_bench_report_json to path through md_outfile (whole or not at
 * all; "-" is stdout). Returns 0, or -1 after one error line. */
int md_bench_report_write(const md_bench_report_t *rep, const char *path);

/* Sorts v[0..n) ascending in place and returns its median (the mean of the
 * middle two for even n); n >= 1. */
double md_bench_median(double *v, int n);

/* The driver's release ("580.159.04") from the first line of
 * /proc/driver/nvidia/version, which reads "NVRM version: NVIDIA UNIX
 * x86_64 Kernel Module  535.104.05  ..." or, for the open module, "...
 * Open Kernel Module for x86_64  580.159.04  Release Build ...": the first
 * word after "Kernel Module" that starts with a digit and holds a '.'.
 * Returns 0, or -1 (buf untouched) when the line has none. */
int md_bench_driver_from_proc(const char *line, char *buf, size_t n);

#endif
