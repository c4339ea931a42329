/* Logging in the minimap2 style: "[M::func] message" on stderr.
 *
 * M is an ordinary message (silenced by -q), W a warning and E an error
 * (never silenced). A user-caused failure is reported with exactly one
 * md_error() line naming the file, record or option and what is wrong;
 * the caller then unwinds and the command exits with status 1.
 */
#ifndef MD_UTIL_LOG_H
#define MD_UTIL_LOG_H

#include <stdarg.h>

/* Set by -q/--quiet: drops M lines, keeps W and E. */
extern int md_verbose;

void md_log_msg(char level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define md_info(...)  md_log_msg('M', __func__, __VA_ARGS__)
#define md_warn(...)  md_log_msg('W', __func__, __VA_ARGS__)
#define md_error(...) md_log_msg('E', __func__, __VA_ARGS__)

/* Records the start time and command line for md_log_finish(). */
void md_log_start(int argc, char **argv);

/* The closing lines: version, command line, real and CPU time, peak RSS. */
void md_log_finish(void);

/* Seconds since an arbitrary epoch (monotonic) and CPU seconds used. */
double md_realtime(void);
double md_cputime(void);
/* Peak resident set size of this process in bytes. */
long long md_peak_rss(void);

#endif
