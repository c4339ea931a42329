/* The gated FFT long convolution of the order-2 Hyena operator
 * (backend_kernels.h, ops.h fftconv_*): the kernels around cuFFT.
 *
 * The model's tensors are (B*L, C) rows, channel fastest; the FFTs want each
 * (batch, channel) sequence contiguous. pack and unpack are 32 x 32 tiled
 * transposes through shared memory (coalesced on both sides) that also do
 * the elementwise work: the gating products s = x1 v and g = dy x0 on the
 * way in, y = x0 (conv + D s) and dx0, dx1, dv on the way out, so the
 * (B*L, C) tensors are read once per pass. The pointwise spectrum products
 * run in place, or from the forward's kept S and K spectra (read only) into
 * the workspace's, the batch sum of dk's spectrum in a fixed order (b = 0, 1,
 * ...), and dD's column sums are the backward unpack's per-block partials,
 * added in block order through hyena_reduce.cuh: no atomics. The forward
 * may keep its convolution (the real buffer's S) for the backward, which
 * then transforms back only G and K.
 * The (B*L, C) tensors (void * in the launchers) are fp32 or bf16 by
 * act_bf16; k, dk, D, dD and everything between the transforms are fp32. */
#include "backend_kernels.h"
#include "hyena_reduce.cuh"
#include "storage.cuh"

enum { TILE = 32, TROWS = 8 };

extern "C" int64_t mdk_fftconv_size(int64_t len)
{
    int64_t n = 2 * (len > 0 ? len : 1);
    for (;; n += 2) {
        int64_t m = n;
        for (int p = 2; p <= 7; p++)
            while (m % p == 0) m /= p;
        if (m == 1) return n;
    }
}

/* Spectra n / 2 + 1 complex apart, rounded up to 32 complex (each spectrum
 * 256-byte aligned) from n = 2^18 up: there cuFFT's R2C ran 876 -> 652 us a
 * call with the aligned pitch, while at n <= 2^15 the aligned pitch cost the
 * Hyena step 2-4% (NOTES-hyena.md, "Spectra 256-byte aligned"). */
extern "C" int64_t mdk_fftconv_pitch(int64_t n)
{
    int64_t nf = n / 2 + 1;
    return n >= (INT64_C(1) << 18) ? (nf + 31) / 32 * 32 : nf;
}

/* Logical plane z = blockIdx.z + z0: S of batch z (z < batch), G of batch
 * z - batch (backward, z < 2 batch), then K; written to the buffer's plane
 * blockIdx.z, whose sequence c starts at (blockIdx.z C + c) n. */
template <class T>
__global__ void __launch_bounds__(TILE *TROWS)
    fftconv_pack_kernel(float *buf, const T *x1, int64_t ldx1, const T *v, int64_t ldv, const T *dy, int64_t lddy,
                        const T *x0, int64_t ldx0, const float *k, int64_t batch, int64_t len, int64_t C, int64_t n,
                        int64_t z0)
{
    __shared__ float tile[TILE][TILE + 1];
    int64_t t0 = (int64_t)blockIdx.x * TILE, c0 = (int64_t)blockIdx.y * TILE, z = blockIdx.z + z0;
    int64_t pitch = n;
    /* a product of two activations, or (plane K) the fp32 filter */
    const T *a = NULL, *b = NULL;
    int64_t lda = 0, ldb = 0, row0 = 0;
    if (z < batch) {
        a = x1, lda = ldx1, b = v, ldb = ldv, row0 = z * len;
    } else if (dy && z < 2 * batch) {
        a = dy, lda = lddy, b = x0, ldb = ldx0, row0 = (z - batch) * len;
    }
    if (t0 < len)
        for (int i = threadIdx.y; i < TILE; i += TROWS) {
            int64_t t = t0 + i, c = c0 + threadIdx.x;
            float val = 0;
            if (t < len && c < C)
                val = a ? ld_f(a + (row0 + t) * lda + c) * ld_f(b + (row0 + t) * ldb + c) : k[t * C + c];
            tile[i][threadIdx.x] = val;
        }
    __syncthreads();
    for (int i = threadIdx.y; i < TILE; i += TROWS) {
        int64_t c = c0 + i, t = t0 + threadIdx.x;
        if (c < C && t < n) buf[((z - z0) * C + c) * pitch + t] = t < len ? tile[threadIdx.x][i] : 0.0f;
    }
}

