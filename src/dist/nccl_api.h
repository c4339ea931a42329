/* The few NCCL entry points mambadna calls, declared here so that the
 * build needs no NCCL headers: the library is loaded at run time
 * (dist/comm_nccl.c). Types and values are those of nccl.h (NCCL 2.x,
 * whose ABI keeps them fixed). */
#ifndef MD_DIST_NCCL_API_H
#define MD_DIST_NCCL_API_H

#include <stddef.h>

typedef struct { char internal[128]; } ncclUniqueId;   /* NCCL_UNIQUE_ID_BYTES */
typedef struct ncclComm *ncclComm_t;
typedef void *md_cuda_stream_t;                        /* cudaStream_t; NULL: the legacy default stream */
typedef int ncclResult_t;                              /* ncclSuccess = 0 */
typedef enum { ncclFloat32 = 7, ncclFloat64 = 8 } ncclDataType_t;
typedef enum { ncclSum = 0 } ncclRedOp_t;

typedef struct md_nccl_api {
    ncclResult_t (*GetUniqueId)(ncclUniqueId *id);
    ncclResult_t (*CommInitRank)(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank);
    ncclResult_t (*AllReduce)(const void *send, void *recv, size_t count, ncclDataType_t dt, ncclRedOp_t op,
                              ncclComm_t comm, md_cuda_stream_t stream);
    ncclResult_t (*ReduceScatter)(const void *send, void *recv, size_t recvcount, ncclDataType_t dt, ncclRedOp_t op,
                                  ncclComm_t comm, md_cuda_stream_t stream);
    ncclResult_t (*AllGather)(const void *send, void *recv, size_t sendcount, ncclDataType_t dt, ncclComm_t comm,
                              md_cuda_stream_t stream);
    ncclResult_t (*Broadcast)(const void *send, void *recv, size_t count, ncclDataType_t dt, int root,
                              ncclComm_t comm, md_cuda_stream_t stream);
    ncclResult_t (*CommDestroy)(ncclComm_t comm);
    const char *(*GetErrorString)(ncclResult_t r);
    ncclResult_t (*GetVersion)(int *version);
} md_nccl_api_t;

#endif
