#include "train/lmopts.h"

#include <string.h>

#include "util/cli.h"
#include "util/log.h"

void md_lmopts_init(md_lmopts_t *o)
{
    memset(o, 0, sizeof *o);
}

int md_lmopts_parse(md_lmopts_t *o, int idx, const char *arg)
{
    switch (idx) {
    case 0: o->bed = arg; return 1;
    case 1: o->train_split = arg; return 1;
    case 2: o->val_split = arg; return 1;
    case 3:
        if (!*arg) { md_error("option --val-contigs: empty contig list"); return -1; }
        o->val_contigs = arg;
        return 1;
    case 4:
        if (md_parse_double("--val-fraction", arg, 1e-9, 0.999999, &o->val_fraction) < 0) return -1;
        o->fraction_given = 1;
        return 1;
    }
    return 0;
}

int md_lmopts_resolve(const md_lmopts_t *o, md_holdout_t *h)
{
    memset(h, 0, sizeof *h);
    int n = !!o->bed + !!o->val_contigs + o->fraction_given;
    if (n > 1) {
        md_error("options --bed, --val-contigs and --val-fraction conflict: give one source of held-out data");
        return -1;
    }
    if ((o->train_split || o->val_split) && !o->bed) {
        md_error("options --train-split/--val-split need --bed");
        return -1;
    }
    if (o->bed) {
        if (!o->train_split || !o->val_split) {
            md_error("option --bed needs both --train-split and --val-split");
            return -1;
        }
        h->kind = MD_HOLDOUT_BED;
        h->bed_path = o->bed;
        h->train_split = o->train_split;
        h->val_split = o->val_split;
    } else if (o->val_contigs) {
        h->kind = MD_HOLDOUT_CONTIGS;
        h->val_contigs = o->val_contigs;
    } else if (o->fraction_given) {
        h->kind = MD_HOLDOUT_FRACTION;
        h->val_fraction = o->val_fraction;
    }
    return 0;
}
