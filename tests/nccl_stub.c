/* A stand-in for libnccl.so.2, for tests only: the NCCL entry points that
 * dist/comm_nccl.c calls, working on HOST buffers of processes on one
 * machine through a file in /dev/shm (or MD_NCCL_STUB_DIR), removed once
 * every rank has mapped it. It lets the --gpus launcher and the
 * file bootstrap run end to end on a machine without GPUs (the launcher's
 * -x cpu test mode, MD_NCCL_LIBRARY=path/to/libnccl_stub.so). Nothing of
 * it is installed or used outside the tests.
 *
 * Every collective copies this rank's input into its slot, waits for all
 * ranks, computes the result from the slots in rank order (so every rank
 * gets the same bits) and waits again before the slots are reused.
 * MD_NCCL_STUB_FAIL_RANK=r makes rank r's ncclCommInitRank fail, for the
 * tests of a failing rank. */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SLOT_BYTES (8u << 20)

typedef struct { char internal[128]; } ncclUniqueId;
typedef struct {
    _Atomic int arrived, generation;
} shm_head_t;
typedef struct ncclComm {
    int rank, nranks;
    char name[160];
    shm_head_t *head;
    char *slots;
    size_t bytes;
} *ncclComm_t;

int mdNcclStubHostMemory = 1;   /* comm_nccl.c lets -x cpu use this library */

enum { ncclSuccess = 0, ncclSystemError = 2, ncclInvalidArgument = 4 };

const char *ncclGetErrorString(int r)
{
    return r == ncclSystemError ? "stub: rank told to fail (MD_NCCL_STUB_FAIL_RANK)" : "stub: invalid argument";
}

int ncclGetVersion(int *v)
{
    *v = 0;
    return ncclSuccess;
}

int ncclGetUniqueId(ncclUniqueId *id)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const char *dir = getenv("MD_NCCL_STUB_DIR");
    memset(id, 0, sizeof *id);
    snprintf(id->internal, sizeof id->internal, "%.80s/md-nccl-stub-%d-%ld", dir && *dir ? dir : "/dev/shm",
             (int)getpid(), (long)ts.tv_nsec);
    return ncclSuccess;
}

static void barrier(ncclComm_t c)
{
    const int gen = atomic_load(&c->head->generation);
    if (atomic_fetch_add(&c->head->arrived, 1) == c->nranks - 1) {
        atomic_store(&c->head->arrived, 0);
        atomic_fetch_add(&c->head->generation, 1);
        return;
    }
    struct timespec nap = {0, 20000};
    while (atomic_load(&c->head->generation) == gen) nanosleep(&nap, NULL);
}

int ncclCommInitRank(ncclComm_t *out, int nranks, ncclUniqueId id, int rank)
{
    const char *fail = getenv("MD_NCCL_STUB_FAIL_RANK");
    if (fail && atoi(fail) == rank) return ncclSystemError;
    ncclComm_t c = calloc(1, sizeof *c);
    c->rank = rank;
    c->nranks = nranks;
    snprintf(c->name, sizeof c->name, "%s", id.internal);
    c->bytes = 64 + (size_t)nranks * SLOT_BYTES;
    int fd = open(c->name, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)c->bytes) < 0) return ncclSystemError;
    void *p = mmap(NULL, c->bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return ncclSystemError;
    c->head = p;
    c->slots = (char *)p + 64;
    barrier(c);   /* everyone has joined and mapped it: the name can go */
    if (rank == 0) unlink(c->name);
    *out = c;
    return ncclSuccess;
}

int ncclCommDestroy(ncclComm_t c)
{
    barrier(c);
    munmap(c->head, c->bytes);
    free(c);
    return ncclSuccess;
}

static size_t esize(int dt) { return dt == 8 ? 8 : 4; }   /* ncclFloat64 : ncclFloat32 */
static char *slot(ncclComm_t c, int r) { return c->slots + (size_t)r * SLOT_BYTES; }

/* out[i] = sum over ranks of slot_r[off + i], in rank order. */
static void sum_slots(ncclComm_t c, void *out, size_t off, size_t n, int dt)
{
    for (size_t i = 0; i < n; i++) {
        if (dt == 8) {
            double a = 0;
            for (int r = 0; r < c->nranks; r++) a += ((double *)slot(c, r))[off + i];
            ((double *)out)[i] = a;
        } else {
            float a = 0;
            for (int r = 0; r < c->nranks; r++) a += ((float *)slot(c, r))[off + i];
            ((float *)out)[i] = a;
        }
    }
}

int ncclAllReduce(const void *send, void *recv, size_t n, int dt, int op, ncclComm_t c, void *stream)
{
    if (n * esize(dt) > SLOT_BYTES) return ncclInvalidArgument;
    memcpy(slot(c, c->rank), send, n * esize(dt));
    barrier(c);
    sum_slots(c, recv, 0, n, dt);
    barrier(c);
    return ncclSuccess;
}

int ncclReduceScatter(const void *send, void *recv, size_t n, int dt, int op, ncclComm_t c, void *stream)
{
    if (n * c->nranks * esize(dt) > SLOT_BYTES) return ncclInvalidArgument;
    memcpy(slot(c, c->rank), send, n * c->nranks * esize(dt));
    barrier(c);
    sum_slots(c, recv, (size_t)c->rank * n, n, dt);
    barrier(c);
    return ncclSuccess;
}

int ncclAllGather(const void *send, void *recv, size_t n, int dt, ncclComm_t c, void *stream)
{
    const size_t b = n * esize(dt);
    if (b > SLOT_BYTES) return ncclInvalidArgument;
    memcpy(slot(c, c->rank), send, b);
    barrier(c);
    for (int r = 0; r < c->nranks; r++) memcpy((char *)recv + (size_t)r * b, slot(c, r), b);
    barrier(c);
    return ncclSuccess;
}

int ncclBroadcast(const void *send, void *recv, size_t n, int dt, int root, ncclComm_t c, void *stream)
{
    const size_t b = n * esize(dt);
    if (b > SLOT_BYTES) return ncclInvalidArgument;
    if (c->rank == root) memcpy(slot(c, 0), send, b);
    barrier(c);
    if (c->rank != root) memcpy(recv, slot(c, 0), b);
    barrier(c);
    return ncclSuccess;
}