extern "C" cudaError_t mdk_fftconv_pack(float *buf, const void *x1, int64_t ldx1, const void *v, int64_t ldv,
                                        const void *dy, int64_t lddy, const void *x0, int64_t ldx0, const float *k,
                                        int64_t batch, int64_t len, int64_t C, int64_t n, int g_only, int act_bf16,
                                        cudaStream_t s)
{
    if (batch * len * C == 0) return cudaSuccess;
    if (g_only && !dy) return cudaErrorInvalidValue;
    int64_t planes = g_only ? batch : (dy ? 2 * batch : batch) + 1, z0 = g_only ? batch : 0;
    if (planes > 65535 || (C + TILE - 1) / TILE > 65535) return cudaErrorInvalidValue;
    dim3 grid((unsigned)((n + TILE - 1) / TILE), (unsigned)((C + TILE - 1) / TILE), (unsigned)planes);
    WITH_ACT_TYPE(act_bf16, (fftconv_pack_kernel<T><<<grid, dim3(TILE, TROWS), 0, s>>>(
                                buf, (const T *)x1, ldx1, (const T *)v, ldv, (const T *)dy, lddy, (const T *)x0, ldx0,
                                k, batch, len, C, n, z0)));
    return cudaGetLastError();
}

__device__ static inline float2 cmul(float2 a, float2 b) { return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }
/* a conj(b) */
__device__ static inline float2 cmulc(float2 a, float2 b) { return make_float2(a.x * b.x + a.y * b.y, a.y * b.x - a.x * b.y); }
__device__ static inline float2 cscale(float2 a, float s) { return make_float2(a.x * s, a.y * s); }

/* The spectrum kernels: blocks over (frequencies, sequences), so a thread
 * finds its sequence and frequency without a division. */
#define FOR_SEQ(q, nseq) for (int64_t q = blockIdx.y; q < (nseq); q += gridDim.y)
#define FOR_FREQ(f, nf) \
    for (int64_t f = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; f < (nf); f += (int64_t)gridDim.x * blockDim.x)

static dim3 spectrum_grid(int64_t nf, int64_t nseq)
{
    int64_t gx = (nf + 255) / 256, gy = nseq < 65535 ? nseq : 65535;
    /* enough blocks in all, not more than ~2^20 */
    if (gx * gy > 1048576) gx = 1048576 / gy > 1 ? 1048576 / gy : 1;
    return dim3((unsigned)gx, (unsigned)(gy > 0 ? gy : 1));
}

/* forward: out's S_bc = S_bc K_c / n, S and K read from sk ([S][K]; it
 * may be out itself: each element is read, then written, by one thread);
 * nf frequencies a sequence, sequences sp apart */
__global__ void fftconv_mul_fwd_kernel(float2 *out, const float2 *sk, int64_t batch, int64_t C, int64_t nf,
                                       int64_t sp, float inv_n)
{
    const float2 *K = sk + batch * C * sp;
    FOR_SEQ(q, batch * C)
    {
        const float2 *S = sk + q * sp, *Kc = K + (q % C) * sp;
        float2 *Y = out + q * sp;
        FOR_FREQ(f, nf) Y[f] = cscale(cmul(S[f], Kc[f]), inv_n);
    }
}

/* backward, per (c, f): the convolution (unless kept: the forward kept it
 * too) and the correlation with k for every b, and dk's spectrum summed
 * over b in order, into out ([S][G][K]); S and K read from Sin and Kin
 * (out's own planes, or the forward's kept spectra) */
