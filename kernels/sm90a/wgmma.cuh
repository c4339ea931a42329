/* Hopper warpgroup MMA (wgmma.mma_async, PTX ISA "Asynchronous
 * Warpgroup Level Matrix Multiply-Accumulate") through small inline-PTX
 * helpers: shared-memory matrix descriptors for the one layout used here
 * (128-byte swizzle, bf16 rows of 64 values), the fence / commit / wait
 * trio, and one wrapper per product shape. Only meaningful when compiled
 * for sm_90a (__CUDA_ARCH_FEAT_SM90_ALL); elsewhere the helpers compile to
 * nothing and the kernels that use them must never be launched.
 *
 * A warpgroup is 4 consecutive warps (threads 128 w .. 128 w + 127) that
 * issue every wgmma together. For the m64nNk16 shapes with bf16 inputs and
 * fp32 accumulation, warp w % 4 of the group owns rows 16 (w % 4) .. + 15
 * of the 64-row product, and within the warp (g = lane / 4, c = lane % 4):
 *   A in registers (4 x 32 bits, 2 bf16 each): row g cols 2c, 2c + 1;
 *     row g + 8 same cols; row g cols 2c + 8, 2c + 9; row g + 8 same --
 *     mma.sync m16n8k16's A fragment;
 *   D (N / 2 floats): d[4j .. 4j + 1] row g cols 8j + 2c, 8j + 2c + 1;
 *     d[4j + 2 .. 4j + 3] row g + 8 same cols -- mma.sync's C fragment
 *     repeated over the N / 8 column blocks.
 * So attention_mma.cuh's fragment code (c_to_a, store_rows, load_a_frags)
 * serves both instruction families.
 *
 * Shared layout (SW128): a tile of R rows of 64 bf16 (128 bytes each, R a
 * multiple of 8), 1024-byte aligned; row r at byte 128 r, its 16-byte chunk
 * c (values 8c .. 8c + 7) at chunk position c ^ (r % 8). The hardware
 * applies that XOR to address bits [4, 7) from bits [7, 10), which is why
 * the tile must be 1024-byte aligned. Both operands here use it:
 *   K-major B (S = Q K^T: B = K^T, the key tile's rows are B's columns,
 *     the head dim -- B's k index -- contiguous): a product of k16 reads
 *     32 bytes of every row; the next k16 step starts 32 bytes further;
 *   MN-major B (O += P V, transpose flag set: V's rows are B's k index,
 *     its 64 columns -- B's n index -- contiguous): a k16 step reads 16
 *     rows; the next step starts 16 rows (2048 bytes) further.
 */
#ifndef MD_KERNELS_WGMMA_CUH
#define MD_KERNELS_WGMMA_CUH

#include <stdint.h>

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MD_WGMMA_ON 1
#else
#define MD_WGMMA_ON 0
#endif

namespace {

/* The 64-bit shared-memory matrix descriptor of an SW128 tile (layout
 * above) whose first byte wgmma should read is at shared address addr:
 *   bits  0-13  addr >> 4 (the start address in 16-byte units);
 *   bits 16-29  leading-dimension byte offset >> 4: for K-major SW128 it is
 *               unused (one k16 step lies inside a 128-byte row); for
 *               MN-major it is the step between 64-column blocks in n, of
 *               which our 64-wide tiles have one: unused too. Set to 1024
 *               like the stride so that neither reading can misplace data;
 *   bits 32-45  stride-dimension byte offset >> 4: the step between groups
 *               of 8 rows (one swizzle atom of 8 x 128 bytes) = 1024;
 *   bits 49-51  base offset: 0, every tile starts on a 1024-byte boundary
 *               (the 32-byte k steps of a K-major operand leave bits [7, 10)
 *               of the address, the row within the atom, untouched);
 *   bits 62-63  swizzle mode: 1 = 128-byte swizzle.
 * Other bits are zero. */
__device__ __forceinline__ uint64_t sw128_desc(uint32_t addr)
{
    const uint64_t atom = 1024 >> 4;
    return (uint64_t)((addr >> 4) & 0x3FFF) | (atom << 16) | (atom << 32) | ((uint64_t)1 << 62);
}

/* Orders this thread's earlier register writes (accumulators, A fragments)
 * before the wgmma that follow: needed before the first wgmma of a batch. */
__device__ __forceinline__ void wgmma_fence()
{
#if MD_WGMMA_ON
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}

/* Closes the wgmma issued since the last commit into one group */
__device__ __forceinline__ void wgmma_commit()
{
#if MD_WGMMA_ON
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}

/* Waits until at most N committed groups are in flight: their
 * accumulators are then readable and their shared tiles free */
template <int N>
__device__ __forceinline__ void wgmma_wait()
{
#if MD_WGMMA_ON
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}

/* Makes this thread's completed generic-proxy writes to shared memory
 * (cp.async, st.shared) visible to the async proxy that wgmma reads
 * through; then a barrier publishes them to the other threads. */
__device__ __forceinline__ void fence_async_shared()
{
#if MD_WGMMA_ON
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

/* Pins the compiler's view of an accumulator: it may not move reads or
 * writes of v across this point (wgmma writes v asynchronously, which
 * the compiler does not see). */
template <int N>
__device__ __forceinline__ void reg_fence(float (*v)[4])
{
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+f"(v[i][0]), "+f"(v[i][1]), "+f"(v[i][2]), "+f"(v[i][3])::"memory");
}

/* The 32 accumulator operands of an m64n64 wgmma, d[8][4] */
#define MD_WGMMA_D64(d)                                                                                              \
    "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),          \
        "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]),      \
        "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]),      \
        "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),      \
        "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
