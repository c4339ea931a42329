/* Helpers shared by the AVX-512 (F + DQ) kernels of the CPU backend
 * (cpu_scan_avx512.c, cpu_gemm_avx512.c); include only inside their
 * #if MD_CPU_HAVE_AVX512. */
#ifndef MD_CPU_AVX512_H
#define MD_CPU_AVX512_H

#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512dq")))

/* The sums of 16 vectors' lanes, v[k] (the 16 floats at v + 16 k) in
 * lane k. The shuffles leave the sum of input i in lane 4 (i mod 4) + i / 4,
 * so the inputs are taken in that (self-inverse) order. */
static inline AVX512 __m512 md_avx512_sum16x16(const float *v)
{
    __m512 x[16], y[8], z[4], w[2];
    for (int i = 0; i < 16; i++) x[i] = _mm512_loadu_ps(v + 16 * (4 * (i % 4) + i / 4));
    for (int i = 0; i < 8; i++)
        y[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++)
        z[i] = _mm512_add_ps(_mm512_shuffle_f32x4(y[2 * i], y[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(y[2 * i], y[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++)
        w[i] = _mm512_add_ps(_mm512_shuffle_ps(z[2 * i], z[2 * i + 1], 0x44),
                             _mm512_shuffle_ps(z[2 * i], z[2 * i + 1], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], 0x88), _mm512_shuffle_ps(w[0], w[1], 0xDD));
}

#endif
