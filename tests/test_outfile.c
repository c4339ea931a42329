/* util/outfile.h: an output appears whole or not at all. Committed, it is
 * in place with no temporary beside it; aborted, nothing is left; and when
 * the process calls exit() with outputs still open (a failure deep in a
 * computation, such as the CUDA backend running out of memory mid-run), the
 * temporaries are removed and an earlier file of that name is untouched. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "util/outfile.h"

/* the names in dir, sorted, joined by spaces */
static void list_dir(const char *dir, char *buf, size_t cap)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        if (ents[i]->d_name[0] != '.') {
            strncat(buf, ents[i]->d_name, cap - strlen(buf) - 2);
            strcat(buf, " ");
        }
        free(ents[i]);
    }
    free(ents);
}

static void read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
}

int main(void)
{
    const char *dir = md_test_tmpdir();
    char a[512], b[512], names[1024], text[64];
    snprintf(a, sizeof a, "%s/a.tsv", dir);
    snprintf(b, sizeof b, "%s/b.tsv", dir);

    md_outfile_t *o = md_outfile_open(a);
    CHECK(o != NULL, "open %s", a);
    fputs("old\n", o->fp);
    CHECK(md_outfile_commit(o) == 0, "commit");
    list_dir(dir, names, sizeof names);
    CHECK(!strcmp(names, "a.tsv "), "after a commit, the folder holds '%s'", names);

    o = md_outfile_open(b);
    fputs("half", o->fp);
    md_outfile_abort(o);
    list_dir(dir, names, sizeof names);
    CHECK(!strcmp(names, "a.tsv "), "after an abort, the folder holds '%s'", names);

    /* exit(1) with two outputs open, one over a.tsv, one committed before */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        md_outfile_t *done = md_outfile_open(b), *x = md_outfile_open(a), *y = md_outfile_open(b);
        fputs("whole\n", done->fp);
        if (md_outfile_commit(done) != 0) _exit(2);
        fputs("new, half-written", x->fp);
        fputs("half", y->fp);
        fflush(x->fp);
        exit(1);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, "the child ended with status %d", st);
    list_dir(dir, names, sizeof names);
    CHECK(!strcmp(names, "a.tsv b.tsv "), "after exit(1), the folder holds '%s' (a temporary left?)", names);
    read_file(a, text, sizeof text);
    CHECK(!strcmp(text, "old\n"), "a.tsv holds '%s', not its old text", text);
    read_file(b, text, sizeof text);
    CHECK(!strcmp(text, "whole\n"), "b.tsv holds '%s', not the committed text", text);

    unlink(a);
    unlink(b);
    rmdir(dir);
    return md_test_done();
}