__global__ void fftconv_mul_bwd_kernel(float2 *out, const float2 *Sin, const float2 *Kin, int kept, int64_t batch,
                                       int64_t C, int64_t nf, int64_t sp, float inv_n)
{
    int64_t bc = batch * C;
    float2 *S = out, *G = out + bc * sp, *K = out + 2 * bc * sp;
    FOR_SEQ(c, C) FOR_FREQ(f, nf)
    {
        int64_t i = c * sp + f;
        float2 kf = Kin[i], acc = make_float2(0, 0);
        for (int64_t b = 0; b < batch; b++) {
            int64_t j = (b * C + c) * sp + f;
            float2 sv = Sin[j], gv = G[j];
            if (!kept) S[j] = cscale(cmul(sv, kf), inv_n);
            G[j] = cscale(cmulc(gv, kf), inv_n);
            float2 p = cmulc(gv, sv);
            acc.x += p.x, acc.y += p.y;
        }
        K[i] = cscale(acc, inv_n);
    }
}

extern "C" cudaError_t mdk_fftconv_mul(float *spec, const float *kept, int backward, int64_t batch, int64_t C,
                                       int64_t n, cudaStream_t s)
{
    int64_t nf = n / 2 + 1, sp = mdk_fftconv_pitch(n);
    if (batch * C == 0) return cudaSuccess;
    float inv_n = (float)(1.0 / (double)n);
    float2 *out = (float2 *)spec;
    if (backward) {
        const float2 *Sin = kept ? (const float2 *)kept : out;
        const float2 *Kin = kept ? Sin + batch * C * sp : out + 2 * batch * C * sp;
        fftconv_mul_bwd_kernel<<<spectrum_grid(nf, C), 256, 0, s>>>(out, Sin, Kin, kept != NULL, batch, C, nf, sp,
                                                                     inv_n);
    } else {
        const float2 *sk = kept ? (const float2 *)kept : out;
        fftconv_mul_fwd_kernel<<<spectrum_grid(nf, batch * C), 256, 0, s>>>(out, sk, batch, C, nf, sp, inv_n);
    }
    return cudaGetLastError();
}

/* Loads the (32 t) x (32 c) tile of plane z's sequences into tile[c][t]. */
__device__ static inline void load_seq_tile(float (*tile)[TILE + 1], const float *buf, int64_t z, int64_t t0,
                                            int64_t c0, int64_t len, int64_t C, int64_t pitch)
{
    for (int i = threadIdx.y; i < TILE; i += TROWS) {
        int64_t c = c0 + i, t = t0 + threadIdx.x;
        tile[i][threadIdx.x] = c < C && t < len ? buf[(z * C + c) * pitch + t] : 0.0f;
    }
}

template <class T>
__global__ void __launch_bounds__(TILE *TROWS)
    fftconv_unpack_fwd_kernel(T *y, int64_t ldy, float *conv, const T *x0, int64_t ldx0, const T *x1, int64_t ldx1,
                              const T *v, int64_t ldv, const float *D, const float *buf, int64_t len, int64_t C,
                              int64_t n)
{
    __shared__ float tile[TILE][TILE + 1];
    int64_t t0 = (int64_t)blockIdx.x * TILE, c0 = (int64_t)blockIdx.y * TILE, b = blockIdx.z;
    load_seq_tile(tile, buf, b, t0, c0, len, C, n);
    __syncthreads();
    int64_t c = c0 + threadIdx.x;
    if (c >= C) return;
    float d = D[c];
    for (int i = threadIdx.y; i < TILE; i += TROWS) {
        int64_t t = t0 + i, r = b * len + t;
        if (t >= len) break;
        float sv = ld_f(x1 + r * ldx1 + c) * ld_f(v + r * ldv + c), cv = tile[threadIdx.x][i];
        st_f(y + r * ldy + c, ld_f(x0 + r * ldx0 + c) * (cv + d * sv));
        if (conv) conv[r * C + c] = cv;
    }
}

