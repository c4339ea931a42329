/* The weights + training-state pair on disk (trainer.h: md_train_save_pair,
 * md_train_load_pair, md_train_read_state), shared by pretrain and
 * finetune: the three renames of a save, the state set aside as STATE.prev
 * until the new pair is complete, and a resume that takes whichever state
 * file holds the weights' step. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/checkpoint.h"
#include "train/trainer.h"
#include "util/log.h"
#include "util/outfile.h"
#include "util/xalloc.h"

json_t *md_train_parse_state(const char *state_path, const char *text)
{
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (!root || !json_is_object(root)) {
        md_error("training state '%s': its state record is not valid JSON", state_path);
        json_decref(root);
        return NULL;
    }
    return root;
}

/* The training state a save sets aside until the new pair is complete. */
static char *prev_state_path(const char *state_path)
{
    size_t n = strlen(state_path) + 8;
    char *p = md_malloc(n);
    snprintf(p, n, "%s.prev", state_path);
    return p;
}

/* The training state file to read for weights_path: STATE, or STATE.prev
 * when a save was killed after setting STATE aside. Caller frees. */
static char *existing_state_path(const char *weights_path)
{
    char *sp = md_ckpt_state_path(weights_path), *prev = prev_state_path(sp);
    if (access(sp, F_OK) != 0 && access(prev, F_OK) == 0) {
        free(sp);
        return prev;
    }
    free(prev);
    return sp;
}

int md_train_read_state(const char *weights_path, char **state_json, char **state_path)
{
    char *sp = existing_state_path(weights_path);
    md_st_file_t *f = md_st_read(sp);
    const char *js = f ? md_st_meta(f, "state") : NULL;
    if (f && !js) md_error("'%s' is not a mambadna training state file", sp);
    *state_json = js ? md_strdup(js) : NULL;
    *state_path = sp;
    md_st_free(f);
    return js ? 0 : -1;
}

static int moments_to_host(const md_adamw_t *opt, float *m, float *v)
{
    const md_backend_t *be = opt->be;
    size_t n = (size_t)opt->numel;
    if (opt->host_m) {   /* ZeRO-1: gathered by md_adamw_gather_host */
        memcpy(m, opt->host_m, n * 4);
        memcpy(v, opt->host_v, n * 4);
        return 0;
    }
    if (md_adamw_sharded(opt)) {
        md_error("internal: the sharded optimizer state was not gathered before the save");
        return -1;
    }
    if (opt->dtype == MD_DTYPE_F32) {
        be->copy(be, m, opt->m, n * 4, MD_COPY_D2H);
        be->copy(be, v, opt->v, n * 4, MD_COPY_D2H);
        return 0;
    }
    double *tmp = md_malloc(n * 8 + 8);
    be->copy(be, tmp, opt->m, n * 8, MD_COPY_D2H);
    for (size_t i = 0; i < n; i++) m[i] = (float)tmp[i];
    be->copy(be, tmp, opt->v, n * 8, MD_COPY_D2H);
    for (size_t i = 0; i < n; i++) v[i] = (float)tmp[i];
    free(tmp);
    return 0;
}

/* One moment's ranges (all of it, or a ZeRO-1 rank's shard and tail) from
 * the whole host copy. */
static void moment_from_host(md_adamw_t *opt, void *dev, const float *host)
{
    const md_backend_t *be = opt->be;
    const size_t es = md_dtype_size(opt->dtype);
    int64_t at = 0;
    for (int i = 0; i < opt->n_ranges; i++) {
        const int64_t off = opt->range[i].off, n = opt->range[i].n;
        char *dst = (char *)dev + (size_t)at * es;
        if (opt->dtype == MD_DTYPE_F32) {
            be->copy(be, dst, host + off, (size_t)n * 4, MD_COPY_H2D);
        } else {
            double *tmp = md_malloc((size_t)n * 8 + 8);
            for (int64_t k = 0; k < n; k++) tmp[k] = host[off + k];
            be->copy(be, dst, tmp, (size_t)n * 8, MD_COPY_H2D);
            free(tmp);
        }
        at += n;
    }
}

static void moments_from_host(md_adamw_t *opt, const float *m, const float *v)
{
    moment_from_host(opt, opt->m, m);
    moment_from_host(opt, opt->v, v);
}

/* Puts the set-aside state back after a failed save, so that the weights
 * and the state on disk are the last good pair again. */
static void restore_prev_state(const char *sp, const char *prev)
{
    if (rename(prev, sp) != 0 && errno != ENOENT)
        md_warn("cannot move '%s' back to '%s': %s (--resume finds it either way)", prev, sp, strerror(errno));
    md_fsync_dir_of(sp);
}

