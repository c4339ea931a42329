# The data-parallel gradient exchange through NCCL on the GPU: with one rank
# (--gpus 0), gradients all-reduced in buckets on NCCL's own stream during
# the backward, and ZeRO-1 (--zero1: reduce-scatter, AdamW on the shard,
# all-gather), give the very losses and weights of the run without --gpus
# (a sum over one rank changes nothing, the shard is every parameter, and
# the norm sums the same squares), a ZeRO-1 checkpoint resumes without it,
# and bench train --gpus 0 times the bucketed step. Where two or more GPUs
# are visible: on --gpus 0,1 the buckets give the bits of one all-reduce
# (every element summed once over the same two values), and ZeRO-1 the same
# weights to 1e-5 (its norm is summed in another order; dist_buckets.sh
# says why that is the bound). Skipped without a GPU or NCCL.
. "$MD_TESTS/clilib.sh"

need_gpu_nccl
random_genome "$T/g.fa"
TINY="--d-model 32 --n-layer 2 -L 128 -B 4 --tokens-per-step 1024 --steps 8 --lr 3e-3 --seed 5 --log-every 1"
losses() { grep -v '^#' "$1" | cut -f 1,4,5,6; }

expect_ok "one GPU" $MD pretrain -x cuda $TINY --metrics "$T/one.tsv" -o "$T/one.safetensors" "$T/g.fa"
for opt in "--bucket-mb 0.01" "--bucket-mb 0" "--zero1"; do
    expect_ok "--gpus 0 $opt" $MD pretrain $TINY --gpus 0 $opt --metrics "$T/g.tsv" -o "$T/g.safetensors" "$T/g.fa"
    [ "$(losses "$T/one.tsv")" = "$(losses "$T/g.tsv")" ] && ok ||
        bad "--gpus 0 $opt: losses differ: $(paste "$T/one.tsv" "$T/g.tsv" | cut -f 5,15 | tail -n 3)"
    tensors_close "--gpus 0 $opt: weights" "$T/g.safetensors" "$T/one.safetensors" 0
    tensors_close "--gpus 0 $opt: moments" "$T/g.state.safetensors" "$T/one.state.safetensors" 0
done
expect_ok "--gpus 0 --zero1 to step 4" $MD pretrain $TINY --gpus 0 --zero1 --stop-at 4 -o "$T/r.safetensors" "$T/g.fa"
expect_ok "then without" $MD pretrain -x cuda $TINY --resume "$T/r.safetensors" "$T/g.fa"
tensors_close "ZeRO-1 then without" "$T/r.safetensors" "$T/one.safetensors" 0

expect_ok "bench train --gpus 0" $MD bench train --d-model 32 --n-layer 2 -L 128 -B 4 --steps 3 --warmup 1 \
    --gpus 0 --bucket-mb 0.01
[ "$(grep -c . "$T/out")" -ge 2 ] && ok || bad "bench train --gpus 0: no table"

if [ "$n_gpu" -ge 2 ]; then
    expect_ok "--gpus 0,1, one all-reduce" $MD pretrain $TINY --gpus 0,1 --bucket-mb 0 -o "$T/a.safetensors" "$T/g.fa"
    expect_ok "--gpus 0,1, buckets" $MD pretrain $TINY --gpus 0,1 --bucket-mb 0.01 -o "$T/b.safetensors" "$T/g.fa"
    grep -q 'buckets of about 0.01 MiB, all-reduced during the backward' "$T/err" && ok || bad "--gpus 0,1: no buckets"
    tensors_close "--gpus 0,1: buckets" "$T/b.safetensors" "$T/a.safetensors" 0
    expect_ok "--gpus 0,1, ZeRO-1" $MD pretrain $TINY --gpus 0,1 --zero1 -o "$T/z.safetensors" "$T/g.fa"
    tensors_close "--gpus 0,1: ZeRO-1" "$T/z.safetensors" "$T/a.safetensors" 1e-5
fi
finish
