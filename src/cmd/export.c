/* mambadna export: a checkpoint as a Hugging Face model folder
 * (config.json + model.safetensors) that transformers' MambaForCausalLM
 * (Mamba) or LlamaForCausalLM (Transformer++) .from_pretrained(folder)
 * loads. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "build_info.h"
#include "cmd/cmd.h"
#include "nn/checkpoint.h"
#include "nn/params.h"
#include "nn/safetensors.h"
#include "seq/tokenizer.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/outfile.h"
#include "util/provenance.h"
#include "util/xalloc.h"

enum { OPT_DTYPE = MD_OPT_FIRST_COMMAND_SPECIFIC };

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: mambadna export -i MODEL.safetensors -o FOLDER [--dtype f32|bf16]\n\n"
            "Writes FOLDER/config.json (a transformers MambaConfig, or a LlamaConfig for a\n"
            "transformer) and FOLDER/model.safetensors, which MambaForCausalLM (LlamaForCausalLM)\n"
            ".from_pretrained(FOLDER) loads. Token ids are HyenaDNA's\n"
            "character ids (A=7 C=8 G=9 T=10 N=11, PAD=4), vocabulary 16.\n\n"
            "  -i FILE          checkpoint written by 'mambadna pretrain'\n"
            "  -o DIR           output folder (created if absent)\n"
            "      --dtype STR  f32 or bf16 weights [f32]\n"
            "  -q, --quiet      only warnings and errors on stderr\n"
            "  -h, --help       this help\n");
}

/* transformers' LlamaConfig for a Transformer++ (configuration_llama.py
 * field names): one key/value head per query head, no biases, SiLU MLP,
 * default RoPE. max_position_embeddings only bounds what transformers
 * precomputes or warns about; RoPE itself works at any length. */
static json_t *llama_config(const md_config_t *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "architectures", json_pack("[s]", "LlamaForCausalLM"));
    json_object_set_new(o, "model_type", json_string("llama"));
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(o, "hidden_size", json_integer(c->d_model));
    json_object_set_new(o, "intermediate_size", json_integer(c->d_ff));
    json_object_set_new(o, "num_hidden_layers", json_integer(c->n_layer));
    json_object_set_new(o, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(o, "num_key_value_heads", json_integer(c->n_heads));
    json_object_set_new(o, "head_dim", json_integer(c->d_model / c->n_heads));
    json_object_set_new(o, "hidden_act", json_string("silu"));
    json_object_set_new(o, "max_position_embeddings", json_integer(32768));
    json_object_set_new(o, "initializer_range", json_real(c->initializer_range));
    json_object_set_new(o, "rms_norm_eps", json_real(c->norm_eps));
    json_object_set_new(o, "rope_theta", json_real(c->rope_theta));
    json_object_set_new(o, "rope_scaling", json_null());
    json_object_set_new(o, "attention_bias", json_false());
    json_object_set_new(o, "attention_dropout", json_real(0.0));
    json_object_set_new(o, "mlp_bias", json_false());
    json_object_set_new(o, "pretraining_tp", json_integer(1));
    json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tie_embeddings));
    json_object_set_new(o, "pad_token_id", json_integer(MD_TOK_PAD));
    json_object_set_new(o, "bos_token_id", json_integer(MD_TOK_BOS));
    json_object_set_new(o, "eos_token_id", json_integer(MD_TOK_SEP));
    json_object_set_new(o, "use_cache", json_true());
    return o;
}

/* transformers' MambaConfig for cfg (configuration_mamba.py field names). */
static json_t *mamba_config(const md_config_t *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "architectures", json_pack("[s]", "MambaForCausalLM"));
    json_object_set_new(o, "model_type", json_string("mamba"));
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(o, "hidden_size", json_integer(c->d_model));
    json_object_set_new(o, "intermediate_size", json_integer(c->d_inner));
    json_object_set_new(o, "state_size", json_integer(c->d_state));
    json_object_set_new(o, "num_hidden_layers", json_integer(c->n_layer));
    json_object_set_new(o, "layer_norm_epsilon", json_real(c->norm_eps));
    json_object_set_new(o, "expand", json_integer(c->expand));
    json_object_set_new(o, "conv_kernel", json_integer(c->d_conv));
    json_object_set_new(o, "use_bias", json_false());
    json_object_set_new(o, "use_conv_bias", json_true());
    json_object_set_new(o, "hidden_act", json_string("silu"));
    json_object_set_new(o, "initializer_range", json_real(c->initializer_range));
    json_object_set_new(o, "residual_in_fp32", json_true());
    json_object_set_new(o, "time_step_rank", json_integer(c->dt_rank));
    json_object_set_new(o, "time_step_scale", json_real(1.0));
    json_object_set_new(o, "time_step_min", json_real(c->dt_min));
    json_object_set_new(o, "time_step_max", json_real(c->dt_max));
    json_object_set_new(o, "time_step_init_scheme", json_string("random"));
    json_object_set_new(o, "time_step_floor", json_real(c->dt_init_floor));
    json_object_set_new(o, "rescale_prenorm_residual", json_false());
    json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tie_embeddings));
    json_object_set_new(o, "pad_token_id", json_integer(MD_TOK_PAD));
    json_object_set_new(o, "bos_token_id", json_integer(MD_TOK_BOS));
    json_object_set_new(o, "eos_token_id", json_integer(MD_TOK_SEP));
    json_object_set_new(o, "use_cache", json_true());
    return o;
}