extern "C" cudaError_t mdk_fftconv_unpack_fwd(void *y, int64_t ldy, float *conv, const void *x0, int64_t ldx0,
                                              const void *x1, int64_t ldx1, const void *v, int64_t ldv,
                                              const float *D, const float *buf, int64_t batch, int64_t len, int64_t C,
                                              int64_t n, int act_bf16, cudaStream_t s)
{
    if (batch * len * C == 0) return cudaSuccess;
    if (batch > 65535 || (C + TILE - 1) / TILE > 65535) return cudaErrorInvalidValue;
    dim3 grid((unsigned)((len + TILE - 1) / TILE), (unsigned)((C + TILE - 1) / TILE), (unsigned)batch);
    WITH_ACT_TYPE(act_bf16, (fftconv_unpack_fwd_kernel<T><<<grid, dim3(TILE, TROWS), 0, s>>>(
                                (T *)y, ldy, conv, (const T *)x0, ldx0, (const T *)x1, ldx1, (const T *)v, ldv, D,
                                buf, len, C, n)));
    return cudaGetLastError();
}

/* Blocks z = 0: dx0, dx1, dv over (batch, 32-row tile) units, a
 * grid-stride loop over them, and the block's partial column sums of dD's
 * terms dy x0 x1 v into dD_part's row blockIdx.x (its 8 row lanes added in
 * lane order: no atomics); z = 1: dk += K over the row tiles. The buffer
 * holds [conv][corr][K] sequences, or [corr][K] where the forward kept the
 * convolution in (batch len, C) rows (kept_conv). Each thread reads an
 * element's inputs before it writes that element's outputs, so dD needs
 * no pass of its own before the outputs are written. */
template <class T>
__global__ void __launch_bounds__(TILE *TROWS)
    fftconv_unpack_bwd_kernel(T *dx0, int64_t lddx0, T *dx1, int64_t lddx1, T *dv, int64_t lddv, float *dk,
                              float *dD_part, const T *dy, int64_t lddy, const T *x0, int64_t ldx0, const T *x1,
                              int64_t ldx1, const T *v, int64_t ldv, const float *D, const float *kept_conv,
                              const float *buf, int64_t batch, int64_t len, int64_t C, int64_t n)
{
    __shared__ float conv[TILE][TILE + 1], corr[TILE][TILE + 1];
    int64_t c0 = (int64_t)blockIdx.y * TILE, c = c0 + threadIdx.x, corr0 = kept_conv ? 0 : batch;
    int64_t tiles = (len + TILE - 1) / TILE;
    if (blockIdx.z == 1) {   /* dk (len, C) += K's sequences */
        for (int64_t tb = blockIdx.x; tb < tiles; tb += gridDim.x) {
            int64_t t0 = tb * TILE;
            __syncthreads();   /* the previous tile's readers are done */
            load_seq_tile(conv, buf, corr0 + batch, t0, c0, len, C, n);
            __syncthreads();
            if (c < C)
                for (int i = threadIdx.y; i < TILE; i += TROWS) {
                    int64_t t = t0 + i;
                    if (t >= len) break;
                    dk[t * C + c] += conv[threadIdx.x][i];
                }
        }
        return;
    }
    float d = c < C ? D[c] : 0.0f, dd = 0;
    for (int64_t u = blockIdx.x; u < batch * tiles; u += gridDim.x) {
        int64_t b = u / tiles, t0 = (u - b * tiles) * TILE;
        __syncthreads();
        if (!kept_conv) load_seq_tile(conv, buf, b, t0, c0, len, C, n);
        load_seq_tile(corr, buf, corr0 + b, t0, c0, len, C, n);
        __syncthreads();
        if (c < C)
            for (int i = threadIdx.y; i < TILE; i += TROWS) {
                int64_t t = t0 + i, r = b * len + t;
                if (t >= len) break;
                float x1v = ld_f(x1 + r * ldx1 + c), vv = ld_f(v + r * ldv + c), x0v = ld_f(x0 + r * ldx0 + c);
                float g = ld_f(dy + r * lddy + c), cv = kept_conv ? kept_conv[r * C + c] : conv[threadIdx.x][i];
                st_f(dx0 + r * lddx0 + c, g * (cv + d * (x1v * vv)));
                float ds = corr[threadIdx.x][i] + d * (g * x0v);
                st_f(dx1 + r * lddx1 + c, ds * vv);
                st_f(dv + r * lddv + c, ds * x1v);
                dd += (g * x0v) * (x1v * vv);
            }
    }
    __syncthreads();
    conv[threadIdx.y][threadIdx.x] = dd;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float sum = 0;
        for (int j = 0; j < TROWS; j++) sum += conv[j][threadIdx.x];
        dD_part[(int64_t)blockIdx.x * C + c] = sum;
    }
}

