# mambadna bench attention without a GPU (CUDA_VISIBLE_DEVICES hides any):
# -h lists the options; a run is one clear error; bad options are caught
# before any device work.
. "$MD_TESTS/clilib.sh"

expect_ok "help" $MD bench attention -h
for o in --seq-len --heads --head-dim --precision --reps --tokens; do
    grep -q -- "$o" "$T/out" && ok || bad "help lists $o"
done
expect_ok "listed under bench -h" $MD bench -h
grep -q "attention" "$T/out" && ok || bad "bench -h lists attention"

expect_error "no GPU" "bench attention: (no GPU is visible|this mambadna was built without CUDA)" \
    env CUDA_VISIBLE_DEVICES= $MD bench attention -L 1024
expect_error "odd head dim" "head-dim 63.*even" $MD bench attention --head-dim 63
expect_error "bad precision" "precision.*fp16" $MD bench attention --precision fp16
expect_error "bad length" "seq-len" $MD bench attention -L 0
expect_error "stray argument" "takes no arguments" $MD bench attention foo
finish