static char *hf_config_json(const md_config_t *c, const char *dtype)
{
    json_t *o = c->arch == MD_ARCH_TRANSFORMER ? llama_config(c) : mamba_config(c);
    json_object_set_new(o, "torch_dtype", json_string(dtype));
    json_object_set_new(o, "mambadna", md_provenance_json());   /* kept as an attribute by transformers */
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(o);
    char *r = md_strdup(s);
    free(s);
    return r;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = md_malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int cmd_export(int argc, char **argv)
{
    md_common_opts_t co;
    md_common_init(&co);
    const char *in = NULL, *dtype_s = "f32";
    int out_given = 0;
    static const struct option longopts[] = {MD_COMMON_LONGOPTS,
                                             {"input", required_argument, 0, 'i'},
                                             {"dtype", required_argument, 0, OPT_DTYPE},
                                             {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, MD_COMMON_SHORTOPTS "i:", longopts, NULL)) >= 0) {
        if (c == 'h') { usage(stdout); return 0; }
        if (c == 'i') { in = optarg; continue; }
        if (c == OPT_DTYPE) { dtype_s = optarg; continue; }
        int r = md_common_opt(&co, c, optarg);
        if (r < 0) return 1;
        if (r == 0) { md_report_bad_option("export", c, argv[optind - 1]); return 1; }
        if (c == 'o') out_given = 1;
    }
    if (optind < argc) {
        md_error("unexpected argument '%s'; see 'mambadna export -h'", argv[optind]);
        return 1;
    }
    if (!in) { md_error("no checkpoint given: -i MODEL.safetensors"); return 1; }
    if (!out_given || !strcmp(co.output, "-")) { md_error("no output folder given: -o FOLDER"); return 1; }
    md_st_dtype_t dt;
    if (!strcmp(dtype_s, "f32")) dt = MD_ST_F32;
    else if (!strcmp(dtype_s, "bf16")) dt = MD_ST_BF16;
    else { md_error("option --dtype: '%s' is not f32 or bf16", dtype_s); return 1; }

    md_ckpt_t *ck = md_ckpt_open(in);
    if (!ck) return 1;
    if (ck->cfg.arch == MD_ARCH_HYENA) {
        /* HyenaDNA's transformers class is remote code, with its own config */
        md_error("export: '%s' is a hyena model; its tensors already carry HyenaDNA's names, but a Hugging Face "
                 "HyenaDNA folder is not written yet", in);
        md_ckpt_close(ck);
        return 1;
    }
    int ret = 1;
    md_params_t reg;
    int have_reg = 0;
    float *host = NULL;
    char *cfg_path = join(co.output, "config.json"), *w_path = join(co.output, "model.safetensors");
    md_st_writer_t *w = NULL;
    if (md_params_build(&ck->cfg, &reg) < 0) goto out;
    have_reg = 1;
    host = md_malloc((size_t)reg.numel * sizeof(float) + 1);
    for (int64_t i = 0; i < reg.n; i++) {
        const md_param_t *p = &reg.p[i];
        if (p->tied_to < 0 && md_st_get_f32(ck->st, p->name, p->ndim, p->shape, host + p->offset) < 0) goto out;
    }
    struct stat st;
    if (stat(co.output, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            md_error("option -o: '%s' exists and is not a folder", co.output);
            goto out;
        }
    } else if (mkdir(co.output, 0777) != 0) {
        md_error("cannot create folder '%s': %s", co.output, strerror(errno));
        goto out;
    }
    w = md_st_writer_new();
    for (int64_t i = 0; i < reg.n; i++) {
        const md_param_t *p = &reg.p[i];
        md_st_add_f32_as(w, p->name, dt, p->ndim, p->shape, host + p->offset);
    }
    md_st_set_meta(w, "format", "pt");
    if (md_st_write(w, w_path) < 0) goto out;
    char *js = hf_config_json(&ck->cfg, dt == MD_ST_F32 ? "float32" : "bfloat16");
    md_outfile_t *o = md_outfile_open(cfg_path);
    if (!o) { free(js); goto out; }
    fputs(js, o->fp);
    fputc('\n', o->fp);
    free(js);
    if (md_outfile_commit(o) < 0) goto out;
    md_info("wrote '%s' and '%s' (%s %lld x %lld, %lld tensors, %s)", cfg_path, w_path, md_arch_name(ck->cfg.arch),
            (long long)ck->cfg.d_model, (long long)ck->cfg.n_layer, (long long)reg.n, dtype_s);
    ret = 0;
out:
    md_st_writer_free(w);
    if (have_reg) md_params_free(&reg);
    free(host);
    free(cfg_path);
    free(w_path);
    md_ckpt_close(ck);
    return ret;
}
