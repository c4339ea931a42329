/* Output files that appear whole or not at all.
 *
 * md_outfile_open() writes to a temporary file beside the destination;
 * md_outfile_commit() flushes and fsyncs it, renames it into place and
 * fsyncs the folder (so the rename survives a power cut), and
 * md_outfile_abort() removes it. The path "-" writes to stdout directly, and
 * an existing device or FIFO (/dev/null, a named pipe) is written in place.
 * A failed command therefore never leaves a half-written output behind:
 * temporaries still open when the process calls exit() (a failure deep in
 * a computation, such as the CUDA backend running out of memory, exits
 * without returning to the command) are removed by an atexit handler.
 * Only a kill or a crash leaves one behind (NAME.tmpXXXXXX, never read).
 */
#ifndef MD_UTIL_OUTFILE_H
#define MD_UTIL_OUTFILE_H

#include <stdio.h>

typedef struct md_outfile {
    FILE *fp;          /* write through this */
    char *path;        /* destination */
    char *tmp_path;    /* NULL for stdout */
} md_outfile_t;

/* Returns NULL after one error line if the temporary cannot be created. */
md_outfile_t *md_outfile_open(const char *path);
/* Returns 0, or -1 after one error line (disk full, rename failed); the
 * temporary is removed either way and o is freed. */
int md_outfile_commit(md_outfile_t *o);
/* Removes the temporary and frees o; a NULL o is ignored. */
void md_outfile_abort(md_outfile_t *o);
/* Removes every temporary still open, for a process about to abort()
 * (exit() does this by itself); the md_outfile_t handles stay allocated. */
void md_outfile_remove_open_temps(void);

/* fsync()s the folder holding path, making renames and unlinks in it
 * durable. 0, or -1 with errno set (no message). */
int md_fsync_dir_of(const char *path);

#endif
