#include "util/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/xalloc.h"

/* The temporaries not yet committed or aborted, removed by exit(): a
 * failure deep inside a computation (the CUDA backend's out of memory)
 * exits without unwinding to the command's own md_outfile_abort. */
static md_outfile_t **open_temps;
static int n_open_temps, cap_open_temps;

void md_outfile_remove_open_temps(void)
{
    for (int i = 0; i < n_open_temps; i++) unlink(open_temps[i]->tmp_path);
}

static void track(md_outfile_t *o)
{
    if (!cap_open_temps) atexit(md_outfile_remove_open_temps);
    if (n_open_temps == cap_open_temps) {
        cap_open_temps = cap_open_temps ? 2 * cap_open_temps : 8;
        open_temps = md_realloc(open_temps, (size_t)cap_open_temps * sizeof *open_temps);
    }
    open_temps[n_open_temps++] = o;
}

static void untrack(md_outfile_t *o)
{
    for (int i = 0; i < n_open_temps; i++)
        if (open_temps[i] == o) {
            open_temps[i] = open_temps[--n_open_temps];
            return;
        }
}

md_outfile_t *md_outfile_open(const char *path)
{
    md_outfile_t *o = md_calloc(1, sizeof *o);
    o->path = md_strdup(path);
    if (strcmp(path, "-") == 0) {
        o->fp = stdout;
        return o;
    }
    /* A device or FIFO (-o /dev/null, a named pipe to the next pipeline step)
     * is written in place: renaming a temporary over it would replace the
     * node itself, and atomicity means nothing for a stream. */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode) || !(o->fp = fopen(path, "wb"))) {
            md_error("cannot write output '%s': %s", path, S_ISDIR(st.st_mode) ? "it is a folder" : strerror(errno));
            free(o->path); free(o);
            return NULL;
        }
        return o;
    }
    size_t n = strlen(path) + 16;
    o->tmp_path = md_malloc(n);
    snprintf(o->tmp_path, n, "%s.tmpXXXXXX", path);
    int fd = mkstemp(o->tmp_path);
    if (fd < 0 || !(o->fp = fdopen(fd, "wb"))) {
        md_error("cannot create output '%s': %s", path, strerror(errno));
        if (fd >= 0) { close(fd); unlink(o->tmp_path); }
        free(o->tmp_path); free(o->path); free(o);
        return NULL;
    }
    /* mkstemp makes 0600 files; outputs should follow the umask like any other. */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    setvbuf(o->fp, NULL, _IOFBF, 1 << 20);
    track(o);
    return o;
}

int md_fsync_dir_of(const char *path)
{
    char *copy = md_strdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0) return -1;
    /* Some file systems refuse fsync on a folder (EINVAL): nothing to make
     * durable there, so that is no error. */
    int r = fsync(fd) == 0 || errno == EINVAL || errno == EROFS ? 0 : -1;
    close(fd);
    return r;
}

static void outfile_free(md_outfile_t *o)
{
    untrack(o);
    free(o->tmp_path);
    free(o->path);
    free(o);
}

int md_outfile_commit(md_outfile_t *o)
{
    int ret = 0;
    if (!o->tmp_path) {
        int is_stdout = o->fp == stdout;
        if (fflush(o->fp) != 0 || ferror(o->fp) || (!is_stdout && fclose(o->fp) != 0)) {
            md_error("cannot write to %s: %s", is_stdout ? "standard output" : o->path, strerror(errno));
            ret = -1;
        }
        outfile_free(o);
        return ret;
    }
    if (fflush(o->fp) != 0 || ferror(o->fp) || fsync(fileno(o->fp)) != 0) {
        md_error("cannot write '%s': %s", o->path, strerror(errno));
        ret = -1;
    }
    if (fclose(o->fp) != 0 && ret == 0) {
        md_error("cannot write '%s': %s", o->path, strerror(errno));
        ret = -1;
    }
    if (ret == 0 && rename(o->tmp_path, o->path) != 0) {
        md_error("cannot rename output into place as '%s': %s", o->path, strerror(errno));
        ret = -1;
    }
    /* The rename itself must reach the disk before the caller builds on it
     * (the checkpoint pair relies on the order of its two renames). */
    if (ret == 0 && md_fsync_dir_of(o->path) != 0) {
        md_error("cannot sync the folder of '%s': %s", o->path, strerror(errno));
        ret = -1;
    }
    if (ret != 0 && access(o->tmp_path, F_OK) == 0) unlink(o->tmp_path);
    outfile_free(o);
    return ret;
}

void md_outfile_abort(md_outfile_t *o)
{
    if (!o) return;
    if (o->tmp_path) {
        fclose(o->fp);
        unlink(o->tmp_path);
    } else if (o->fp == stdout) {
        fflush(o->fp);
    } else {
        fclose(o->fp);
    }
    outfile_free(o);
}
