/* How a training command becomes one rank of a data-parallel group: the
 * options, the launcher and the bootstraps (the communicators themselves
 * are dist/comm.h).
 *
 * A rank is started in one of four ways:
 *   alone         no option below and no MPI environment: the self
 *                 communicator, the device of -x.
 *   mpirun/srun   MPI's environment is seen: MPI_Init; on the CPU the MPI
 *                 communicator; on GPUs (-x cuda or auto) rank r of a node
 *                 takes GPU "local rank" (unless -x cuda:N names one), rank
 *                 0 makes NCCL's unique id and MPI_Bcast carries it.
 *   --dist-init file:PATH  (several nodes without MPI) with --rank and
 *                 --world-size (or RANK and WORLD_SIZE, or Slurm's
 *                 SLURM_PROCID and SLURM_NTASKS, from the environment):
 *                 rank 0 makes the id and writes PATH atomically (it must
 *                 not exist yet), the others wait for it up to
 *                 --dist-timeout seconds; rank 0 removes it once every rank
 *                 has joined. The GPU is -x's, or LOCAL_RANK's
 *                 (SLURM_LOCALID) under -x cuda.
 *   --gpus 0,2,.. mambadna starts one process per GPU itself
 *                 (md_dist_launch): each child re-runs the same command
 *                 line as rank r on GPU list[r], joined through a
 *                 --dist-init file in a private temporary folder.
 */
#ifndef MD_DIST_DIST_H
#define MD_DIST_DIST_H

#include "backend/device.h"
#include "backend/ops.h"
#include "dist/comm.h"

typedef struct md_dist_opts {
    const char *gpus;        /* --gpus LIST, or NULL */
    const char *init;        /* --dist-init file:PATH, or NULL */
    int64_t rank, world;     /* --rank, --world-size; -1: from the environment */
    double timeout;          /* --dist-timeout: seconds to wait for the id file */
    double bucket_mb;        /* --bucket-mb: gradient bucket size, MiB (0: one bucket) */
    int zero1;               /* --zero1: shard the optimizer state */
} md_dist_opts_t;

void md_dist_opts_init(md_dist_opts_t *o);

/* getopt_long entries numbered from `first` (MD_DIST_N_OPTS codes), and their help. */
#define MD_DIST_LONGOPTS(first) \
    {"gpus", required_argument, 0, (first)}, \
    {"dist-init", required_argument, 0, (first) + 1}, \
    {"rank", required_argument, 0, (first) + 2}, \
    {"world-size", required_argument, 0, (first) + 3}, \
    {"dist-timeout", required_argument, 0, (first) + 4}, \
    {"bucket-mb", required_argument, 0, (first) + 5}, \
    {"zero1", no_argument, 0, (first) + 6}
#define MD_DIST_N_OPTS 7
#define MD_DIST_HELP \
    "Several GPUs or processes (data parallel; also under mpirun or srun):\n" \
    "      --gpus LIST          train on these GPUs, one process each, e.g. 0,1,2,3\n" \
    "      --dist-init file:PATH  join ranks through a file all of them see (rank 0 writes it)\n" \
    "      --rank INT           this process's rank with --dist-init [$RANK]\n" \
    "      --world-size INT     number of ranks with --dist-init [$WORLD_SIZE]\n" \
    "      --dist-timeout SEC   wait this long for the --dist-init file [300]\n" \
    "      --bucket-mb MB       all-reduce the gradients in buckets of this size while the\n" \
    "                           backward runs; 0: all at once after it [25]\n" \
    "      --zero1              shard the optimizer state over the ranks (ZeRO-1): each\n" \
    "                           rank keeps and updates 1/N of the AdamW moments\n"

/* Handles option code `which` (0 .. MD_DIST_N_OPTS-1, i.e. c - first).
 * 1 when handled, 0 when not ours, -1 after one error line. */
int md_dist_opt(md_dist_opts_t *o, int which, const char *arg);

/* Parses a --gpus list into ids[] (at most max): non-negative integers,
 * comma-separated, no repeats. Returns the count, or -1 after one error line
 * naming --gpus. */
int md_dist_parse_gpus(const char *list, int *ids, int max);

/* 1 when o->gpus asks for the launcher and this process is not already one
 * of its children. */
int md_dist_wants_launch(const md_dist_opts_t *o);

/* The launcher: checks the list against the GPUs present (a -x cpu run is
 * the test mode below) and that NCCL loads, then starts one child per GPU
 * (this program with the command's argv -- after `group` when the command
 * is a subcommand such as "bench" -- and rank, size, GPU and id file in the
 * environment), each in a process group of its own. Rank 0's stderr is
 * passed through; the others' goes to files in the private folder. The
 * first child to fail makes the others stop (SIGKILL) and the launcher
 * report one error line (rank 0's, or that child's own, or how it died);
 * SIGINT and SIGTERM are forwarded to every child (which save and stop as
 * without --gpus), and a launcher killed outright sends them SIGTERM
 * through its death (its private folder is then left behind). Returns the exit status for the command: 0, 1, or rank
 * 0's status after a forwarded signal.
 * Test mode: with -x cpu the children run on the CPU; that needs an NCCL
 * that works on host memory (the test stub, tests/nccl_stub.c, named by
 * MD_NCCL_LIBRARY); it tests the process management without a GPU. */
int md_dist_launch(const md_dist_opts_t *o, const char *device_spec, const char *group, int argc, char **argv);

/* One rank's set-up. */
typedef struct md_dist {
    md_comm_t *comm;          /* the training communicator */
    md_comm_t *mpi;           /* the MPI one under mpirun (also comm on the CPU), else NULL */
    md_device_t dev;
    const md_backend_t *be;
} md_dist_t;

/* Decides this process's rank, device and communicator as above, creates
 * the backend for the device (md_backend_for_device with prec) and joins
 * the group; the communicator carries --bucket-mb and --zero1
 * (md_comm_set_sync). Ranks other than 0 are made quiet (md_verbose = 0:
 * warnings and errors only). 0, or -1 after one error line. */
int md_dist_setup(const md_dist_opts_t *o, const char *device_spec, md_precision_t prec, md_dist_t *d);
void md_dist_end(md_dist_t *d);

/* The share of a global batch of B sequences that rank r of n takes: the
 * sequences b = r, r + n, r + 2n, ... (n = 1: all of them). */
static inline int64_t md_dist_share(int64_t B, int r, int n) { return r < B ? (B - r + n - 1) / n : 0; }

#endif
