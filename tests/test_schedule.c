/* Learning-rate and sequence-length schedules, accumulation, and the SVG
 * plot's ticks and file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_info.h"
#include "testutil.h"
#include "train/metrics.h"
#include "train/schedule.h"
#include "train/svgplot.h"
#include "util/log.h"

static int near(double a, double b) { return fabs(a - b) <= 1e-12 * (1 + fabs(b)); }

static void test_lr(void)
{
    md_lr_schedule_t s = {.lr = 1e-3, .lr_min = 1e-4, .warmup_steps = 10, .total_steps = 110};
    CHECK(near(md_lr_at(&s, 0), 1e-4), "first warmup step %g", md_lr_at(&s, 0));
    CHECK(near(md_lr_at(&s, 4), 5e-4), "mid warmup %g", md_lr_at(&s, 4));
    CHECK(near(md_lr_at(&s, 9), 1e-3), "end of warmup %g", md_lr_at(&s, 9));
    CHECK(near(md_lr_at(&s, 10), 1e-3), "start of decay %g", md_lr_at(&s, 10));
    /* Halfway through the cosine: midway between peak and floor. */
    CHECK(near(md_lr_at(&s, 60), 5.5e-4), "cosine midpoint %g", md_lr_at(&s, 60));
    CHECK(near(md_lr_at(&s, 110), 1e-4), "floor %g", md_lr_at(&s, 110));
    CHECK(near(md_lr_at(&s, 500), 1e-4), "past the end %g", md_lr_at(&s, 500));
    double prev = INFINITY;
    int mono = 1;
    for (int64_t k = 10; k <= 110; k++) {
        double v = md_lr_at(&s, k);
        mono &= v <= prev;
        prev = v;
    }
    CHECK(mono, "cosine not monotone");
    md_lr_schedule_t nw = {.lr = 2, .lr_min = 0, .warmup_steps = 0, .total_steps = 4};
    CHECK(near(md_lr_at(&nw, 0), 2), "no warmup starts at the peak");
    CHECK(near(md_lr_at(&nw, 2), 1), "no warmup midpoint %g", md_lr_at(&nw, 2));
}

static void test_seq(void)
{
    md_seq_schedule_t s = {.target_len = 8192, .start_len = 1024, .stage_steps = 100};
    CHECK(md_seq_n_stages(&s) == 4, "%d stages", md_seq_n_stages(&s));
    CHECK(md_seq_len_at(&s, 0) == 1024 && md_seq_len_at(&s, 99) == 1024, "stage 0");
    CHECK(md_seq_len_at(&s, 100) == 2048 && md_seq_len_at(&s, 250) == 4096, "stages 1, 2");
    CHECK(md_seq_len_at(&s, 300) == 8192 && md_seq_len_at(&s, 100000) == 8192, "final stage");
    /* Tokens per step stay constant: batch x len is the same at every stage. */
    for (int64_t st = 0; st < 400; st += 50)
        CHECK(md_seq_batch_at(&s, 4, st) * md_seq_len_at(&s, st) == 4 * 8192, "tokens at step %lld",
              (long long)st);
    md_seq_schedule_t off = {.target_len = 1000, .start_len = 1000, .stage_steps = 100};
    CHECK(md_seq_len_at(&off, 0) == 1000 && md_seq_n_stages(&off) == 1, "no warmup");
    md_seq_schedule_t odd = {.target_len = 3000, .start_len = 1024, .stage_steps = 10};
    CHECK(md_seq_len_at(&odd, 10) == 2048 && md_seq_len_at(&odd, 20) == 3000 && md_seq_n_stages(&odd) == 3,
          "target not a power of two");
    CHECK(md_accum_steps(8192, 2, 1024) == 4, "accumulation");
    CHECK(md_accum_steps(8192, 2, 4096) == 1, "one micro-batch");
    CHECK(md_accum_steps(9000, 2, 1024) == 5, "rounds up");
}