/* a (rows, ld) fp32 matrix's columns, for hyena_colsum_add */
struct fftconv_part_term {
    const float *part;
    int64_t ld;
    __device__ void operator()(int64_t r, int64_t c, float *acc) const { acc[0] += part[r * ld + c]; }
};

/* the backward unpack's blocks along x (a grid-stride loop over its units):
 * enough to fill the GPU, few enough partial rows of dD to add up after it */
static const int64_t UNPACK_BWD_MAX_BLOCKS = 1024;

template <class T>
static cudaError_t unpack_bwd(T *dx0, int64_t lddx0, T *dx1, int64_t lddx1, T *dv, int64_t lddv, float *dk, float *dD,
                              const T *dy, int64_t lddy, const T *x0, int64_t ldx0, const T *x1, int64_t ldx1,
                              const T *v, int64_t ldv, const float *D, const float *kept_conv, const float *buf,
                              int64_t batch, int64_t len, int64_t C, int64_t n, float *scratch, size_t scratch_floats,
                              cudaStream_t s)
{
    /* dD's partials: gx rows of C at the scratch's start, half of it at most */
    int64_t units = batch * ((len + TILE - 1) / TILE);
    int64_t gx = units < UNPACK_BWD_MAX_BLOCKS ? units : UNPACK_BWD_MAX_BLOCKS;
    if (gx > (int64_t)(scratch_floats / 2) / C) gx = (int64_t)(scratch_floats / 2) / C;
    if (gx < 1) return cudaErrorInvalidValue;
    dim3 grid((unsigned)gx, (unsigned)((C + TILE - 1) / TILE), 2);
    fftconv_unpack_bwd_kernel<T><<<grid, dim3(TILE, TROWS), 0, s>>>(dx0, lddx0, dx1, lddx1, dv, lddv, dk, scratch, dy,
                                                                     lddy, x0, ldx0, x1, ldx1, v, ldv, D, kept_conv,
                                                                     buf, batch, len, C, n);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    /* dD += the partials in row order */
    float *dst[1] = {dD};
    return hyena_colsum_add<1>(dst, 1, gx, C, fftconv_part_term{scratch, C}, scratch + gx * C,
                               scratch_floats - (size_t)(gx * C), s);
}

extern "C" cudaError_t mdk_fftconv_unpack_bwd(void *dx0, int64_t lddx0, void *dx1, int64_t lddx1, void *dv,
                                              int64_t lddv, float *dk, float *dD, const void *dy, int64_t lddy,
                                              const void *x0, int64_t ldx0, const void *x1, int64_t ldx1,
                                              const void *v, int64_t ldv, const float *D, const float *kept_conv,
                                              const float *buf, int64_t batch, int64_t len, int64_t C, int64_t n,
                                              float *scratch, size_t scratch_floats, int act_bf16, cudaStream_t s)
{
    if (batch * len * C == 0) return cudaSuccess;
    if ((C + TILE - 1) / TILE > 65535) return cudaErrorInvalidValue;
    cudaError_t e;
    WITH_ACT_TYPE(act_bf16, e = unpack_bwd<T>((T *)dx0, lddx0, (T *)dx1, lddx1, (T *)dv, lddv, dk, dD, (const T *)dy,
                                              lddy, (const T *)x0, ldx0, (const T *)x1, ldx1, (const T *)v, ldv, D,
                                              kept_conv, buf, batch, len, C, n, scratch, scratch_floats, s));
    return e;
}
