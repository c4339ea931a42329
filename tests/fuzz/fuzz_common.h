/* What every fuzz target in tests/fuzz shares.
 *
 * A target is one LLVMFuzzerTestOneInput() over one parser. The same source
 * builds two ways: with -DMAMBADNA_FUZZ=ON (clang) it links libFuzzer; in
 * every other build it links replay_main.c, and ctest replays the seed
 * corpus and the regression inputs through it (tests/fuzz/CMakeLists.txt).
 *
 * Parsers take paths, so the input is written to files in a private
 * scratch folder (on /dev/shm when there is one).
 *
 * The oracle, besides the sanitizers: a parser that refuses its input must
 * print exactly one [E::...] line, and one that accepts it none. stderr is
 * captured for the duration of each run to count them; a breach prints the
 * captured log and aborts, which both drivers report as a failure.
 */
#ifndef MD_TESTS_FUZZ_COMMON_H
#define MD_TESTS_FUZZ_COMMON_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A target's own invariant: a breach aborts, which libFuzzer reports. */
#define FZ_CHECK(cond) do { \
    if (!(cond)) { fprintf(stderr, "%s:%d: %s fails\n", __FILE__, __LINE__, #cond); abort(); } \
} while (0)

static char fz_dir[64];

/* Empties the scratch folder (targets may leave .fai/.gzi beside inputs). */
static inline void fz_clean(void)
{
    DIR *d = opendir(fz_dir);
    if (!d) return;
    struct dirent *e;
    char p[320];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        snprintf(p, sizeof p, "%s/%s", fz_dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static inline void fz_remove_dir(void)
{
    fz_clean();
    rmdir(fz_dir);
}

/* The scratch folder, made on first use and removed at exit. */
static inline const char *fz_tmpdir(void)
{
    if (!fz_dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fz_dir, sizeof fz_dir, "%s/mdfuzz.XXXXXX", base);
        if (!mkdtemp(fz_dir)) { perror("mkdtemp"); abort(); }
        atexit(fz_remove_dir);
    }
    return fz_dir;
}

/* Writes n bytes to NAME in the scratch folder; returns the path in buf. */
static inline const char *fz_write(const char *name, const void *data, size_t n, char *buf, size_t buf_size)
{
    snprintf(buf, buf_size, "%s/%s", fz_tmpdir(), name);
    FILE *fp = fopen(buf, "wb");
    if (!fp || (n && fwrite(data, 1, n, fp) != n) || fclose(fp) != 0) { perror(buf); abort(); }
    return buf;
}

/* ---- the one-error-line oracle ---- */

static FILE *fz_saved_stderr;
static char *fz_log;
static size_t fz_log_size;

static inline void fz_log_begin(void)
{
    fz_saved_stderr = stderr;
    FILE *m = open_memstream(&fz_log, &fz_log_size);
    if (!m) { perror("open_memstream"); abort(); }
    stderr = m;
}

/* Lines of the captured log that start with prefix. */
static inline int fz_count_lines(const char *log, const char *prefix)
{
    int n = 0;
    size_t k = strlen(prefix);
    for (const char *p = log; p && *p;) {
        if (!strncmp(p, prefix, k)) n++;
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    return n;
}

/* Ends the capture of one parser call; failed: the call reported failure. */
static inline void fz_log_end(int failed, const char *what)
{
    fclose(stderr);
    stderr = fz_saved_stderr;
    int n_err = fz_count_lines(fz_log, "[E::");
    if (failed ? n_err != 1 : n_err != 0) {
        fprintf(stderr, "fuzz oracle: %s %s with %d error lines (want %d). Its log:\n%s\n", what,
                failed ? "failed" : "succeeded", n_err, failed ? 1 : 0, fz_log ? fz_log : "");
        abort();
    }
    free(fz_log);
    fz_log = NULL;
    fz_log_size = 0;
}

/* A little-endian integer from the input's first bytes, for targets that
 * take parameters (an offset, a column) as well as a file. */
static inline uint32_t fz_take_u8(const uint8_t **data, size_t *size)
{
    if (*size == 0) return 0;
    uint32_t v = (*data)[0];
    (*data)++;
    (*size)--;
    return v;
}

#endif
