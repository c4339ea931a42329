#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "build_info.h"

int md_verbose = 1;

static double start_time;
static char *command_line;

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
    size_t n = 1;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 1;
    free(command_line);
    command_line = malloc(n);
    if (!command_line) return;
    command_line[0] = 0;
    for (int i = 0; i < argc; i++) {
        if (i) strcat(command_line, " ");
        strcat(command_line, argv[i]);
    }
}

void md_log_finish(void)
{
    if (!md_verbose) return;
    fprintf(stderr, "[M::main] Version: %s\n", MD_VERSION);
    fprintf(stderr, "[M::main] CMD: %s\n", command_line ? command_line : "");
    fprintf(stderr, "[M::main] Real time: %.3f sec; CPU: %.3f sec; Peak RSS: %.3f GB\n",
            md_realtime() - start_time, md_cputime(), md_peak_rss() / 1073741824.0);
}
