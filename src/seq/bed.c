#include "seq/bed.h"

#include <ctype.h>
#include <errno.h>
#include <htslib/khash_str2int.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "seq/limits.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Enough columns to reach any split column a user would name. */
enum { BED_MAX_COLS = 64 };

typedef struct {
    char **names;
    int n;
    size_t cap;
    void *index;       /* name -> position in names (keys point into names) */
} name_table_t;

static int name_table_id(name_table_t *t, const char *name)
{
    int id;
    if (khash_str2int_get(t->index, name, &id) == 0) return id;
    MD_GROW(t->names, t->cap, (size_t)t->n + 1);
    t->names[t->n] = md_strdup(name);
    khash_str2int_set(t->index, t->names[t->n], t->n);
    return t->n++;
}

/* Splits line in place into at most BED_MAX_COLS columns; returns the count. */
static int split_columns(char *line, char **cols)
{
    int n = 0;
    if (strchr(line, '\t')) {
        char *p = line;
        for (;;) {
            if (n < BED_MAX_COLS) cols[n] = p;
            n++;
            char *tab = strchr(p, '\t');
            if (!tab) break;
            *tab = 0;
            p = tab + 1;
        }
    } else {
        char *p = line;
        for (;;) {
            while (*p == ' ') p++;
            if (!*p) break;
            if (n < BED_MAX_COLS) cols[n] = p;
            n++;
            while (*p && *p != ' ') p++;
            if (!*p) break;
            *p++ = 0;
        }
    }
    return n < BED_MAX_COLS ? n : BED_MAX_COLS;
}

static int parse_coord(const char *s, int64_t *out)
{
    if (!isdigit((unsigned char)*s)) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno == ERANGE) return -1;
    *out = v;
    return 0;
}

static int is_header_line(const char *line)
{
    return line[0] == '#' || (strncmp(line, "track", 5) == 0 && (line[5] == 0 || isspace((unsigned char)line[5]))) ||
           (strncmp(line, "browser", 7) == 0 && (line[7] == 0 || isspace((unsigned char)line[7])));
}

/* Reads one line of up to MD_MAX_LINE_BYTES into *buf (without the newline
 * or a CR). Returns its length, -1 at end of file, -2 on a read error, -3
 * for a longer line (not stored whole). */
static int64_t read_line(gzFile fp, char **buf, size_t *cap)
{
    size_t len = 0;
    if (*cap < 256) { *cap = 256; *buf = md_realloc(*buf, *cap); }
    for (;;) {
        if (!gzgets(fp, *buf + len, (int)(*cap - len))) {
            int err;
            gzerror(fp, &err);
            if (err != Z_OK) return -2;   /* a truncated gzip stream reads as Z_BUF_ERROR */
            if (len == 0) return -1;
            break;
        }
        len += strlen(*buf + len);
        if (len > 0 && (*buf)[len - 1] == '\n') { (*buf)[--len] = 0; break; }
        if (len + 1 < *cap) {          /* stopped short of the buffer's end: end of file, or a truncated one */
            int err;
            gzerror(fp, &err);
            if (err != Z_OK) return -2;
            break;
        }
        if (*cap >= MD_MAX_LINE_BYTES) return -3;
        *cap *= 2;
        *buf = md_realloc(*buf, *cap);
    }
    if (len > 0 && (*buf)[len - 1] == '\r') (*buf)[--len] = 0;
    return (int64_t)len;
}

