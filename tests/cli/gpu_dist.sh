# Data-parallel pretraining through NCCL on the GPU: one rank (--gpus 0)
# gives the very losses and weights of the same run without --gpus (a sum
# over one rank changes nothing), and the launcher's checks against the
# GPUs present. Where two or more GPUs are visible, --gpus 0,1 equals the
# one-GPU run to the fp32 tolerance of tests/cli/dist_mpi.sh. Skipped
# without a GPU or without NCCL (libnccl.so.2 on the library path, in a pip
# install of PyTorch, or MD_NCCL_LIBRARY).
. "$MD_TESTS/clilib.sh"

need_gpu_nccl
random_genome "$T/g.fa"
TINY="--d-model 32 --n-layer 2 -L 128 -B 4 --tokens-per-step 1024 --steps 8 --lr 3e-3 --seed 5 --log-every 1"

expect_ok "one GPU" $MD pretrain -x cuda $TINY --metrics "$T/one.tsv" -o "$T/one.safetensors" "$T/g.fa"
expect_ok "--gpus 0" $MD pretrain $TINY --gpus 0 --metrics "$T/g0.tsv" -o "$T/g0.safetensors" "$T/g.fa"
grep -q 'NCCL [0-9.]* from' "$T/err" && grep -q 'rank 0 of 1' "$T/err" && ok || bad "--gpus 0: NCCL not used"
[ "$(grep -v '^#' "$T/one.tsv" | cut -f 1,4,5,6)" = "$(grep -v '^#' "$T/g0.tsv" | cut -f 1,4,5,6)" ] && ok || \
    bad "--gpus 0 losses differ: $(paste "$T/one.tsv" "$T/g0.tsv" | cut -f 5,15 | tail -n 3)"
w=$(python3 "$MD_TESTS/st_close.py" "$T/g0.safetensors" "$T/one.safetensors" 0) && ok || bad "--gpus 0 weights differ by $w"

expect_error "--gpus 0,0" "GPU 0 is listed twice" $MD pretrain $TINY --gpus 0,0 -o "$T/x.safetensors" "$T/g.fa"
expect_error "a GPU beyond those present" "GPU $n_gpu does not exist; $n_gpu visible" \
    $MD pretrain $TINY --gpus "0,$n_gpu" -o "$T/x.safetensors" "$T/g.fa"
no_file "no checkpoint" "$T/x.safetensors"

if [ "$n_gpu" -ge 2 ]; then
    expect_ok "--gpus 0,1" $MD pretrain $TINY --gpus 0,1 --metrics "$T/g01.tsv" -o "$T/g01.safetensors" "$T/g.fa"
    w=$(python3 "$MD_TESTS/st_close.py" "$T/g01.safetensors" "$T/one.safetensors" 1e-4) && ok || \
        bad "--gpus 0,1 weights differ by $w"
fi
finish
