#include "util/cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

void md_common_init(md_common_opts_t *co)
{
    memset(co, 0, sizeof *co);
    co->device = "auto";
    co->seed = 1;
    co->output = "-";
}

int md_common_opt(md_common_opts_t *co, int c, const char *arg)
{
    int64_t v;
    switch (c) {
    case 't':
        if (md_parse_i64("-t/--threads", arg, 0, 4096, 0, &v) < 0) return -1;
        co->threads = (int)v;
        return 1;
    case 'x':
        if (strcmp(arg, "auto") && strcmp(arg, "cpu") && strcmp(arg, "cuda") && strncmp(arg, "cuda:", 5)) {
            md_error("option -x/--device: '%s' is not one of auto, cpu, cuda, cuda:N", arg);
            return -1;
        }
        if (strncmp(arg, "cuda:", 5) == 0 && md_parse_i64("-x/--device", arg + 5, 0, 1023, 0, &v) < 0) return -1;
        co->device = arg;
        return 1;
    case MD_OPT_SEED:
        return md_parse_u64("--seed", arg, &co->seed) < 0 ? -1 : 1;
    case 'o':
        if (!*arg) { md_error("option -o/--output: empty file name"); return -1; }
        co->output = arg;
        return 1;
    case 'q':
        md_verbose = 0;
        return 1;
    case MD_OPT_JSON:
        co->json = 1;
        return 1;
    }
    return 0;
}

int md_common_apply_threads(const md_common_opts_t *co)
{
    if (co->threads > 0) omp_set_num_threads(co->threads);
    return co->threads > 0 ? co->threads : omp_get_max_threads();
}

/* Exported by OpenBLAS's pthreads build only (it runs it before fork());
 * weak, so that other builds simply lack it. */
int blas_thread_shutdown_(void) __attribute__((weak));
void openblas_set_num_threads(int n);

void md_threads_init(void)
{
    /* One thread first: setting the count restarts a stopped pool. */
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}

int md_parse_i64(const char *name, const char *s, int64_t lo, int64_t hi, int allow_suffix, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno == ERANGE) goto bad;
    if (allow_suffix && *end) {
        long long mul = 0;
        switch (tolower((unsigned char)*end)) {
        case 'k': mul = 1000LL; break;
        case 'm': mul = 1000000LL; break;
        case 'g': mul = 1000000000LL; break;
        }
        if (!mul || end[1]) goto bad;
        if (v > INT64_MAX / mul || v < INT64_MIN / mul) goto bad;
        v *= mul;
        end++;
    }
    if (*end) goto bad;
    if (v < lo || v > hi) {
        md_error("option %s: %lld is out of range [%lld, %lld]", name, v, (long long)lo, (long long)hi);
        return -1;
    }
    *out = v;
    return 0;
bad:
    md_error("option %s: '%s' is not a valid integer", name, s);
    return -1;
}

int md_parse_u64(const char *name, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-') goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno == ERANGE) goto bad;
    *out = v;
    return 0;
bad:
    md_error("option %s: '%s' is not a valid non-negative integer", name, s);
    return -1;
}

int md_parse_double(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || isnan(v)) {
        md_error("option %s: '%s' is not a valid number", name, s);
        return -1;
    }
    if (v < lo || v > hi) {
        md_error("option %s: %g is out of range [%g, %g]", name, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int md_parse_choice(const char *name, const char *s, const char *const *choices, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, choices[i])) return i;
    char list[256] = "";
    for (int i = 0; i < n; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", choices[i]);
    }
    md_error("option %s: '%s' is not one of %s", name, s, list);
    return -1;
}

void md_report_bad_option(const char *cmd, int c, const char *argv_opt)
{
    if (c == ':')
        fprintf(stderr, "[E::%s] option '%s' needs a value; see 'mambadna %s -h'\n", cmd, argv_opt, cmd);
    else
        fprintf(stderr, "[E::%s] unrecognized option '%s'; see 'mambadna %s -h'\n", cmd, argv_opt, cmd);
}