md_bed_t *md_bed_read(const char *path, int split_col)
{
    if (split_col != 0 && (split_col < 4 || split_col > BED_MAX_COLS)) {
        md_error("BED '%s': split column %d is not between 4 and %d", path, split_col, BED_MAX_COLS);
        return NULL;
    }
    gzFile fp = strcmp(path, "-") ? gzopen(path, "rb") : gzdopen(dup(STDIN_FILENO), "rb");
    if (!fp) {
        md_error("cannot open BED '%s': %s", path, errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(fp, 1 << 18);

    md_bed_t *b = md_calloc(1, sizeof *b);
    b->path = md_strdup(path);
    b->split_col = split_col;
    name_table_t chroms = {0}, splits = {0};
    chroms.index = khash_str2int_init();
    splits.index = khash_str2int_init();
    size_t iv_cap = 0, line_cap = 0;
    char *line = NULL;
    char *cols[BED_MAX_COLS];
    int ok = 1;
    for (int64_t line_no = 1;; line_no++) {
        int64_t len = read_line(fp, &line, &line_cap);
        if (len == -1) break;
        if (len == -2) {
            int err;
            const char *msg = gzerror(fp, &err);
            md_error("BED '%s': read error near line %lld: %s", path, (long long)line_no,
                     err == Z_ERRNO ? strerror(errno) : msg);
            ok = 0;
            break;
        }
        if (len == -3) {
            md_error("%s:%lld: a line longer than %lld bytes: not a BED file?", path, (long long)line_no,
                     (long long)MD_MAX_LINE_BYTES);
            ok = 0;
            break;
        }
        if (len == 0 || is_header_line(line)) continue;
        int nc = split_columns(line, cols);
        int need = split_col ? split_col : 3;
        if (nc < need) {
            md_error("%s:%lld: %d column%s, need at least %d (chrom, start, end%s)", path, (long long)line_no,
                     nc, nc == 1 ? "" : "s", need, split_col ? ", ..., split" : "");
            ok = 0;
            break;
        }
        md_bed_interval_t iv;
        if (!cols[0][0]) {
            md_error("%s:%lld: empty chromosome name", path, (long long)line_no);
            ok = 0;
            break;
        }
        if (strlen(cols[0]) > MD_MAX_NAME_LEN) {
            md_error("%s:%lld: a chromosome name of %zu bytes (names hold at most %d)", path, (long long)line_no,
                     strlen(cols[0]), MD_MAX_NAME_LEN);
            ok = 0;
            break;
        }
        if (parse_coord(cols[1], &iv.start) < 0) {
            md_error("%s:%lld: start '%s' is not a non-negative integer", path, (long long)line_no, cols[1]);
            ok = 0;
            break;
        }
        if (parse_coord(cols[2], &iv.end) < 0) {
            md_error("%s:%lld: end '%s' is not a non-negative integer", path, (long long)line_no, cols[2]);
            ok = 0;
            break;
        }
        if (iv.start >= iv.end) {
            md_error("%s:%lld: start %lld is not below end %lld", path, (long long)line_no, (long long)iv.start,
                     (long long)iv.end);
            ok = 0;
            break;
        }
        if (split_col && !cols[split_col - 1][0]) {
            md_error("%s:%lld: empty split label in column %d", path, (long long)line_no, split_col);
            ok = 0;
            break;
        }
        iv.line = line_no;
        iv.chrom = name_table_id(&chroms, cols[0]);
        iv.split = split_col ? name_table_id(&splits, cols[split_col - 1]) : -1;
        MD_GROW(b->iv, iv_cap, (size_t)b->n + 1);
        b->iv[b->n++] = iv;
    }
    free(line);
    gzclose(fp);
    khash_str2int_destroy(chroms.index);
    khash_str2int_destroy(splits.index);
    b->chroms = chroms.names;
    b->n_chroms = chroms.n;
    b->splits = splits.names;
    b->n_splits = splits.n;
    if (ok && b->n == 0) {
        md_error("BED '%s' holds no intervals", path);
        ok = 0;
    }
    if (!ok) {
        md_bed_free(b);
        return NULL;
    }
    return b;
}

void md_bed_free(md_bed_t *b)
{
    if (!b) return;
    for (int i = 0; i < b->n_chroms; i++) free(b->chroms[i]);
    for (int i = 0; i < b->n_splits; i++) free(b->splits[i]);
    free(b->chroms);
    free(b->splits);
    free(b->iv);
    free(b->path);
    free(b);
}

/* Borzoi numbers its folds fold0..fold7; the mapping of train/valid/test
 * onto them applies only when every label has that form. */
static int fold_number(const char *label)
{
    if (strncmp(label, "fold", 4) != 0 || !label[4]) return -1;
    int v = 0;
    for (const char *p = label + 4; *p; p++) {
        if (!isdigit((unsigned char)*p) || v > 100000) return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

enum { BORZOI_TEST_FOLD = 3, BORZOI_VALID_FOLD = 4 };

/* "a, b, c" for an error message; the caller frees it. */
static char *split_label_list(const md_bed_t *b)
{
    size_t cap = 64, len = 0;
    char *list = md_malloc(cap);
    list[0] = 0;
    for (int i = 0; i < b->n_splits; i++) {
        const char *item = i < 16 ? b->splits[i] : "...";
        size_t need = len + strlen(item) + 3;
        if (need > cap) list = md_realloc(list, cap = 2 * need);
        len += (size_t)sprintf(list + len, "%s%s", i ? ", " : "", item);
        if (i == 16) break;
    }
    return list;
}

int md_bed_select_splits(const md_bed_t *b, const char *spec, uint8_t *selected)
{
    if (b->split_col == 0) {
        md_error("BED '%s' was read without a split column", b->path);
        return -1;
    }
    memset(selected, 0, (size_t)b->n_splits);
    int borzoi = b->n_splits > 0;
    for (int i = 0; i < b->n_splits; i++)
        if (fold_number(b->splits[i]) < 0) borzoi = 0;

    char *copy = md_strdup(spec);
    int ret = 0;
    char *p = copy;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = 0;
        if (!*p) {
            md_error("split list '%s': empty label", spec);
            ret = -1;
            break;
        }
        int found = 0;
        for (int i = 0; i < b->n_splits; i++)
            if (strcmp(b->splits[i], p) == 0) selected[i] = 1, found = 1;
        if (!found && borzoi && (!strcmp(p, "train") || !strcmp(p, "valid") || !strcmp(p, "test"))) {
            for (int i = 0; i < b->n_splits; i++) {
                int f = fold_number(b->splits[i]);
                int is_test = f == BORZOI_TEST_FOLD, is_valid = f == BORZOI_VALID_FOLD;
                if ((p[1] == 'e' && is_test) || (p[0] == 'v' && is_valid) || (p[1] == 'r' && !is_test && !is_valid))
                    selected[i] = 1, found = 1;
            }
        }
        if (!found) {
            char *list = split_label_list(b);
            md_error("BED '%s': no split '%s' in column %d (it holds: %s)", b->path, p, b->split_col, list);
            free(list);
            ret = -1;
            break;
        }
        if (!comma) break;
        p = comma + 1;
    }
    free(copy);
    return ret;
}
