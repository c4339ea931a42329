/* The --gpus launcher (dist/dist.h: md_dist_launch): one child process per
 * GPU, each the same command as rank r. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dist/dist.h"
#include "dist/dist_internal.h"
#include "util/log.h"
#include "util/xalloc.h"

#define MAX_RANKS 256

static volatile sig_atomic_t pending_signal;
static void on_signal(int sig) { pending_signal = sig; }

typedef struct {
    pid_t pid;
    int gpu, status, done;
} child_t;

static void child_exec(int rank, int n, int gpu, const char *dir, int err_fd, const char *group, int argc,
                       char **argv, pid_t launcher)
{
    setpgid(0, 0);   /* a terminal's Ctrl-C reaches the launcher alone, which forwards it once */
    /* A launcher killed outright (SIGKILL) cannot forward anything: its
     * death itself asks the ranks to save and stop. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != launcher) _exit(1);
    /* ...and rank 0, whose stderr is the launcher's pipe, must not die of
     * that pipe closing before it has saved: the ranks stop together. */
    signal(SIGPIPE, SIG_IGN);
    char v[4200];
    snprintf(v, sizeof v, "%d", rank);
    setenv(MD_DIST_ENV_RANK, v, 1);
    snprintf(v, sizeof v, "%d", n);
    setenv(MD_DIST_ENV_SIZE, v, 1);
    snprintf(v, sizeof v, "%d", gpu);
    setenv(MD_DIST_ENV_GPU, v, 1);
    snprintf(v, sizeof v, "file:%s/nccl-id", dir);
    setenv(MD_DIST_ENV_INIT, v, 1);
    if (rank > 0) {
        snprintf(v, sizeof v, "%s/rank%d.log", dir, rank);
        err_fd = open(v, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (err_fd >= 0) dup2(err_fd, STDOUT_FILENO);
    }
    if (err_fd >= 0) dup2(err_fd, STDERR_FILENO);
    char **av = md_calloc((size_t)argc + 3, sizeof *av);
    int k = 0;
    av[k++] = "mambadna";
    if (group) av[k++] = (char *)group;
    memcpy(av + k, argv, sizeof *av * (size_t)argc);
    execv("/proc/self/exe", av);
    fprintf(stderr, "[E::md_dist_launch] cannot start rank %d: %s\n", rank, strerror(errno));
    _exit(1);
}

/* Passes rank 0's stderr through, noting whether an error line went by.
 * 0 at the end of the stream. */
static int forward(int fd, int *saw_error, int *at_line_start)
{
    char buf[4096];
    ssize_t k = read(fd, buf, sizeof buf);
    if (k <= 0) return 0;   /* every child has closed it */
    for (ssize_t i = 0; i < k; i++) {
        if (*at_line_start && k - i >= 4 && !memcmp(buf + i, "[E::", 4)) *saw_error = 1;
        *at_line_start = buf[i] == '\n';
    }
    fwrite(buf, 1, (size_t)k, stderr);
    fflush(stderr);
    return 1;
}

/* The first error line of a rank's log, printed as it is; 0 when none. */
static int replay_error(const char *dir, int rank)
{
    char path[4200], line[4096];
    snprintf(path, sizeof path, "%s/rank%d.log", dir, rank);
    FILE *fp = fopen(path, "r");
    int found = 0;
    while (fp && !found && fgets(line, sizeof line, fp))
        if (!strncmp(line, "[E::", 4)) {
            fputs(line, stderr);
            found = 1;
        }
    if (fp) fclose(fp);
    return found;
}

