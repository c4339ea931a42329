# mambadna bench train on the CPU (the GPU figures come from tools/gpu-check.sh):
# a tiny run prints one row of the table with the counts it was asked for, and
# each misuse gives one clear error (bf16 on the CPU, a step that is not a
# whole number of micro-batches, an unknown precision, model or preset).
. "$MD_TESTS/clilib.sh"

expect_ok "help" $MD bench train -h
grep -q -- "--precision" "$T/out" && ok || bad "help lists --precision"

expect_ok "tiny run" $MD bench train -x cpu -t 1 --preset 250K -L 16 -B 2 --tokens-per-step 64 --steps 2 --warmup 1
[ "$(grep -c . "$T/out")" -eq 2 ] && ok || bad "one header and one row: $(cat "$T/out")"
row=$(sed -n 2p "$T/out")
# preset, params, device, B, L, tokens per step
[ "$(echo "$row" | cut -f1-6)" = "$(printf '250K\t262720\tcpu\t2\t16\t64')" ] && ok || bad "row: $row"
# tokens/s = tokens per step / median step time
echo "$row" | awk -F'\t' '{ r = $6 / ($7 / 1000); exit !($9 > 0 && r / $9 > 0.99 && r / $9 < 1.01) }' && ok || bad "tokens/s vs step time: $row"

# the transformer family, by its own preset names and parameter count
expect_ok "transformer run" $MD bench train -m transformer -x cpu -t 1 --preset 214K -L 16 -B 2 --steps 2 --warmup 1
[ "$(sed -n 2p "$T/out" | cut -f1-3)" = "$(printf '214K\t214592\tcpu')" ] && ok || bad "transformer row: $(sed -n 2p "$T/out")"

# a custom size: the row names it d_model x n_layer, with the parameter count
# 'mambadna info' gives for that size
expect_ok "hyena custom size" $MD bench train -m hyena -x cpu -t 1 --d-model 32 --n-layer 2 -L 16 -B 2 --steps 2 --warmup 1
row=$(sed -n 2p "$T/out")
expect_ok "info of that size" $MD info --model hyena --d-model 32 --n-layer 2 -L 16
params=$(awk '$1 == "parameters" { gsub(",", "", $2); print $2; exit }' "$T/out")
[ -n "$params" ] && [ "$(echo "$row" | cut -f1-3)" = "$(printf '32x2\t%s\tcpu' "$params")" ] && ok || bad "custom row: $row (info: $params)"
expect_error "preset and size" "--preset and --d-model/--n-layer conflict" $MD bench train -x cpu --preset 250K --d-model 32 --n-layer 2
expect_error "size half given" "--d-model and --n-layer go together" $MD bench train -x cpu --d-model 32

expect_error "unknown model" "-m/--model: unknown architecture 'foo'" $MD bench train -x cpu -m foo
expect_error "preset of the other family" "unknown transformer preset '1.4M'" $MD bench train -x cpu -m transformer --preset 1.4M
expect_error "bf16 on the CPU" "precision.*GPU" $MD bench train -x cpu --precision bf16 --preset 250K -L 16 -B 1
expect_error "bad precision" "precision.*fp16" $MD bench train -x cpu --precision fp16
expect_error "tokens per step" "tokens-per-step 100 .*multiple" $MD bench train -x cpu --preset 250K -L 16 -B 2 --tokens-per-step 100
expect_error "bad preset" "preset" $MD bench train -x cpu --preset 5M
expect_error "pretrain bf16 on the CPU" "precision.*GPU" $MD pretrain -x cpu --precision bf16 -o "$T/m.safetensors" "$T/none.fa"
finish
