# Data-parallel finetune on the CPU through MPI: 2 ranks give the
# one-process run (weights, epoch figures, test confusion) with a step of 7
# examples, so that the last micro-batch leaves rank 1 without any; a run
# stopped on 2 ranks continues on 1. Tolerances as in dist_mpi.sh.
. "$MD_TESTS/clilib.sh"

need_mpi

$MD simulate genomes -q --seed 3 -f 2bit --chroms 3 --length 20k -o "$T/g" || { bad "simulate"; finish; exit 1; }
SP="human=$T/g/human.2bit chimp=$T/g/chimpanzee.2bit bonobo=$T/g/bonobo.2bit"
FAST="-x cpu -t 1 --from-scratch --d-model 16 --n-layer 2 -L 64 -B 7 --micro-batch 3 --epochs 2 --steps-per-epoch 3
      --val-windows 4 --test-windows 6 --val-contigs chr2 --test-contigs chr3"
close() {
    local w
    if w=$(python3 "$MD_TESTS/st_close.py" "$2" "$3" 1e-4); then ok; else bad "$1: weights differ by $w"; fi
}
# figures A.tsv B.tsv: the numeric columns agree to 2e-5 (provenance lines aside)
figures() {
    paste <(grep -v '^#' "$1") <(grep -v '^#' "$2") | awk -F '\t' '
        NR > 1 { h = NF / 2; for (i = 1; i <= h; i++) { d = $i - $(i + h); if (d > 2e-5 || d < -2e-5) bad++ } }
        END { exit bad > 0 }'
}

expect_ok "one process" $MD finetune $FAST -o "$T/one.safetensors" $SP
expect_ok "2 ranks" $MPIRUN -np 2 $MD finetune $FAST -o "$T/two.safetensors" $SP
grep -q 'rank 0 of 2 (mpi)' "$T/err" && ok || bad "2 ranks: $(grep rank "$T/err")"
close "2 ranks" "$T/two.safetensors" "$T/one.safetensors"
figures "$T/one.epochs.tsv" "$T/two.epochs.tsv" && ok || bad "epoch figures differ: $(paste "$T/one.epochs.tsv" "$T/two.epochs.tsv")"
figures "$T/one.test-confusion.tsv" "$T/two.test-confusion.tsv" && ok || bad "test confusion differs"

expect_ok "2 ranks to step 2" $MPIRUN -np 2 $MD finetune $FAST --stop-at 2 -o "$T/r.safetensors" $SP
expect_ok "then 1 rank" $MD finetune $FAST --resume "$T/r.safetensors" -o "$T/r.safetensors" $SP
grep -q 'resumed from .* at step 2' "$T/err" && ok || bad "not resumed at step 2"
close "2 ranks then 1" "$T/r.safetensors" "$T/one.safetensors"
figures "$T/one.epochs.tsv" "$T/r.epochs.tsv" && ok || bad "resumed epoch figures differ"

# The same through the --gpus launcher (-x cpu test mode, the NCCL stand-in)
if [ -n "${MD_NCCL_STUB:-}" ] && [ -f "$MD_NCCL_STUB" ]; then
    mkdir -p "$T/shm"
    MD_NCCL_LIBRARY=$MD_NCCL_STUB MD_NCCL_STUB_DIR=$T/shm expect_ok "--gpus 0,1" \
        $MD finetune $FAST --gpus 0,1 -o "$T/g2.safetensors" $SP
    close "--gpus 0,1" "$T/g2.safetensors" "$T/one.safetensors"
fi

finish
