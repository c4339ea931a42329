#include "util/log.h"

#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

#include "build_info.h"
#include "util/provenance.h"

int md_verbose = 1;

static double start_time;

void md_log_msg(char level, const char *func, const char *fmt, ...)
{
    if (level == 'M' && !md_verbose) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%c::%s] ", level, func);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

double md_realtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double md_cputime(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_stime.tv_sec + 1e-6 * (r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

long long md_peak_rss(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (long long)r.ru_maxrss * 1024;   /* Linux reports KiB */
}

void md_log_start(int argc, char **argv)
{
    start_time = md_realtime();
    md_provenance_record(argc, argv);
}

void md_log_finish(void)
{
    if (!md_verbose) return;
    fprintf(stderr, "[M::main] Version: %s\n", MD_VERSION);
    fprintf(stderr, "[M::main] CMD: %s\n", md_provenance_command() ? md_provenance_command() : "");
    fprintf(stderr, "[M::main] Real time: %.3f sec; CPU: %.3f sec; Peak RSS: %.3f GB\n",
            md_realtime() - start_time, md_cputime(), md_peak_rss() / 1073741824.0);
}
