# The data-parallel gradient exchange on the CPU through MPI (mpirun -np 2
# and 3): gradients all-reduced in buckets during the backward give the
# same bits as one all-reduce after it, and ZeRO-1 (--zero1) the same run
# with the optimizer state sharded, its checkpoint whole and resumable on
# another number of ranks. Skipped without mpirun or MPI.
#
# Why exact: every gradient element is summed by exactly one all-reduce
# over the same ranks' values, whatever the bucket, so the sums -- and all
# that follows -- are the same bits. Under ZeRO-1 the reduce-scatter adds
# the same values, AdamW is element-wise, and only the global norm is
# summed in another order (shards' squared norms, then added): the clip
# factor may move by an f32 rounding (~1e-7 relative), which AdamW's
# normalisation by sqrt(v) all but cancels; weights must agree to 1e-5 and
# the moments to 1e-5 (measured: 0 on this model, where no step is clipped
# at the default --clip 1). A wrong bucket (started before its gradients
# were final, or a shard applied to the wrong range) moves weights by ~1e-2.
. "$MD_TESTS/clilib.sh"

need_mpi

random_genome "$T/g.fa"
# two micro-batches per step (only the last one's backward starts buckets);
# -B 4 on 3 ranks is shared 2, 1, 1: rank 0 runs sequence by sequence and
# learns of its final gradients only at the end, ranks 1 and 2 block by
# block -- the buckets must still start in one order on all.
TINY="-x cpu -t 1 --d-model 16 --n-layer 2 -L 96 -B 4 --tokens-per-step 768 --steps 4 --lr 3e-3 --seed 5 --log-every 1"

for np in 2 3; do
    expect_ok "$np ranks, one all-reduce" $MPIRUN -np $np $MD pretrain $TINY --bucket-mb 0 \
        -o "$T/one$np.safetensors" "$T/g.fa"
    grep -q 'one all-reduce of .* after the backward' "$T/err" && ok || bad "--bucket-mb 0: not one all-reduce"
    expect_ok "$np ranks, buckets" $MPIRUN -np $np $MD pretrain $TINY --bucket-mb 0.002 --metrics "$T/b$np.tsv" \
        -o "$T/b$np.safetensors" "$T/g.fa"
    grep -q '[0-9][0-9]* buckets of about 0.002 MiB, all-reduced during the backward' "$T/err" && ok ||
        bad "--bucket-mb 0.002: $(grep 'gradient exchange' "$T/err")"
    tensors_close "$np ranks: buckets against one all-reduce" "$T/b$np.safetensors" "$T/one$np.safetensors" 0
    # (the default, 25 MiB, is one bucket for this model)
    expect_ok "$np ranks, ZeRO-1" $MPIRUN -np $np $MD pretrain $TINY --zero1 --metrics "$T/z$np.tsv" \
        -o "$T/z$np.safetensors" "$T/g.fa"
    grep -q "ZeRO-1: AdamW moments of [0-9]* of the [0-9]* parameters on each of $np ranks" "$T/err" && ok ||
        bad "--zero1 on $np: no plan line"
    paste <(grep -v '^#' "$T/b$np.tsv" | cut -f 5) <(grep -v '^#' "$T/z$np.tsv" | cut -f 5) | awk -F '\t' '
        NR > 1 { n++; d = $1 - $2; if (d > 2e-6 || d < -2e-6) bad++ } END { exit !(n == 4 && !bad) }' && ok ||
        bad "$np ranks: ZeRO-1's losses differ: $(paste "$T/b$np.tsv" "$T/z$np.tsv" | cut -f 5,15)"
    tensors_close "$np ranks: ZeRO-1's weights" "$T/z$np.safetensors" "$T/one$np.safetensors" 1e-5
    tensors_close "$np ranks: ZeRO-1's gathered moments" "$T/z$np.state.safetensors" "$T/one$np.state.safetensors" 1e-5
done

# One process through ZeRO-1's path (its shard is everything): the plain
# run's bits, also across a resume
expect_ok "one process" $MD pretrain $TINY -o "$T/p1.safetensors" "$T/g.fa"
expect_ok "one process, ZeRO-1" $MD pretrain $TINY --zero1 --stop-at 2 -o "$T/z1.safetensors" "$T/g.fa"
grep -q "ZeRO-1: AdamW moments of [0-9]* of the [0-9]* parameters on each of 1 rank:" "$T/err" && ok ||
    bad "--zero1 alone: no plan line"
