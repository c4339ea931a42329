/* Options and per-rank set-up of data-parallel training (dist/dist.h);
 * the --gpus launcher is dist/launch.c. */
#include "dist/dist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dist/dist_internal.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/outfile.h"

void md_dist_opts_init(md_dist_opts_t *o)
{
    *o = (md_dist_opts_t){NULL, NULL, -1, -1, 300, MD_COMM_BUCKET_MB_DEFAULT, 0};
}

int md_dist_opt(md_dist_opts_t *o, int which, const char *arg)
{
    switch (which) {
    case 0: o->gpus = arg; return 1;
    case 1:
        if (strncmp(arg, "file:", 5) != 0 || !arg[5]) {
            md_error("option --dist-init: '%s' is not of the form file:PATH", arg);
            return -1;
        }
        o->init = arg;
        return 1;
    case 2: return md_parse_i64("--rank", arg, 0, 1 << 20, 0, &o->rank) < 0 ? -1 : 1;
    case 3: return md_parse_i64("--world-size", arg, 1, 1 << 20, 0, &o->world) < 0 ? -1 : 1;
    case 4: return md_parse_double("--dist-timeout", arg, 0.1, 1e7, &o->timeout) < 0 ? -1 : 1;
    case 5: return md_parse_double("--bucket-mb", arg, 0, 1e6, &o->bucket_mb) < 0 ? -1 : 1;
    case 6: o->zero1 = 1; return 1;
    default: return 0;
    }
}

int md_dist_parse_gpus(const char *list, int *ids, int max)
{
    int n = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[32];
        int64_t v;
        if (len == 0 || len >= sizeof item) {
            md_error("option --gpus: '%s' is not a comma-separated list of GPU numbers (e.g. 0,1,2,3)", list);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (md_parse_i64("--gpus", item, 0, 1023, 0, &v) < 0) return -1;
        for (int i = 0; i < n; i++)
            if (ids[i] == v) {
                md_error("option --gpus: GPU %lld is listed twice in '%s'", (long long)v, list);
                return -1;
            }
        if (n == max) {
            md_error("option --gpus: more than %d GPUs in '%s'", max, list);
            return -1;
        }
        ids[n++] = (int)v;
        if (!comma) return n;
        p = comma + 1;
    }
}

int md_dist_wants_launch(const md_dist_opts_t *o) { return o->gpus && !getenv(MD_DIST_ENV_RANK); }

/* An integer from the first of the environment variables set. */
static int64_t env_int(const char *a, const char *b)
{
    const char *s = getenv(a);
    if (!s && b) s = getenv(b);
    return s && *s ? strtoll(s, NULL, 10) : -1;
}

/* ---- the file bootstrap ---- */

static int write_id_file(const char *path, const md_nccl_id_t *id)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        md_error("option --dist-init: '%s' already exists (left by an earlier run?); rank 0 writes it afresh, so "
                 "remove it first", path);
        return -1;
    }
    md_outfile_t *of = md_outfile_open(path);
    if (!of) return -1;
    fwrite(id->bytes, 1, MD_NCCL_ID_BYTES, of->fp);
    return md_outfile_commit(of);
}

static int read_id_file(const char *path, double timeout, md_nccl_id_t *id)
{
    struct timespec nap = {0, 50 * 1000 * 1000};
    const double t0 = md_realtime();
    for (;;) {
        /* rank 0 renames the complete file into place: once it opens, it is whole */
        FILE *fp = fopen(path, "rb");
        if (fp) {
            size_t got = fread(id->bytes, 1, MD_NCCL_ID_BYTES, fp);
            fclose(fp);
            if (got == MD_NCCL_ID_BYTES) return 0;
            md_error("option --dist-init: '%s' holds %zu bytes, not an NCCL id of %d", path, got, MD_NCCL_ID_BYTES);
            return -1;
        }
        if (errno != ENOENT) {
            md_error("option --dist-init: cannot read '%s': %s", path, strerror(errno));
            return -1;
        }
        if (md_realtime() - t0 > timeout) {
            md_error("option --dist-init: '%s' did not appear within %g s; is rank 0 running, and does every rank see "
                     "that folder? (--dist-timeout)", path, timeout);
            return -1;
        }
        nanosleep(&nap, NULL);
    }
}

