/* The record of `bench all` (src/cmd/bench_report.h) on fake measurements:
 * the reference tables against issue #9's text, the ratio and goal logic
 * (rates vs times and sizes, boundaries, skipped / failed / --quick cells),
 * the table's rows and count line, and the JSON record written and read
 * back. No device is touched. */
#include <jansson.h>
#include <math.h>
#include <unistd.h>

#include "cmd/bench_report.h"
#include "testutil.h"

static void check_anchors(void)
{
    /* figures typed from issue #9's tables, not from the code */
    const md_train_anchor_t *a = md_train_anchor_find("mamba", 256, 8, 1 << 20);
    CHECK(a && a->mtokens_per_s == 1.48 && a->peak_gib == 65.9 && !a->oom, "mamba 256x8 at 2^20");
    a = md_train_anchor_find("mamba", 128, 6, 16384);
    CHECK(a && a->mtokens_per_s == 4.14 && a->peak_gib == 3.3, "mamba 128x6 at 16384");
    a = md_train_anchor_find("hyena", 256, 8, 1 << 20);
    CHECK(a && a->oom, "hyena 256x8 at 2^20 ran out of memory in PyTorch");
    a = md_train_anchor_find("hyena", 128, 6, 131072);
    CHECK(a && a->mtokens_per_s == 2.02, "hyena 128x6 at 131072");
    a = md_train_anchor_find("transformer", 256, 8, 16384);
    CHECK(a && a->mtokens_per_s == 0.98, "transformer 256x8 at 16384");
    CHECK(!md_train_anchor_find("transformer", 128, 6, 131072), "no transformer figure at 131072");
    CHECK(!md_train_anchor_find("mamba", 128, 12, 1024), "no figure for the 1.4M preset");
    const double official[] = {1.478, 3.387, 36.53, 2.882, 72.04};
    for (int i = 0; i < MD_SCAN_N_SHAPES; i++)
        CHECK(md_scan_shapes[i].official_bf16_ms == official[i], "S%d official bf16 time", i + 1);
    CHECK(md_scan_shapes[2].B == 1 && md_scan_shapes[2].D == 256 && md_scan_shapes[2].L == 1 << 20, "S3 shape");
}

/* The fake suite: each cell's expected ratio and status worked out by hand. */
typedef struct {
    const char *group, *name;
    md_bench_sense_t sense;
    double ours, ref, goal;
    int runs, judged;
    md_bench_state_t state;
    double ratio;            /* NAN: none */
    const char *status, *ratio_text;
} fake_t;

static const fake_t fakes[] = {
    {"scan", "S1 bf16", MD_BENCH_LOWER_BETTER, 0.45, 1.478, 3, 0, 1, MD_BENCH_MEASURED, 3.28444, "met", "3.28x"},
    {"scan", "S3 bf16", MD_BENCH_LOWER_BETTER, 20.8, 36.53, 3, 0, 1, MD_BENCH_MEASURED, 1.75625, "NOT MET", "1.76x"},
    {"mamba", "128x6 L=1024", MD_BENCH_HIGHER_BETTER, 9.31, 4.65, 2, 0, 1, MD_BENCH_MEASURED, 2.0022, "met", "2.00x"},
    {"mamba", "128x6 L=16384", MD_BENCH_HIGHER_BETTER, 8.27, 4.14, 2, 0, 1, MD_BENCH_MEASURED, 1.9976, "NOT MET", "2.00x"},
    {"mamba", "128x6 L=2^20 peak", MD_BENCH_LOWER_BETTER, 8.2, 25.8, 3, 0, 1, MD_BENCH_MEASURED, 3.14634, "met", "3.15x"},
    {"hyena", "256x8 L=2^20", MD_BENCH_HIGHER_BETTER, 0.92, 0, 0, 1, 1, MD_BENCH_MEASURED, NAN, "met", "-"},
    {"hyena", "128x6 L=2^20", MD_BENCH_HIGHER_BETTER, 0, 1.80, 2, 0, 1, MD_BENCH_FAILED, NAN, "NOT MET", "-"},
    {"transformer", "128x6 L=1024", MD_BENCH_HIGHER_BETTER, 0, 9.0, 1, 0, 1, MD_BENCH_SKIPPED, NAN, "NOT MET", "-"},
    {"classify", "1.4M 1 kb reads", MD_BENCH_HIGHER_BETTER, 5302, 50000, 1, 0, 0, MD_BENCH_MEASURED, 0.10604,
     "not judged", "0.11x"},
    {"memory", "7M info", MD_BENCH_LOWER_BETTER, 45.5, 0, 0, 0, 1, MD_BENCH_MEASURED, NAN, "", "-"},
};
enum { N_FAKES = sizeof fakes / sizeof fakes[0], FAKES_MET = 4, FAKES_JUDGED = 8 };

