#include "train/progress.h"

#include <stdio.h>
#include <unistd.h>

#include "util/log.h"

void md_format_duration(char *buf, int n, double s)
{
    if (!(s >= 0) || s > 1e9) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

void md_progress_init(md_progress_t *p, int64_t first_step)
{
    p->active = md_verbose && isatty(STDERR_FILENO);
    p->drawn = 0;
    p->t_start = p->t_last = md_realtime();
    p->step0 = first_step;
}

void md_progress_update(md_progress_t *p, int64_t step, int64_t total, double loss, double tokens_per_s)
{
    if (!p->active) return;
    double now = md_realtime();
    if (step < total && now - p->t_last < 0.2 && p->drawn) return;
    p->t_last = now;
    double rate = (now - p->t_start) / (double)(step - p->step0 > 0 ? step - p->step0 : 1);
    char eta[32];
    md_format_duration(eta, sizeof eta, rate * (double)(total - step));
    fprintf(stderr, "\r[step %lld/%lld] loss %.4f  %.0f tok/s  ETA %s\033[K", (long long)step, (long long)total,
            loss, tokens_per_s, eta);
    fflush(stderr);
    p->drawn = 1;
}

void md_progress_clear(md_progress_t *p)
{
    if (!p->active || !p->drawn) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->drawn = 0;
}