/* The NCCL communicator of rank/size on d->be, the id carried by MPI or a file. */
static md_comm_t *join_nccl(md_dist_t *d, const char *id_path, double timeout, int rank, int size)
{
    md_nccl_id_t id;
    memset(&id, 0, sizeof id);
    if (md_nccl_load() < 0) return NULL;
    if (rank == 0 && md_nccl_make_id(&id) < 0) return NULL;
    if (d->mpi) {   /* the id's bytes as 32 floats: MPI moves them unchanged between like hosts */
        if (md_comm_broadcast(d->mpi, id.bytes, MD_NCCL_ID_BYTES / 4, MD_DTYPE_F32, 0) < 0) return NULL;
    } else if (rank == 0 ? write_id_file(id_path, &id) : read_id_file(id_path, timeout, &id)) {
        return NULL;
    }
    md_comm_t *c = md_comm_nccl(d->be, &id, rank, size);
    /* Once set up, every rank has read the file (NCCL's set-up waited for
     * them all); after a failure it would only mislead the next run. */
    if (!d->mpi && rank == 0) unlink(id_path);
    return c;
}

static int make_backend(md_dist_t *d, const char *spec, md_precision_t prec)
{
    if (md_device_resolve(spec, &d->dev) < 0) return -1;
    return (d->be = md_backend_for_device(&d->dev, prec)) ? 0 : -1;
}

/* -x cuda / auto on a rank: GPU local_rank; an explicit cuda:N or cpu stays. */
static const char *rank_device(const char *spec, int local_rank, char *buf, size_t n)
{
    if (strcmp(spec, "cuda") && strcmp(spec, "auto")) return spec;
    if (!strcmp(spec, "auto") && md_cuda_device_count() == 0) return "cpu";
    snprintf(buf, n, "cuda:%d", local_rank);
    return buf;
}

int md_dist_setup(const md_dist_opts_t *o, const char *spec, md_precision_t prec, md_dist_t *d)
{
    memset(d, 0, sizeof *d);
    char buf[32];
    int rank = 0, size = 1;
    const char *init = o->init;
    int64_t local = -1;
    if (getenv(MD_DIST_ENV_RANK)) {   /* a child of the --gpus launcher */
        rank = (int)env_int(MD_DIST_ENV_RANK, NULL);
        size = (int)env_int(MD_DIST_ENV_SIZE, NULL);
        init = getenv(MD_DIST_ENV_INIT);
        if (strcmp(spec, "cpu")) {
            snprintf(buf, sizeof buf, "cuda:%lld", (long long)env_int(MD_DIST_ENV_GPU, NULL));
            spec = buf;
        }
    } else if (md_comm_mpi_launched() && !init) {
        int lr;
        if (!(d->mpi = md_comm_mpi(&lr))) return -1;
        rank = md_comm_rank(d->mpi);
        size = md_comm_size(d->mpi);
        spec = rank_device(spec, lr, buf, sizeof buf);
    } else if (init) {
        int64_t r = o->rank >= 0 ? o->rank : env_int("RANK", "SLURM_PROCID");
        int64_t w = o->world >= 0 ? o->world : env_int("WORLD_SIZE", "SLURM_NTASKS");
        if (r < 0 || w < 1) {
            md_error("option --dist-init needs this process's rank and the number of ranks: --rank and --world-size "
                     "(or RANK and WORLD_SIZE in the environment)");
            return -1;
        }
        if (r >= w) {
            md_error("option --rank %lld is not below --world-size %lld", (long long)r, (long long)w);
            return -1;
        }
        rank = (int)r;
        size = (int)w;
        local = env_int("LOCAL_RANK", "SLURM_LOCALID");
        spec = rank_device(spec, (int)(local >= 0 ? local : 0), buf, sizeof buf);
    } else if (o->rank >= 0 || o->world >= 0) {
        md_error("options --rank and --world-size go with --dist-init file:PATH");
        return -1;
    }
    if (rank > 0) md_verbose = 0;
    if (make_backend(d, spec, prec) < 0) goto fail;
    if (!init && !d->mpi) {
        d->comm = md_comm_self(d->be);
        md_comm_set_sync(d->comm, o->bucket_mb, o->zero1);
        return 0;
    }
    if (d->mpi && d->dev.kind == MD_DEVICE_CPU) {
        d->comm = d->mpi;
    } else if (!(d->comm = join_nccl(d, init ? init + 5 : NULL, o->timeout, rank, size))) {
        goto fail;
    }
    md_comm_set_sync(d->comm, o->bucket_mb, o->zero1);
    md_info("rank %d of %d (%s) on %s", rank, size, md_comm_name(d->comm), d->dev.name);
    return 0;
fail:
    md_dist_end(d);
    return -1;
}

void md_dist_end(md_dist_t *d)
{
    if (d->comm != d->mpi) md_comm_free(d->comm);
    md_comm_free(d->mpi);
    d->comm = d->mpi = NULL;
}
