/* Which compute device a run uses.
 *
 * The spec is the -x/--device value: "cpu", "cuda", "cuda:N" or "auto"
 * (the first GPU when one is compiled in and present, otherwise the CPU).
 */
#ifndef MD_BACKEND_DEVICE_H
#define MD_BACKEND_DEVICE_H

typedef enum { MD_DEVICE_CPU = 0, MD_DEVICE_CUDA = 1 } md_device_kind_t;

typedef struct md_device {
    md_device_kind_t kind;
    int ordinal;          /* GPU index for CUDA, 0 for the CPU */
    char name[256];       /* "CPU (2 threads)" or the GPU's name */
} md_device_t;

/* 1 when this binary was built with the CUDA backend. */
int md_cuda_compiled(void);
/* Number of usable GPUs; 0 in a CPU-only build or without a driver. */
int md_cuda_device_count(void);
/* The CUDA runtime and driver versions as "13.0 (driver 13.0)", or "none". */
const char *md_cuda_version_string(void);

/* Resolves spec. Returns 0, or -1 after one error line naming -x/--device
 * (CUDA asked for in a CPU-only build, no GPU present, ordinal out of range). */
int md_device_resolve(const char *spec, md_device_t *dev);

#endif