static void fill(md_bench_report_t *rep)
{
    md_bench_report_init(rep);
    json_object_set_new(rep->meta, "date", json_string("2026-11-25T13:00:00Z"));
    json_object_set_new(rep->meta, "git_revision", json_string("abc1234"));
    json_object_set_new(rep->meta, "device", json_string("Fake GPU"));
    for (int i = 0; i < N_FAKES; i++) {
        const fake_t *f = &fakes[i];
        md_bench_cell_t *c = md_bench_report_add(rep, f->group, f->name, "m", f->sense);
        c->ours = f->ours, c->ref = f->ref, c->goal = f->goal, c->goal_runs = f->runs;
        c->judged = f->judged, c->state = f->state;
        if (f->runs) snprintf(c->ref_text, sizeof c->ref_text, "OOM");
        snprintf(c->note, sizeof c->note, "note %d", i);
        json_object_set_new(c->settings, "index", json_integer(i));
        json_object_set_new(c->extra, "twice", json_real(2.0 * f->ours));
    }
}

static void check_logic(const md_bench_report_t *rep)
{
    CHECK(rep->n == N_FAKES, "%d cells", rep->n);
    for (int i = 0; i < rep->n; i++) {
        const fake_t *f = &fakes[i];
        double r = md_bench_cell_ratio(&rep->cells[i]);
        if (isnan(f->ratio)) CHECK(isnan(r), "%s: no ratio, got %g", f->name, r);
        else CHECK_CLOSE(r, f->ratio, 1e-4, 0, "%s ratio", f->name);
        const char *st = md_goal_status_name(md_bench_cell_status(&rep->cells[i]));
        CHECK(!strcmp(st, f->status), "%s: status '%s', expected '%s'", f->name, st, f->status);
    }
}

/* The printed table: every cell's row in order with its figures, then the count. */
static void check_table(const md_bench_report_t *rep)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    md_bench_report_print(rep, fp);
    fclose(fp);
    CHECK(strstr(buf, "# date: 2026-11-25T13:00:00Z\n") && strstr(buf, "# git_revision: abc1234\n") &&
              strstr(buf, "# device: Fake GPU\n") && strstr(buf, "# references: issue #9"),
          "the '#' lines: %s", buf);
    const char *p = strstr(buf, "\ngroup ");
    CHECK(p != NULL, "a header line");
    for (int i = 0; p && i < N_FAKES; i++) {
        const fake_t *f = &fakes[i];
        p = strchr(p + 1, '\n');
        if (!p) break;
        char line[512];
        const char *e = strchr(p + 1, '\n');
        snprintf(line, sizeof line, "%.*s", e ? (int)(e - p - 1) : 0, p + 1);
        char note[16];
        snprintf(note, sizeof note, "note %d", i);
        CHECK(!strncmp(line, f->group, strlen(f->group)) && strstr(line, f->name) && strstr(line, note),
              "row %d names its cell: '%s'", i, line);
        char ratio[24];
        snprintf(ratio, sizeof ratio, " %s ", f->ratio_text);
        CHECK(strstr(line, ratio) != NULL, "row %d shows ratio '%s': '%s'", i, f->ratio_text, line);
        if (f->status[0]) CHECK(strstr(line, f->status) != NULL, "row %d shows '%s': '%s'", i, f->status, line);
        if (f->state == MD_BENCH_SKIPPED) CHECK(strstr(line, "skipped") != NULL, "row %d: '%s'", i, line);
        if (f->state == MD_BENCH_FAILED) CHECK(strstr(line, "failed") != NULL, "row %d: '%s'", i, line);
        if (f->runs) CHECK(strstr(line, " OOM ") && strstr(line, " runs "), "row %d: '%s'", i, line);
    }
    /* 5302 with four significant digits, 0.92 as 0.9200, goal 3 as "3x" */
    CHECK(strstr(buf, " 5302 ") && strstr(buf, " 0.9200 ") && strstr(buf, " 3x "), "number formats: %s", buf);
    char count[64];
    snprintf(count, sizeof count, "# goals met: %d of %d\n", FAKES_MET, FAKES_JUDGED);
    CHECK(strstr(buf, count) != NULL, "closing count '%s' in: %s", count, buf);
    free(buf);
}