/* The pair is replaced in three renames, each made durable before the
 * next: the old state to STATE.prev, the new state into place, the new
 * weights into place; then STATE.prev is removed. Whenever a kill strikes,
 * the weights on disk match either STATE or STATE.prev by step, and
 * --resume takes the one that matches (md_train_load_pair). */
int md_train_save_pair(const char *path, const md_adamw_t *opt, const char *state_json,
                       int (*save_weights)(void *ud, const char *path), void *ud)
{
    size_t n = (size_t)opt->numel;
    float *m = md_malloc(n * 4 + 4), *v = md_malloc(n * 4 + 4);
    if (moments_to_host(opt, m, v) < 0) {
        free(m);
        free(v);
        return -1;
    }
    char *sp = md_ckpt_state_path(path), *prev = prev_state_path(sp);
    int ret = 0, have_old = access(sp, F_OK) == 0 && access(path, F_OK) == 0;
    if (have_old && (rename(sp, prev) != 0 || md_fsync_dir_of(sp) != 0)) {
        md_error("cannot set the training state '%s' aside as '%s' while saving: %s", sp, prev, strerror(errno));
        ret = -1;
    }
    if (ret == 0 && (md_ckpt_save_state(sp, m, v, (int64_t)n, state_json) < 0 || save_weights(ud, path) < 0)) {
        ret = -1;
        if (have_old) restore_prev_state(sp, prev);
    }
    /* (a STATE.prev left by an earlier interrupted save goes too) */
    if (ret == 0 && unlink(prev) == 0) md_fsync_dir_of(prev);
    free(sp);
    free(prev);
    free(m);
    free(v);
    return ret;
}

static int load_state(const char *sp, float *m, float *v, int64_t numel, char **state, int64_t *step)
{
    *state = NULL;
    if (md_ckpt_load_state(sp, m, v, numel, state) < 0) return -1;
    json_t *root = md_train_parse_state(sp, *state), *s = json_object_get(root, "step");
    int ret = 0;
    if (root && (!json_is_integer(s) || json_integer_value(s) < 0)) {
        md_error("training state '%s' lacks its step", sp);
        ret = -1;
    }
    if (root && ret == 0) *step = json_integer_value(s);
    if (!root) ret = -1;
    json_decref(root);
    if (ret < 0) { free(*state); *state = NULL; }
    return ret;
}

int md_train_load_pair(const char *weights_path, md_adamw_t *opt, char **state_json, char **state_path)
{
    md_ckpt_t *ck = md_ckpt_open(weights_path);
    if (!ck) return -1;
    int ret = -1;
    char *sp = existing_state_path(weights_path), *state = NULL;
    char *canonical = md_ckpt_state_path(weights_path), *prev = prev_state_path(canonical);
    size_t n = (size_t)opt->numel;
    float *m = md_malloc(n * 4 + 4), *v = md_malloc(n * 4 + 4);
    const char *tjs = md_ckpt_meta(ck, "training");
    json_error_t err;
    json_t *tr = tjs ? json_loads(tjs, 0, &err) : NULL, *wstep = json_object_get(tr, "step");
    int64_t step = -1;
    if (!json_is_integer(wstep)) {
        md_error("checkpoint '%s' does not record its training step (not written by a training run?)", weights_path);
        goto out;
    }
    if (load_state(sp, m, v, (int64_t)n, &state, &step) < 0) goto out;
    /* A save killed between its two renames leaves the new state beside
     * the old weights; the old state is then STATE.prev. */
    if (step != json_integer_value(wstep) && strcmp(sp, prev) != 0 && access(prev, F_OK) == 0) {
        free(state);
        free(sp);
        sp = md_strdup(prev);
        if (load_state(sp, m, v, (int64_t)n, &state, &step) < 0) goto out;
    }
    if (step != json_integer_value(wstep)) {
        md_error("checkpoint '%s' (step %lld) and its training state '%s' (step %lld) are from different steps",
                 weights_path, (long long)json_integer_value(wstep), sp, (long long)step);
        goto out;
    }
    if (!strcmp(sp, prev)) {
        /* Put the matching state back in its place: the next save sets
         * STATE aside again, and must not set aside one of another step. */
        md_warn("the last save of '%s' was interrupted; resuming from '%s', the training state that matches its "
                "weights, moved back to '%s'", weights_path, sp, canonical);
        if (rename(prev, canonical) != 0 || md_fsync_dir_of(canonical) != 0) {
            md_error("cannot move '%s' back to '%s': %s", prev, canonical, strerror(errno));
            goto out;
        }
    }
    moments_from_host(opt, m, v);
    opt->step = step;
    *state_json = state;
    *state_path = md_strdup(canonical);
    state = NULL;
    ret = 0;
out:
    json_decref(tr);
    free(state);
    free(sp);
    free(prev);
    free(canonical);
    free(m);
    free(v);
    md_ckpt_close(ck);
    return ret;
}