static void test_ticks(void)
{
    double t[16], step;
    int n = md_nice_ticks(0.13, 0.97, 8, t, &step);
    CHECK(n >= 4 && n <= 8, "%d ticks", n);
    CHECK(near(step, 0.1) || near(step, 0.2), "step %g", step);
    for (int i = 0; i < n; i++) CHECK(t[i] >= 0.13 - 1e-12 && t[i] <= 0.97 + 1e-12, "tick %g out of range", t[i]);
    n = md_nice_ticks(0, 12345, 8, t, &step);
    CHECK(near(step, 2000) && t[0] == 0 && n == 7, "large range: step %g, %d ticks", step, n);
}

static int file_contains(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

/* Lines of a TSV, '#' provenance lines apart (their count in *n_comment). */
static int count_lines(const char *path, int *n_comment)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    int n = 0, c, at_start = 1, comment = 0;
    *n_comment = 0;
    while ((c = fgetc(fp)) != EOF) {
        if (at_start) comment = c == '#';
        at_start = c == '\n';
        n += at_start && !comment;
        *n_comment += at_start && comment;
    }
    fclose(fp);
    return n;
}

static void test_metrics(void)
{
    char tsv[512];
    snprintf(tsv, sizeof tsv, "%s/run.tsv", md_test_tmpdir());
    md_metrics_t *m = md_metrics_open(tsv, -1, "test <run> & more");
    CHECK(m != NULL, "open");
    if (!m) return;
    md_metrics_set_baseline(m, 1.95, "order-2 Markov");
    for (int s = 1; s <= 20; s++) {
        md_metrics_row_t r = {s, s * 1000, 1024, 1e-3, 1.4 - 0.01 * s, 0.5, 1234.5, s % 5 == 0 ? 1.3 : NAN};
        CHECK(md_metrics_append(m, &r) == 0, "append");
    }
    md_metrics_close(m);
    int n_comment;
    CHECK(count_lines(tsv, &n_comment) == 21, "%d lines", count_lines(tsv, &n_comment));
    /* no command line is recorded in a unit test: the version line alone */
    CHECK(n_comment == 1 && file_contains(tsv, "# mambadna " MD_VERSION "\nstep\t"), "provenance above the columns");
    char *svg = md_metrics_svg_path(tsv);
    CHECK(!strcmp(svg + strlen(svg) - 8, "/run.svg"), "svg path %s", svg);
    CHECK(file_contains(svg, "</svg>"), "svg complete");
    CHECK(file_contains(svg, "<metadata>mambadna " MD_VERSION "</metadata>"), "provenance in the SVG");
    CHECK(file_contains(svg, "&lt;run&gt; &amp; more"), "title escaped");
    CHECK(file_contains(svg, "<polyline"), "curves drawn");
    CHECK(file_contains(svg, "order-2 Markov"), "baseline drawn");
    CHECK(file_contains(tsv, "\t1.300000\t3.669297\t1.875504\n"), "validation columns (loss, ppl, bits)");
    /* Resuming at step 10 keeps rows 1..10 and drops the rest. */
    m = md_metrics_open(tsv, 10, "resumed");
    CHECK(m != NULL, "reopen");
    md_metrics_close(m);
    CHECK(count_lines(tsv, &n_comment) == 11, "%d lines after resume at 10", count_lines(tsv, &n_comment));
    CHECK(n_comment == 1, "%d provenance lines after resume", n_comment);
    /* A file that is not ours is refused on resume, not overwritten. */
    FILE *fp = fopen(tsv, "w");
    fputs("something else entirely\n", fp);
    fclose(fp);
    md_verbose = 0;
    m = md_metrics_open(tsv, 10, "x");
    CHECK(m == NULL, "foreign file accepted");
    CHECK(file_contains(tsv, "something else entirely"), "foreign file overwritten");
    free(svg);
}

int main(void)
{
    md_verbose = 0;
    test_lr();
    test_seq();
    test_ticks();
    test_metrics();
    if (!md_test_failures) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", md_test_tmpdir());
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", md_test_tmpdir());
    }
    return md_test_done();
}
