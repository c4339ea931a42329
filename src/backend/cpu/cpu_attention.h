/* The CPU kernels of the Transformer section of backend/ops.h (RoPE,
 * causal attention, SwiGLU), on raw host pointers. Written once in
 * cpu_attention_tmpl.h for a `real` type and compiled by cpu_attn_f32.c
 * and cpu_attn_f64.c; cpu_backend.c unwraps the tensors and dispatches on
 * the dtype. ld* are row strides in elements; q/k/v/o pointers point at
 * column 0 of head 0 (the views' data).
 */
#ifndef MD_BACKEND_CPU_ATTENTION_H
#define MD_BACKEND_CPU_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

/* Query and key tile sizes of the blocked attention; the scratch per tile
 * pair is two TILE_Q x TILE_K arrays on the stack (256 KiB in f64). */
#define MD_CPU_ATTN_TILE_Q 64
#define MD_CPU_ATTN_TILE_K 256
/* Largest head dimension (md_config_validate enforces it). */
#define MD_CPU_ATTN_MAX_HD 256

#define MD_CPU_DECLARE_ATTENTION(S)                                                                                 \
    void md_cpu_rope_##S(void *x, int64_t ldx, int64_t batch, int64_t len, int64_t n_heads, int64_t head_dim,      \
                         double theta, int inverse);                                                                \
    void md_cpu_attention_fwd_##S(void *o, int64_t ldo, void *lse, const void *q, int64_t ldq, const void *k,      \
                                  int64_t ldk, const void *v, int64_t ldv, int64_t batch, int64_t len,              \
                                  int64_t n_heads, int64_t head_dim, double scale);                                 \
    void md_cpu_attention_bwd_##S(void *dq, int64_t lddq, void *dk, int64_t lddk, void *dv, int64_t lddv,          \
                                  const void *dout, int64_t lddo, const void *q, int64_t ldq, const void *k,        \
                                  int64_t ldk, const void *v, int64_t ldv, const void *o, int64_t ldo,              \
                                  const void *lse, int64_t batch, int64_t len, int64_t n_heads, int64_t head_dim,   \
                                  double scale, void *workspace);                                                   \
    void md_cpu_swiglu_fwd_##S(void *y, int64_t ldy, const void *gate, int64_t ldg, const void *up, int64_t ldu,   \
                               int64_t rows, int64_t cols);                                                         \
    void md_cpu_swiglu_bwd_##S(void *dgate, int64_t lddg, void *dup, int64_t lddu, const void *dy, int64_t lddy,   \
                               const void *gate, int64_t ldg, const void *up, int64_t ldu, int64_t rows,            \
                               int64_t cols);

MD_CPU_DECLARE_ATTENTION(f32)
MD_CPU_DECLARE_ATTENTION(f64)

/* Workspace of md_cpu_attention_bwd_*: rowsum(dout * o) per (sequence,
 * head, position). */
static inline size_t md_cpu_attention_bwd_workspace(size_t es, int64_t batch, int64_t len, int64_t n_heads)
{
    return (size_t)(batch * n_heads * len) * es;
}

#endif
