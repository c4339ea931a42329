/* The progress display: one line on stderr, redrawn in place with '\r',
 * only when stderr is a terminal and messages are on (not -q). Otherwise
 * nothing is drawn and the loop's md_info lines are the record. */
#ifndef MD_TRAIN_PROGRESS_H
#define MD_TRAIN_PROGRESS_H

#include <stdint.h>

typedef struct md_progress {
    int active;              /* stderr is a terminal */
    int drawn;               /* a line is on screen, not yet ended */
    double t_start, t_last;
    int64_t step0;           /* the step the timing started from (resume) */
} md_progress_t;

void md_progress_init(md_progress_t *p, int64_t first_step);
/* Redraws "step s/total  loss x  N tok/s  ETA" at most ~5 times a second. */
void md_progress_update(md_progress_t *p, int64_t step, int64_t total, double loss, double tokens_per_s);
/* Ends the line, so the next log line starts clean; call before md_info. */
void md_progress_clear(md_progress_t *p);

/* "1h02m", "4m05s", "12s". */
void md_format_duration(char *buf, int n, double seconds);

#endif
