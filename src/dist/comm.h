/* Communicators for data-parallel training: a group of `size` processes
 * (ranks 0 .. size-1), each training a replica of the model, that sum
 * their gradients.
 *
 * Three kinds share this interface:
 *   self  one process alone (size 1): every collective leaves the data as
 *         it is. What a run without --gpus, --dist-init or mpirun uses.
 *   mpi   processes started by mpirun/srun, exchanging host (CPU) buffers
 *         through MPI; built only when CMake finds MPI (MD_HAVE_MPI).
 *   nccl  one process per GPU exchanging GPU buffers through NCCL, loaded
 *         at run time with dlopen (dist/nccl_api.h); its unique id reaches
 *         the ranks through MPI, a shared file or the --gpus launcher
 *         (dist/dist.h).
 *
 * Buffers live in the memory of the communicator's device: host memory for
 * self and mpi, the backend's GPU for nccl (the backend passed at
 * creation; collectives are queued on its stream, in order with its ops,
 * and complete before the next op on it starts). Element counts are per
 * rank as stated at each call; dtypes are f32 or f64.
 *
 * Every collective must be called by all ranks in the same order with the
 * same counts. Each returns 0, or -1 after one error line naming the
 * operation and the library's message; a rank that died makes the others
 * wait (the launcher, mpirun or srun then stops them).
 *
 * Results are identical on every rank (NCCL and MPI reduce in a fixed
 * order for a fixed size and topology), so replicas that apply the same
 * update to the same summed gradient stay bit-identical.
 */
#ifndef MD_DIST_COMM_H
#define MD_DIST_COMM_H

#include <stdint.h>

#include "backend/ops.h"

typedef struct md_comm md_comm_t;

/* The single-process communicator over be's memory (NULL or the CPU
 * backend: host memory); never fails. */
md_comm_t *md_comm_self(const md_backend_t *be);

/* 1 when this binary was built with MPI. */
int md_comm_mpi_compiled(void);

/* 1 when the environment says mpirun or srun started this process with MPI
 * (Open MPI's OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK are set). */
int md_comm_mpi_launched(void);

/* The MPI communicator over MPI_COMM_WORLD, calling MPI_Init first; host
 * buffers. *local_rank receives the rank among the processes of this node
 * (for the choice of GPU). NULL after one error line (built without MPI,
 * MPI_Init failed). */
md_comm_t *md_comm_mpi(int *local_rank);

/* NCCL's unique id: what every rank needs to join one NCCL communicator. */
#define MD_NCCL_ID_BYTES 128
typedef struct md_nccl_id {
    unsigned char bytes[MD_NCCL_ID_BYTES];
} md_nccl_id_t;

/* Loads NCCL (once): the library named by the environment variable
 * MD_NCCL_LIBRARY, else libnccl.so.2 on the library path, else the copy a
 * pip install of PyTorch puts in .../site-packages/nvidia/nccl/lib (the
 * Python prefixes searched are listed in the error). Sets NCCL_NVLS_ENABLE=0
 * unless the user set it (no NVLink multicast on shared machines). 0, or
 * -1 after one error line. */
int md_nccl_load(void);

/* A fresh unique id (rank 0 makes it; NCCL's bootstrap root then runs in
 * this process until every rank has joined). 0, or -1 after one error line. */
int md_nccl_make_id(md_nccl_id_t *id);

/* Joins the NCCL communicator of `size` ranks named by id as `rank`, on the
 * GPU of backend be (which must be a CUDA backend; it is current). Blocks
 * until every rank has joined. NULL after one error line. */
md_comm_t *md_comm_nccl(const md_backend_t *be, const md_nccl_id_t *id, int rank, int size);

/* Ends the communicator (the self one is left alone; NULL is a no-op). For
 * MPI this calls MPI_Finalize. */
void md_comm_free(md_comm_t *c);

int md_comm_rank(const md_comm_t *c);
int md_comm_size(const md_comm_t *c);
/* "self", "mpi" or "nccl". */
const char *md_comm_name(const md_comm_t *c);

/* buf (n elements on every rank) = the elementwise sum over the ranks, in
 * place. */
int md_comm_allreduce_sum(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt);

/* recv (n elements) = rank r's block of the sum: elements [r n, (r+1) n) of
 * the elementwise sum of every rank's send (size x n elements). send and
 * recv do not overlap. */
int md_comm_reduce_scatter_sum(md_comm_t *c, const void *send, void *recv, int64_t n, md_dtype_t dt);

/* recv (size x n elements) = every rank's send (n elements), rank r's at
 * [r n, (r+1) n). send may be recv's own block r (in place). */
int md_comm_all_gather(md_comm_t *c, const void *send, void *recv, int64_t n, md_dtype_t dt);

/* buf (n elements) = root's buf, on every rank. */
int md_comm_broadcast(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt, int root);

/* Starts buf's all-reduce (as md_comm_allreduce_sum) and returns at once;
 * buf is neither read nor written by the caller until md_comm_wait. The
 * sums are the same bits as md_comm_allreduce_sum's over the same n
 * elements. mpi: MPI_Iallreduce (progress at the next MPI call at the
 * latest); nccl on a GPU: ncclAllReduce on a second (non-blocking) stream,
 * after an event recorded on the backend's stream, so that it runs behind
 * the work queued so far and beside the work queued next; self and the
 * host-memory NCCL stub: done at once. Every rank starts the same
 * sequence of (n, dt). 0, or -1 after one error line. */
int md_comm_allreduce_start(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt);

/* Completes every md_comm_allreduce_start since the last wait: mpi waits
 * on the host; nccl makes the backend's stream wait for the second one (the
 * host does not block), so that the next op on it sees the sums. */
int md_comm_wait(md_comm_t *c);

/* The group's gradient exchange (train/gradsync.h), from --bucket-mb and
 * --zero1: buckets of about bucket_mb MiB all-reduced while the backward
 * runs (0: one all-reduce of the whole buffer after it), and with zero1 the
 * optimizer state sharded over the ranks. Default MD_COMM_BUCKET_MB_DEFAULT
 * and no sharding. */
#define MD_COMM_BUCKET_MB_DEFAULT 25.0
void md_comm_set_sync(md_comm_t *c, double bucket_mb, int zero1);
double md_comm_bucket_mb(const md_comm_t *c);
int md_comm_zero1(const md_comm_t *c);

/* Returns when every rank has called it. */
int md_comm_barrier(md_comm_t *c);

#define MD_COMM_HOST_MAX 64
/* x (n host doubles, n <= MD_COMM_HOST_MAX) = the sum over the ranks, in place, whatever
 * the communicator's device: loss sums, counts and flags. */
int md_comm_allreduce_host(md_comm_t *c, double *x, int n);

#endif
