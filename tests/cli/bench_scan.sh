# mambadna bench scan without a GPU (CUDA_VISIBLE_DEVICES hides any): -h
# lists the options; a run is one clear error; bad options are caught before
# any device work.
. "$MD_TESTS/clilib.sh"

expect_ok "help" $MD bench scan -h
for o in --shape --dtype --pass --states --reps; do
    grep -q -- "$o" "$T/out" && ok || bad "help lists $o"
done

expect_error "no GPU" "bench scan: (no GPU is visible|this mambadna was built without CUDA)" \
    env CUDA_VISIBLE_DEVICES= $MD bench scan --shape S1
expect_error "bad shape" "option --shape: 'S6'" $MD bench scan --shape S6
# BxDxL is a shape of one's own: parsed exactly, each size >= 1, bounded
expect_error "custom shape, no GPU" "bench scan: (no GPU is visible|this mambadna was built without CUDA)" \
    env CUDA_VISIBLE_DEVICES= $MD bench scan --shape 16x256x4096
for s in 16x256 16x256x4096x2 0x256x1024 16x-256x1024 16x256x1024k 1024x1024x1025; do
    expect_error "bad shape $s" "option --shape: '$s' is not one of .* BxDxL" $MD bench scan --shape $s
done
expect_error "bad dtype" "option --dtype: 'fp16'" $MD bench scan --dtype fp16
expect_error "bad pass" "option --pass: 'both' is not one of auto, chunked, whole" $MD bench scan --pass both
expect_error "bad states" "option --states: 'chunks' is not one of chunk, segment" $MD bench scan --states chunks
expect_error "bad reps" "reps" $MD bench scan --reps 0
expect_error "stray argument" "takes no arguments" $MD bench scan foo
finish
