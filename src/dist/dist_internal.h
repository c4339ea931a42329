/* What the --gpus launcher (dist/launch.c) tells its children through the
 * environment, read back by md_dist_setup (dist/dist.c). */
#ifndef MD_DIST_DIST_INTERNAL_H
#define MD_DIST_DIST_INTERNAL_H

#define MD_DIST_ENV_RANK "MAMBADNA_DIST_RANK"
#define MD_DIST_ENV_SIZE "MAMBADNA_DIST_SIZE"
#define MD_DIST_ENV_GPU  "MAMBADNA_DIST_GPU"
#define MD_DIST_ENV_INIT "MAMBADNA_DIST_INIT"   /* file:PATH */

#endif
