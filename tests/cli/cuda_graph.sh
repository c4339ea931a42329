# --cuda-graph (train/graphstep.h) on a machine without a GPU, or with -x
# cpu: a bad value is one error; "on" is refused on the CPU, before any
# output is written; "auto" and "off" leave the CPU's training as it is
# (the same checkpoint, bit for bit, as without the option). The GPU side
# (graph vs op by op vs the host path, bit for bit) is test_gpu_graphstep.
. "$MD_TESTS/clilib.sh"

random_genome "$T/g.fa"
train() { $MD pretrain -x cpu -t 1 --d-model 16 --n-layer 1 -L 32 -B 2 --tokens-per-step 128 --steps 3 "$@" "$T/g.fa"; }

expect_ok "pretrain help" $MD pretrain -h
grep -q -- "--cuda-graph STR" "$T/out" && ok || bad "pretrain help lists --cuda-graph"
expect_ok "bench train help" $MD bench train -h
grep -q -- "--cuda-graph STR" "$T/out" && ok || bad "bench train help lists --cuda-graph"

expect_error "pretrain, bad value" "option --cuda-graph: 'maybe' is not one of auto, on, off" \
    train --cuda-graph maybe -o "$T/bad.safetensors"
no_file "no checkpoint after a bad value" "$T/bad.safetensors"
expect_error "bench train, bad value" "option --cuda-graph: '' is not one of auto, on, off" \
    $MD bench train -x cpu --cuda-graph ""
expect_error "pretrain, on with -x cpu" "option --cuda-graph on: the CPU has no CUDA graphs; use --cuda-graph auto or off" \
    train --cuda-graph on -o "$T/on.safetensors"
no_file "no checkpoint when refused" "$T/on.safetensors"
expect_error "bench train, on with -x cpu" "option --cuda-graph on: the CPU has no CUDA graphs" \
    $MD bench train -x cpu -t 1 --preset 250K -L 16 -B 2 --steps 1 --warmup 0 --cuda-graph on

# auto and off change nothing on the CPU, and say nothing about graphs
expect_ok "pretrain, no option" train -o "$T/plain.safetensors"
for mode in auto off; do
    expect_ok "pretrain, $mode" train --cuda-graph $mode -o "$T/$mode.safetensors"
    grep -q "training step" "$T/err" && bad "$mode: a log line about the step on the CPU" || ok
    same_tensors "$T/plain.safetensors" "$T/$mode.safetensors" && ok || bad "$mode: another checkpoint than without it"
    same_tensors "$T/plain.state.safetensors" "$T/$mode.state.safetensors" && ok || bad "$mode: another training state"
done
expect_ok "bench train, off" $MD bench train -x cpu -t 1 --preset 250K -L 16 -B 2 --steps 1 --warmup 0 --cuda-graph off

# finetune: never a graph (its head's softmax is on the host); "on" refused
$MD simulate genomes -q --seed 3 -f 2bit --chroms 2 --length 8k -o "$T/sp" || bad "simulate"
SP="human=$T/sp/human.2bit chimp=$T/sp/chimpanzee.2bit"
tune() { $MD finetune -x cpu -t 1 --from-scratch --d-model 16 --n-layer 1 -L 32 -B 4 --epochs 1 --steps-per-epoch 2 \
    --val-windows 2 --test-windows 2 --val-fraction 0.2 --test-fraction 0.2 "$@" $SP; }
expect_error "finetune, bad value" "option --cuda-graph: 'yes' is not one of auto, on, off" \
    tune --cuda-graph yes -o "$T/ft_bad.safetensors"
no_file "no classifier after a bad value" "$T/ft_bad"
expect_error "finetune, on with -x cpu" "option --cuda-graph on: the CPU has no CUDA graphs" \
    tune --cuda-graph on -o "$T/ft_on.safetensors"
no_file "no classifier or report when refused" "$T/ft_on"
expect_ok "finetune, off" tune --cuda-graph off -o "$T/ft_off.safetensors"
finish
