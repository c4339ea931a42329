#include "train/trainguard.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ops.h"

static volatile sig_atomic_t stop_signal;
static int installed;
static struct sigaction old_int, old_term, old_xfsz;

static void on_stop_signal(int sig)
{
    if (stop_signal) {
        /* The second signal: its default action, now. */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_signal = sig;
}

void md_train_catch_signals(void)
{
    if (installed) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;   /* a save under way goes on undisturbed */
    stop_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGXFSZ, &sa, &old_xfsz);
    installed = 1;
}

void md_train_release_signals(void)
{
    if (!installed) return;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGXFSZ, &old_xfsz, NULL);
    installed = 0;
}

int md_train_stop_signal(void) { return stop_signal; }

const char *md_train_signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
}

int md_train_interrupted_status(void) { return 128 + (stop_signal ? stop_signal : SIGTERM); }

int md_train_step_poisoned(int64_t step1)
{
    const char *p = getenv("MD_TEST_POISON_STEPS");
    while (p && *p) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p) return 0;
        if (v == step1) return 1;
        if (*end != ',') return 0;
        p = end + 1;
    }
    return 0;
}

void md_train_poison_gradient(md_model_t *m, int64_t step1)
{
    if (!md_train_step_poisoned(step1)) return;
    const md_backend_t *be = md_model_backend(m);
    md_tensor_t g = md_model_grad_buffer(m);
    if (g.dtype == MD_DTYPE_F64) {
        double nan64 = NAN;
        be->copy(be, g.data, &nan64, sizeof nan64, MD_COPY_H2D);
    } else {
        float nan32 = NAN;
        be->copy(be, g.data, &nan32, sizeof nan32, MD_COPY_H2D);
    }
}