expect_ok "one process, ZeRO-1 resumed" $MD pretrain $TINY --zero1 --resume "$T/z1.safetensors" "$T/g.fa"
tensors_close "one process, ZeRO-1" "$T/z1.safetensors" "$T/p1.safetensors" 0
tensors_close "one process, ZeRO-1's moments" "$T/z1.state.safetensors" "$T/p1.state.safetensors" 0

# A ZeRO-1 checkpoint continues on another number of ranks, with or without
# ZeRO-1 (the state file holds the whole moments). Another rank count adds
# the ranks' sums in another order: dist_mpi.sh's tolerance, 1e-4.
expect_ok "ZeRO-1 on 3 ranks to step 2" $MPIRUN -np 3 $MD pretrain $TINY --zero1 --stop-at 2 \
    -o "$T/r32.safetensors" "$T/g.fa"
expect_ok "then ZeRO-1 on 2" $MPIRUN -np 2 $MD pretrain $TINY --zero1 --resume "$T/r32.safetensors" "$T/g.fa"
grep -q 'resumed from .* at step 2' "$T/err" && ok || bad "3 -> 2: not resumed at step 2"
tensors_close "ZeRO-1 3 ranks then 2" "$T/r32.safetensors" "$T/z3.safetensors" 1e-4
expect_ok "ZeRO-1 on 2 ranks to step 2" $MPIRUN -np 2 $MD pretrain $TINY --zero1 --stop-at 2 \
    -o "$T/r21.safetensors" "$T/g.fa"
expect_ok "then one process without" $MD pretrain $TINY --resume "$T/r21.safetensors" "$T/g.fa"
tensors_close "ZeRO-1 2 ranks then 1" "$T/r21.safetensors" "$T/z2.safetensors" 1e-4

# finetune shares the step and saves at every epoch's end (rank 0 after
# its evaluation, the others gathering with it) and at --stop-at
$MD simulate genomes -q --seed 3 -f 2bit --chroms 3 --length 20k -o "$T/sp" || bad "simulate"
SP="human=$T/sp/human.2bit chimp=$T/sp/chimpanzee.2bit bonobo=$T/sp/bonobo.2bit"
FT="-x cpu -t 1 --from-scratch --d-model 16 --n-layer 2 -L 64 -B 7 --micro-batch 3 --epochs 2 --steps-per-epoch 3
    --val-windows 4 --test-windows 6 --val-contigs chr2 --test-contigs chr3"
expect_ok "finetune, 2 ranks" $MPIRUN -np 2 $MD finetune $FT --bucket-mb 0.002 -o "$T/f.safetensors" $SP
expect_ok "finetune, 2 ranks, ZeRO-1" $MPIRUN -np 2 $MD finetune $FT --zero1 -o "$T/fz.safetensors" $SP
tensors_close "finetune ZeRO-1" "$T/fz.safetensors" "$T/f.safetensors" 1e-5
tensors_close "finetune ZeRO-1's moments" "$T/fz.state.safetensors" "$T/f.state.safetensors" 1e-5
expect_ok "finetune ZeRO-1 to step 4" $MPIRUN -np 2 $MD finetune $FT --zero1 --stop-at 4 -o "$T/fr.safetensors" $SP
expect_ok "then on 3 ranks" $MPIRUN -np 3 $MD finetune $FT --zero1 --resume "$T/fr.safetensors" \
    -o "$T/fr.safetensors" $SP
tensors_close "finetune ZeRO-1 2 ranks then 3" "$T/fr.safetensors" "$T/f.safetensors" 1e-4

# The same exchange through the NCCL stand-in (--gpus, -x cpu test mode)
if [ -n "${MD_NCCL_STUB:-}" ] && [ -f "$MD_NCCL_STUB" ]; then
    mkdir -p "$T/shm" "$T/tmp"
    for opt in "--bucket-mb 0.002" "--zero1"; do
        MD_NCCL_LIBRARY=$MD_NCCL_STUB MD_NCCL_STUB_DIR=$T/shm TMPDIR=$T/tmp expect_ok "--gpus 0,1,2 $opt" \
            $MD pretrain $TINY --gpus 0,1,2 $opt -o "$T/n.safetensors" "$T/g.fa"
        tensors_close "NCCL stand-in, $opt" "$T/n.safetensors" "$T/one3.safetensors" 1e-5
    done
fi

expect_error "negative --bucket-mb" "option --bucket-mb" $MD pretrain $TINY --bucket-mb -1 -o "$T/e.safetensors" "$T/g.fa"
no_file "negative --bucket-mb" "$T/e.safetensors"
finish