#define MD_WGMMA_D64_LIST                                                                                            \
    "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,"  \
    "%30,%31}"

/* d (64 x 64, fp32, layout above) = a (64 x 16 bf16, registers) times B
 * (16 x 64 bf16 at descriptor b), plus d when accumulate is nonzero.
 * TRANS_B: 0 for a K-major B, 1 for an MN-major one. */
template <int TRANS_B>
__device__ __forceinline__ void wgmma_m64n64k16(float (*d)[4], const uint32_t a[4], uint64_t b, int accumulate)
{
#if MD_WGMMA_ON
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " MD_WGMMA_D64_LIST
                 ", {%32,%33,%34,%35}, %36, p, 1, 1, %38;\n}\n"
                 : MD_WGMMA_D64(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate), "n"(TRANS_B));
#endif
}

/* The same with A (64 x 16 bf16) from shared memory too: a K-major SW128
 * tile at descriptor a (rows of A as a K-major B's columns are: a k16
 * step 32 bytes on in every row) */
template <int TRANS_B>
__device__ __forceinline__ void wgmma_m64n64k16_ss(float (*d)[4], uint64_t a, uint64_t b, int accumulate)
{
#if MD_WGMMA_ON
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " MD_WGMMA_D64_LIST
                 ", %32, %33, p, 1, 1, 0, %35;\n}\n"
                 : MD_WGMMA_D64(d)
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TRANS_B));
#endif
}

/* The wider accumulators: 8 column blocks d[j .. j + 7] as operands, and
 * the register lists of the first and second 64 */
#define MD_WGMMA_DJ(d, j) "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
#define MD_WGMMA_D8J(d, j)                                                                                           \
    MD_WGMMA_DJ(d, j), MD_WGMMA_DJ(d, j + 1), MD_WGMMA_DJ(d, j + 2), MD_WGMMA_DJ(d, j + 3), MD_WGMMA_DJ(d, j + 4),  \
        MD_WGMMA_DJ(d, j + 5), MD_WGMMA_DJ(d, j + 6), MD_WGMMA_DJ(d, j + 7)
#define MD_WGMMA_R0_63                                                                                               \
    "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15," \
    "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31," \
    "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47," \
    "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
#define MD_WGMMA_R64_127                                                                                             \
    "%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79," \
    "%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95," \
    "%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111," \
    "%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127"

/* m64n128k16 and m64n256k16 with both operands from shared memory (as
 * wgmma_m64n64k16_ss): d is N / 8 column blocks of 8, the layout above */
template <int TRANS_B>
__device__ __forceinline__ void wgmma_m64n128k16_ss(float (*d)[4], uint64_t a, uint64_t b, int accumulate)
{
#if MD_WGMMA_ON
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" MD_WGMMA_R0_63
                 "}, %64, %65, p, 1, 1, 0, %67;\n}\n"
                 : MD_WGMMA_D8J(d, 0), MD_WGMMA_D8J(d, 8)
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TRANS_B));
#endif
}

template <int TRANS_B>
__device__ __forceinline__ void wgmma_m64n256k16_ss(float (*d)[4], uint64_t a, uint64_t b, int accumulate)
{
#if MD_WGMMA_ON
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {" MD_WGMMA_R0_63 "," MD_WGMMA_R64_127
                 "}, %128, %129, p, 1, 1, 0, %131;\n}\n"
                 : MD_WGMMA_D8J(d, 0), MD_WGMMA_D8J(d, 8), MD_WGMMA_D8J(d, 16), MD_WGMMA_D8J(d, 24)
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TRANS_B));
#endif
}

}   // namespace

#endif
