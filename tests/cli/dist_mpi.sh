# Data-parallel pretraining on the CPU through MPI (mpirun -np 2 and 3):
# the run equals the one-process run with the same global batch, and a
# checkpoint continues on another number of ranks; the communicator's
# collectives on 3 ranks (test_comm). Skipped without mpirun or MPI.
#
# Tolerance: the ranks' gradient sums are added by MPI_Allreduce, not in the
# one process's order, so f32 sums differ in their last bits (~1e-7
# relative); AdamW's normalisation by sqrt(v) lets that grow in elements
# with near-zero gradients, measured up to 1e-5 relative after 8 steps.
# Losses (6 decimals in the metrics) must agree to 2e-5, weights to 1e-4.
# A wrong split (a window twice or missing, or gradients not summed) moves
# the losses by ~1e-3 and the weights by ~1e-1.
. "$MD_TESTS/clilib.sh"

need_mpi
BIN=${MD_TEST_BIN:-$(dirname "$MD")/tests}

random_genome "$T/g.fa"

TINY="-x cpu -t 1 --d-model 16 --n-layer 2 -L 96 --tokens-per-step 768 --steps 8 --lr 3e-3 --seed 5 --log-every 1"

# same_losses A.tsv B.tsv: the metrics' loss columns agree to 2e-5
same_losses() {
    paste <(grep -v '^#' "$1" | cut -f 1,5) <(grep -v '^#' "$2" | cut -f 1,5) | awk -F '\t' '
        NR == 1 { next } { n++; d = $2 - $4; if ($1 != $3 || d > 2e-5 || d < -2e-5) bad++ }
        END { exit !(n == 8 && bad == 0) }'
}
# close DESC A B: weights agree to 1e-4 relative
close() {
    local w
    if w=$(python3 "$MD_TESTS/st_close.py" "$2" "$3" 1e-4); then ok; else bad "$1: weights differ by $w"; fi
}

# With validation and periodic saves, which rank 0 alone does (the same
# windows and figures as one process).
VAL="--val-fraction 0.15 --val-every 4 --val-windows 5 --save-every 4"
expect_ok "one process" $MD pretrain $TINY -B 4 $VAL --metrics "$T/one.tsv" -o "$T/one.safetensors" "$T/g.fa"
expect_ok "2 ranks" $MPIRUN -np 2 $MD pretrain $TINY -B 4 $VAL --metrics "$T/two.tsv" -o "$T/two.safetensors" "$T/g.fa"
grep -q 'rank 0 of 2 (mpi)' "$T/err" && ok || bad "2 ranks: $(grep rank "$T/err")"
[ "$(grep -c 'step [48] validation' "$T/err")" -eq 2 ] && [ "$(grep -c 'step [48]: saved' "$T/err")" -eq 2 ] && ok ||
    bad "2 ranks: not two validations and two saves: $(grep -E 'validation|saved' "$T/err")"
same_losses "$T/one.tsv" "$T/two.tsv" && ok || bad "2 ranks' losses differ: $(paste "$T/one.tsv" "$T/two.tsv" | cut -f 5,15)"
paste <(grep -v '^#' "$T/one.tsv" | cut -f 8) <(grep -v '^#' "$T/two.tsv" | cut -f 8) | awk -F '\t' '
    NR > 1 && $1 != "NA" { n++; d = $1 - $2; if (d > 2e-5 || d < -2e-5) bad++ } END { exit !(n == 2 && !bad) }' && ok ||
    bad "validation losses differ: $(paste "$T/one.tsv" "$T/two.tsv" | cut -f 8,18)"
close "2 ranks" "$T/two.safetensors" "$T/one.safetensors"

# 3 ranks sharing micro-batches of 5 unevenly (2, 2, 1)
expect_ok "one process, -B 5" $MD pretrain $TINY -B 5 --metrics "$T/one5.tsv" -o "$T/one5.safetensors" "$T/g.fa"
expect_ok "3 ranks, -B 5" $MPIRUN -np 3 $MD pretrain $TINY -B 5 --metrics "$T/three.tsv" -o "$T/three.safetensors" "$T/g.fa"
same_losses "$T/one5.tsv" "$T/three.tsv" && ok || bad "3 ranks' losses differ"
close "3 ranks" "$T/three.safetensors" "$T/one5.safetensors"

# Resuming on another number of ranks: 2 -> 1 and 1 -> 2 continue the run.
expect_ok "2 ranks to step 4" $MPIRUN -np 2 $MD pretrain $TINY -B 4 $VAL --stop-at 4 -o "$T/r21.safetensors" "$T/g.fa"
expect_ok "then 1 rank" $MD pretrain $TINY -B 4 $VAL --resume "$T/r21.safetensors" "$T/g.fa"
grep -q 'resumed from .* at step 4' "$T/err" && ok || bad "2 -> 1: not resumed at step 4"
close "2 ranks then 1" "$T/r21.safetensors" "$T/one.safetensors"
expect_ok "1 rank to step 4" $MD pretrain $TINY -B 4 $VAL --stop-at 4 -o "$T/r12.safetensors" "$T/g.fa"
expect_ok "then 2 ranks" $MPIRUN -np 2 $MD pretrain $TINY -B 4 $VAL --resume "$T/r12.safetensors" "$T/g.fa"
close "1 rank then 2" "$T/r12.safetensors" "$T/one.safetensors"

# The collectives themselves on 3 ranks
expect_ok "test_comm on 3 ranks" $MPIRUN -np 3 "$BIN/test_comm"
[ "$(grep -c ' 0 failed' "$T/out")" -eq 3 ] && ok || bad "test_comm: $(cat "$T/out")"

finish
