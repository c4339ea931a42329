/* Option parsing shared by every subcommand.
 *
 * Each command builds its getopt_long table from MD_COMMON_SHORTOPTS and
 * MD_COMMON_LONGOPTS plus its own entries, and hands every option it does
 * not know itself to md_common_opt(). Numbers are parsed strictly: a value
 * that is not entirely a number, or is out of range, is an error naming the
 * option.
 */
#ifndef MD_UTIL_CLI_H
#define MD_UTIL_CLI_H

#include <getopt.h>
#include <stdint.h>

typedef struct md_common_opts {
    int threads;            /* -t/--threads; 0 means all available cores */
    const char *device;     /* -x/--device: auto, cpu, cuda, cuda:N */
    uint64_t seed;          /* --seed */
    const char *output;     /* -o/--output; "-" is stdout */
    int json;               /* --json */
} md_common_opts_t;

/* Long-only options take codes above any character. */
enum {
    MD_OPT_SEED = 0x100,
    MD_OPT_JSON,
    MD_OPT_VERSION,
    MD_OPT_FIRST_COMMAND_SPECIFIC = 0x200   /* commands number their own from here */
};

#define MD_COMMON_SHORTOPTS "t:x:o:qh"
#define MD_COMMON_LONGOPTS \
    {"threads", required_argument, 0, 't'}, \
    {"device", required_argument, 0, 'x'}, \
    {"seed", required_argument, 0, MD_OPT_SEED}, \
    {"output", required_argument, 0, 'o'}, \
    {"quiet", no_argument, 0, 'q'}, \
    {"json", no_argument, 0, MD_OPT_JSON}, \
    {"help", no_argument, 0, 'h'}

/* The help text for the common options, for each command's usage. */
#define MD_COMMON_HELP \
    "  -t, --threads INT   worker threads (0 = all cores) [0]\n" \
    "  -x, --device STR    auto, cpu, cuda or cuda:N [auto]\n" \
    "      --seed INT      random seed [1]\n" \
    "  -o, --output FILE   output file, - for stdout [-]\n" \
    "  -q, --quiet         only warnings and errors on stderr\n" \
    "      --json          machine-readable summary where supported\n" \
    "  -h, --help          this help\n"

void md_common_init(md_common_opts_t *co);

/* Handles option c if it is a common one. Returns 1 when handled, 0 when c is
 * not a common option, -1 after one error line when its value is bad. 'h' is
 * not handled here: each command prints its own usage. */
int md_common_opt(md_common_opts_t *co, int c, const char *arg);

/* Applies -t to OpenMP and returns the thread count in effect. */
int md_common_apply_threads(const md_common_opts_t *co);

/* Called once at start-up, so that -t N means N threads in the process and
 * no more: the pthreads build of OpenBLAS (Debian's default) starts a pool
 * of one thread per core when it is loaded, before main(), although we only
 * ever call it single-threaded (src/backend/ops.h); this stops that pool.
 * A BLAS call asking for more threads later (a benchmark) restarts it. */
void md_threads_init(void);

/* Strict number parsing for option values. name is how the option is shown
 * in the error ("-L", "--max-n"). Integers accept k/m/g suffixes (powers of
 * 1000, as bp counts usually are) when allow_suffix is set. Return 0, or -1
 * after one error line. */
int md_parse_i64(const char *name, const char *s, int64_t lo, int64_t hi, int allow_suffix, int64_t *out);
int md_parse_u64(const char *name, const char *s, uint64_t *out);
int md_parse_double(const char *name, const char *s, double lo, double hi, double *out);
/* The index of s among the n choices, or -1 after one error line listing
 * them ("option --pass: 'x' is not one of auto, chunked, whole"). */
int md_parse_choice(const char *name, const char *s, const char *const *choices, int n);

/* Prints "[E::cmd] unrecognized option or missing argument" style lines for
 * getopt's '?' / ':' returns; getopt itself is silenced via opterr = 0. */
void md_report_bad_option(const char *cmd, int optopt_c, const char *argv_opt);

#endif
