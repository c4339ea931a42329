/* mambadna version: the build details a bug report needs. */
#include <htslib/hts.h>
#include <jansson.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "backend/device.h"
#include "build_info.h"
#include "cmd/cmd.h"
#include "dist/comm.h"
#include "util/cli.h"

char *openblas_get_config(void);

int cmd_version(int argc, char **argv)
{
    md_common_opts_t co;
    md_common_init(&co);
    static const struct option longopts[] = {MD_COMMON_LONGOPTS, {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, MD_COMMON_SHORTOPTS, longopts, NULL)) >= 0) {
        if (c == 'h') {
            printf("Usage: mambadna version [--json]\n\nPrints the version and what this binary was built with.\n");
            return 0;
        }
        int r = md_common_opt(&co, c, optarg);
        if (r < 0) return 1;
        if (r == 0) { md_report_bad_option("version", c, argv[optind - 1]); return 1; }
    }
    int n_gpu = md_cuda_device_count();
    if (co.json) {
        printf("{\"version\": \"%s\", \"git\": \"%s\", \"build\": \"%s\", \"compiler\": \"%s\", "
               "\"htslib\": \"%s\", \"zlib\": \"%s\", \"jansson\": \"%s\", \"blas\": \"%s\", "
               "\"openmp_threads\": %d, \"cuda_compiled\": %s, \"cuda\": \"%s\", \"gpus\": %d}\n",
               MD_VERSION, MD_GIT_DESCRIBE, MD_BUILD_TYPE, MD_C_COMPILER, hts_version(), zlibVersion(),
               JANSSON_VERSION, openblas_get_config(), omp_get_max_threads(),
               md_cuda_compiled() ? "true" : "false", md_cuda_version_string(), n_gpu);
        return 0;
    }
    printf("mambadna %s\n", MD_VERSION);
    printf("git:       %s\n", MD_GIT_DESCRIBE);
    printf("build:     %s, %s\n", MD_BUILD_TYPE, MD_C_COMPILER);
    printf("htslib:    %s\n", hts_version());
    printf("zlib:      %s\n", zlibVersion());
    printf("jansson:   %s\n", JANSSON_VERSION);
    printf("blas:      %s\n", openblas_get_config());
    printf("openmp:    %d threads available\n", omp_get_max_threads());
    printf("cuda:      %s, runtime %s\n", md_cuda_compiled() ? "compiled in" : "not compiled in",
           md_cuda_version_string());
    printf("gpus:      %d present\n", n_gpu);
    printf("mpi:       %s\n", md_comm_mpi_compiled() ? "compiled in" : "not compiled in");
    return 0;
}