static void remove_dir(const char *dir, int n)
{
    char path[4200];
    for (int r = 1; r < n; r++) {
        snprintf(path, sizeof path, "%s/rank%d.log", dir, r);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/nccl-id", dir);
    unlink(path);
    rmdir(dir);
}

static int check_gpus(const int *ids, int n, const char *spec)
{
    if (strcmp(spec, "auto") && strcmp(spec, "cuda") && strcmp(spec, "cpu")) {
        md_error("option -x %s contradicts --gpus, which gives each rank its GPU (leave -x out)", spec);
        return -1;
    }
    if (!strcmp(spec, "cpu")) return 0;   /* the test mode */
    int have = md_cuda_device_count();
    if (have == 0) {
        md_error("option --gpus: no GPU is visible (%s)", md_cuda_version_string());
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (ids[i] >= have) {
            md_error("option --gpus: GPU %d does not exist; %d visible (0-%d)", ids[i], have, have - 1);
            return -1;
        }
    return 0;
}

int md_dist_launch(const md_dist_opts_t *o, const char *spec, const char *group, int argc, char **argv)
{
    int ids[MAX_RANKS];
    const int n = md_dist_parse_gpus(o->gpus, ids, MAX_RANKS);
    if (n < 0) return 1;
    if (o->init || o->rank >= 0 || o->world >= 0) {
        md_error("option --gpus starts the ranks itself: leave out --dist-init, --rank and --world-size");
        return 1;
    }
    if (check_gpus(ids, n, spec) < 0 || md_nccl_load() < 0) return 1;
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/mambadna-gpus.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        md_error("cannot make a temporary folder in '%s' for the ranks' set-up: %s", tmp && *tmp ? tmp : "/tmp",
                 strerror(errno));
        return 1;
    }
    int pfd[2];
    if (pipe(pfd) < 0) {
        md_error("cannot make a pipe: %s", strerror(errno));
        rmdir(dir);
        return 1;
    }
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    md_info("starting %d ranks on GPUs %s", n, o->gpus);
    fflush(stderr);
    child_t ch[MAX_RANKS];
    int started = 0;
    const pid_t launcher = getpid();
    for (int r = 0; r < n; r++) {
        pid_t pid = fork();
        if (pid == 0) {
            close(pfd[0]);
            child_exec(r, n, ids[r], dir, r == 0 ? pfd[1] : -1, group, argc, argv, launcher);
        }
        if (pid < 0) {
            md_error("cannot start rank %d: %s", r, strerror(errno));
            break;
        }
        ch[started++] = (child_t){pid, ids[r], 0, 0};
    }
    close(pfd[1]);
    int failed = started < n ? n : -1;   /* the first rank to fail; n: the launch itself */
    int forwarded = 0, saw_error = failed >= 0, line_start = 1, live = started, pipe_open = 1;
    if (failed >= 0)
        for (int i = 0; i < started; i++) kill(ch[i].pid, SIGKILL);
    while (live > 0 || pipe_open) {
        if (pending_signal) {
            int sig = pending_signal;
            pending_signal = 0;
            forwarded = sig;
            for (int i = 0; i < started; i++)
                if (!ch[i].done) kill(ch[i].pid, sig);
        }
        struct pollfd p = {pfd[0], POLLIN, 0};
        if (pipe_open && poll(&p, 1, 100) > 0) {
            pipe_open = forward(pfd[0], &saw_error, &line_start);
        } else if (!pipe_open) {
            poll(NULL, 0, 100);
        }
        for (int i = 0; i < started; i++) {
            if (ch[i].done || waitpid(ch[i].pid, &ch[i].status, WNOHANG) != ch[i].pid) continue;
            ch[i].done = 1;
            live--;
            const int st = ch[i].status;
            const int ok = WIFEXITED(st) && (WEXITSTATUS(st) == 0 ||
                                             (forwarded && WEXITSTATUS(st) == 128 + forwarded));
            if (ok || failed >= 0) continue;
            failed = i;
            for (int k = 0; k < started; k++)   /* they would wait for it in their next collective */
                if (!ch[k].done) kill(ch[k].pid, SIGKILL);
        }
    }
    close(pfd[0]);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    int ret = 0;
    if (failed >= 0) {
        ret = 1;
        if (!saw_error && !(failed > 0 && failed < n && replay_error(dir, failed))) {
            const int st = failed < n ? ch[failed].status : 0;
            if (failed < n && WIFSIGNALED(st))
                md_error("rank %d (GPU %d) was killed by signal %d (%s)", failed, ch[failed].gpu, WTERMSIG(st),
                         strsignal(WTERMSIG(st)));
            else if (failed < n)
                md_error("rank %d (GPU %d) stopped with exit status %d", failed, ch[failed].gpu, WEXITSTATUS(st));
        }
    } else if (forwarded && started > 0 && WIFEXITED(ch[0].status)) {
        ret = WEXITSTATUS(ch[0].status);
    }
    remove_dir(dir, n);
    return ret;
}
