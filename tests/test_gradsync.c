/* The bucketed gradient exchange (train/gradsync.h) against the model's
 * readiness hook (md_model_set_grad_ready), through a communicator that
 * records each bucket when it is started: for every architecture, on the
 * CPU's block-by-block path (B = 1) and its sequence-by-sequence path
 * (B = 2), with a step of two micro-batches,
 *   - the buckets cover the gradient buffer exactly once;
 *   - each bucket's contents when started are its final values (it was not
 *     started before the backward had finished writing it);
 *   - with B = 1 some buckets start before the backward ends (while the
 *     embedding's gradient, written last, is not yet final): the overlap;
 *   - the start order is the same on both paths (ranks of one group may
 *     take different paths, and their collectives must match).
 * The expected values come from the model's own final gradient of the same
 * step, not from a recorded run. */
#include <stdlib.h>
#include <string.h>

#include "dist/comm_internal.h"
#include "nn/model.h"
#include "testutil.h"
#include "train/gradsync.h"
#include "util/rng.h"

enum { MAX_STARTS = 4096 };

typedef struct {
    int64_t off, n;
    float *snapshot;       /* the bucket's contents at its start */
    float *embedding;      /* the embedding's gradient at the bucket's start */
} start_t;

static struct {
    const float *grads;
    int64_t emb_off, emb_n;
    start_t s[MAX_STARTS];
    int n;
} rec;

static int rec_start(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt)
{
    (void)c, (void)dt;
    if (rec.n == MAX_STARTS) return -1;
    start_t *s = &rec.s[rec.n++];
    s->off = (const float *)buf - rec.grads;
    s->n = n;
    s->snapshot = malloc((size_t)n * sizeof(float));
    memcpy(s->snapshot, buf, (size_t)n * sizeof(float));
    s->embedding = malloc((size_t)rec.emb_n * sizeof(float));
    memcpy(s->embedding, rec.grads + rec.emb_off, (size_t)rec.emb_n * sizeof(float));
    return 0;
}

static int rec_allreduce(md_comm_t *c, void *buf, int64_t n, md_dtype_t dt) { return rec_start(c, buf, n, dt); }
static int rec_wait(md_comm_t *c) { (void)c; return 0; }

static void forget_starts(void)
{
    for (int i = 0; i < rec.n; i++) free(rec.s[i].snapshot), free(rec.s[i].embedding);
    rec.n = 0;
}

/* One step of two micro-batches of B sequences; checks the buckets and
 * returns their start sequence (malloc'd, 2 x count int64: off, n). */
static int64_t *one_step(md_arch_t arch, int64_t B, int64_t *count)
{
    enum { L = 16 };
    md_config_t cfg;
    md_config_init(&cfg, arch, 16, 2);
    md_model_t *m = md_model_new(&cfg, md_backend_cpu(), MD_DTYPE_F32, B, L);
    CHECK(m != NULL, "model");
    if (!m) exit(md_test_done());
    md_model_init_weights(m, 7);
    const md_params_t *reg = md_model_params(m);
    const md_param_t *emb = &reg->p[reg->index[reg->n_layer * MD_N_ROLES + MD_ROLE_EMBEDDING]];
    rec.grads = md_model_grad_buffer(m).data;
    rec.emb_off = emb->offset, rec.emb_n = emb->numel;
    md_comm_t comm = {"recording", 0, 1, NULL, rec_allreduce, NULL, NULL, NULL, NULL, NULL, NULL,
                      rec_start, rec_wait, 0, 0};
    md_comm_set_sync(&comm, 0.002, 0);   /* ~512 floats a bucket: several per block */
    md_grad_sync_t *gs = md_grad_sync_new(m, &comm);
    uint8_t in[2 * L], tg[2 * L];
    md_rng_t r;
    md_rng_seed(&r, 11);
    md_model_zero_grad(m);
    for (int micro = 0; micro < 2; micro++) {
        for (int i = 0; i < B * L; i++) in[i] = (uint8_t)(7 + md_rng_below(&r, 4)), tg[i] = (uint8_t)(7 + md_rng_below(&r, 4));
        if (micro == 1) md_grad_sync_arm(gs);
        md_loss_t l;
        CHECK(md_model_forward_backward(m, in, tg, B, L, 1, &l) == 0, "forward_backward");
        CHECK(micro == 1 || rec.n == 0, "a bucket started before the last micro-batch");
    }
    CHECK(md_grad_sync_finish(gs) == 0, "finish");
    const int64_t numel = reg->numel;
    char *covered = calloc((size_t)numel, 1);
    int early = 0, stale = 0, twice = 0;
    int64_t *order = malloc((size_t)(2 * rec.n + 1) * sizeof *order);
    for (int i = 0; i < rec.n; i++) {
        const start_t *s = &rec.s[i];
        order[2 * i] = s->off, order[2 * i + 1] = s->n;
        early += memcmp(s->embedding, rec.grads + rec.emb_off, (size_t)rec.emb_n * sizeof(float)) != 0;
        for (int64_t k = 0; k < s->n; k++) {
            twice += covered[s->off + k]++ != 0;
            stale += s->snapshot[k] != rec.grads[s->off + k];
        }
    }
    int64_t missed = 0;
    for (int64_t k = 0; k < numel; k++) missed += !covered[k];
    const char *name = md_arch_name(arch);
    CHECK(missed == 0 && twice == 0, "%s B=%lld: %lld elements in no bucket, %d in two", name, (long long)B,
          (long long)missed, twice);
    CHECK(stale == 0, "%s B=%lld: %d elements changed after their bucket started", name, (long long)B, stale);
    CHECK(rec.n == md_grad_sync_n_buckets(gs) && rec.n > 4, "%s: %d buckets started of %lld", name, rec.n,
          (long long)md_grad_sync_n_buckets(gs));
    if (B == 1) CHECK(early > 0, "%s B=1: no bucket started during the backward", name);
    *count = rec.n;
    free(covered);
    forget_starts();
    md_grad_sync_free(gs);
    md_model_free(m);
    return order;
}

int main(void)
{
    const md_arch_t archs[] = {MD_ARCH_MAMBA, MD_ARCH_TRANSFORMER, MD_ARCH_HYENA};
    for (int a = 0; a < 3; a++) {
        int64_t n1, n2;
        int64_t *o1 = one_step(archs[a], 1, &n1), *o2 = one_step(archs[a], 2, &n2);
        CHECK(n1 == n2 && !memcmp(o1, o2, (size_t)(2 * n1) * sizeof *o1),
              "%s: the buckets start in another order on the per-sequence path", md_arch_name(archs[a]));
        free(o1);
        free(o2);
    }
    return md_test_done();
}