static void check_json_cells(const json_t *root)
{
    CHECK(!strcmp(json_string_value(json_object_get(root, "git_revision")), "abc1234"), "git_revision kept");
    CHECK(json_is_string(json_object_get(root, "anchors")), "anchors' source");
    CHECK(json_integer_value(json_object_get(root, "goals_met")) == FAKES_MET, "goals_met");
    CHECK(json_integer_value(json_object_get(root, "goals_judged")) == FAKES_JUDGED, "goals_judged");
    const json_t *cells = json_object_get(root, "cells");
    CHECK(json_array_size(cells) == N_FAKES, "%zu cells in the JSON", json_array_size(cells));
    for (size_t i = 0; i < json_array_size(cells) && i < N_FAKES; i++) {
        const fake_t *f = &fakes[i];
        const json_t *c = json_array_get(cells, i);
        CHECK(!strcmp(json_string_value(json_object_get(c, "name")), f->name), "cell %zu name", i);
        const json_t *v = json_object_get(c, "value"), *r = json_object_get(c, "ratio");
        if (f->state == MD_BENCH_MEASURED) CHECK(json_real_value(v) == f->ours, "cell %zu value", i);
        else CHECK(json_is_null(v), "cell %zu: no value when not measured", i);
        if (isnan(f->ratio)) CHECK(json_is_null(r), "cell %zu: null ratio", i);
        else CHECK_CLOSE(json_real_value(r), f->ratio, 1e-4, 0, "cell %zu ratio", i);
        const json_t *st = json_object_get(c, "status");
        if (f->status[0]) CHECK(st && !strcmp(json_string_value(st), f->status), "cell %zu status", i);
        else CHECK(json_is_null(st), "cell %zu: no goal, null status", i);
        CHECK(json_integer_value(json_object_get(json_object_get(c, "settings"), "index")) == (json_int_t)i,
              "cell %zu settings", i);
        CHECK(json_real_value(json_object_get(json_object_get(c, "measurements"), "twice")) == 2.0 * f->ours,
              "cell %zu measurements", i);
        CHECK(json_is_boolean(json_object_get(c, "higher_is_better")), "cell %zu sense", i);
    }
}

static void check_json(const md_bench_report_t *rep)
{
    json_t *root = md_bench_report_json(rep);
    check_json_cells(root);
    json_decref(root);

    char path[512];
    snprintf(path, sizeof path, "%s/bench.json", md_test_tmpdir());
    CHECK(md_bench_report_write(rep, path) == 0, "write %s", path);
    json_error_t err;
    json_t *back = json_load_file(path, 0, &err);
    CHECK(back != NULL, "read back: %s", err.text);
    if (back) check_json_cells(back);
    json_decref(back);
    unlink(path);

    snprintf(path, sizeof path, "%s/no/such/folder/bench.json", md_test_tmpdir());
    fprintf(stderr, "(an error line about %s is expected)\n", path);
    CHECK(md_bench_report_write(rep, path) < 0, "an unwritable path fails");
    CHECK(access(path, F_OK) != 0, "and leaves no file");
    rmdir(md_test_tmpdir());
}

static void check_driver_line(void)
{
    char v[64] = "none";
    CHECK(md_bench_driver_from_proc("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 "
                                    "01:15:15 UTC 2023\n", v, sizeof v) == 0 && !strcmp(v, "535.104.05"),
          "proprietary module: '%s'", v);
    CHECK(md_bench_driver_from_proc("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release "
                                    "Build  (dvs-builder@U22)  Thu Oct 30 2025\n", v, sizeof v) == 0 &&
              !strcmp(v, "580.159.04"),
          "open module: '%s'", v);
    snprintf(v, sizeof v, "none");
    CHECK(md_bench_driver_from_proc("NVRM version: NVIDIA UNIX Kernel Module for x86_64\n", v, sizeof v) < 0 &&
              !strcmp(v, "none"),
          "no version: '%s'", v);
    CHECK(md_bench_driver_from_proc("GCC version: gcc 12.2.0\n", v, sizeof v) < 0, "not the NVRM line");
}

static void check_median(void)
{
    double odd[] = {5, 1, 4}, even[] = {8, 2, 6, 4};
    CHECK(md_bench_median(odd, 3) == 4 && odd[0] == 1 && odd[2] == 5, "median of 3, sorted");
    CHECK(md_bench_median(even, 4) == 5 && even[0] == 2, "median of 4 is the middle pair's mean");
    double one[] = {7};
    CHECK(md_bench_median(one, 1) == 7, "median of 1");
}

int main(void)
{
    check_driver_line();
    check_median();
    check_anchors();
    md_bench_report_t rep;
    fill(&rep);
    check_logic(&rep);
    check_table(&rep);
    check_json(&rep);
    md_bench_report_free(&rep);
    return md_test_done();
}
