# mambadna with -m transformer (Transformer++) end to end on a tiny model
# and a generated genome: training lowers the loss, eval reproduces the
# validation loss, the resume is exact, export writes LlamaForCausalLM
# names and a LlamaConfig, the exported weights score the same, and info
# describes the presets.
. "$MD_TESTS/clilib.sh"

awk 'BEGIN { srand(11); split("A C G T", b, " ");
    for (c = 1; c <= 2; c++) { printf(">ctg%d\n", c); n = c == 1 ? 30000 : 12000; s = "";
        for (i = 1; i <= n; i++) { s = s ((c == 1 && i > 8000 && i <= 8200) ? "N" : b[int(rand() * 4) + 1]);
            if (i % 60 == 0) { print s; s = "" } } if (s != "") print s } }' > "$T/g.fa"

# width 16 gives one head of 16; L 96 spans two attention tiles
TINY="-m transformer --d-model 16 --n-layer 2 -L 96 -B 3 --tokens-per-step 576 --steps 12 --lr 3e-3 --seed 5 -t 2"
VAL="--val-fraction 0.15 --val-every 6 --val-windows 5"

expect_ok "pretrain" $MD pretrain $TINY $VAL --log-every 3 --metrics "$T/a.tsv" -o "$T/a.safetensors" "$T/g.fa"
grep -q "transformer model d=16 x 2 blocks" "$T/err" && ok || bad "memory plan names the transformer"
# --keep-scan-states has no scan to keep here: a warning, then --recompute's plan and the same weights
expect_ok "pretrain --keep-scan-states" $MD pretrain $TINY $VAL -o "$T/k.safetensors" --keep-scan-states "$T/g.fa"
grep -q '^\[W::.*keeps Mamba blocks. scan states; a transformer model has none' "$T/err" && ok || \
    bad "no warning that a transformer keeps no scan states: $(grep 'W::' "$T/err")"
grep -q "transformer model d=16 x 2 blocks.*(recompute) on" "$T/err" && ok || bad "the plan is --recompute's"
same_tensors "$T/a.safetensors" "$T/k.safetensors" && ok || bad "--keep-scan-states trains other weights"
[ -s "$T/a.safetensors" ] && [ -s "$T/a.state.safetensors" ] && ok || bad "checkpoint and state written"
take_provenance "$T/a.tsv"
awk -F '\t' 'NR == 2 { a = $5 } END { exit !($5 < a) }' "$T/a.tsv" && ok || bad "training loss does not fall"
grep -q '"model.layers.1.self_attn.q_proj.weight":{"dtype":"F32","shape":\[16,16\]' "$T/a.safetensors" && ok || \
    bad "checkpoint has Llama names"

expect_ok "eval" $MD eval -i "$T/a.safetensors" --val-fraction 0.15 --windows 5 --json "$T/g.fa"
val=$(awk -F '\t' 'END { print $8 }' "$T/a.tsv")
ev=$(sed -n 's/.*"loss": *\([0-9.eE+-]*\).*/\1/p' "$T/out")
awk -v a="$val" -v b="$ev" 'BEGIN { d = a - b; exit !(d < 2e-6 && d > -2e-6) }' && ok || \
    bad "eval loss $ev differs from the final validation loss $val"

# exact resume: stop at 5, resume to 12, byte-identical to the straight run
expect_ok "first part" $MD pretrain $TINY $VAL --log-every 3 --stop-at 5 -o "$T/b.safetensors" "$T/g.fa"
expect_ok "resume" $MD pretrain $TINY $VAL --log-every 3 --resume "$T/b.safetensors" -o "$T/c.safetensors" "$T/g.fa"
same_tensors "$T/a.safetensors" "$T/c.safetensors" && ok || bad "resumed weights differ from the straight run's"
same_tensors "$T/a.state.safetensors" "$T/c.state.safetensors" && ok || bad "resumed state differs from the straight run's"
expect_error "resume as another architecture" "ask for a mamba 16 x 2 model.*transformer 16 x 2" \
    $MD pretrain -m mamba --d-model 16 --n-layer 2 --resume "$T/b.safetensors" "$T/g.fa"

expect_ok "export" $MD export -i "$T/a.safetensors" -o "$T/hf"
for kv in '"model_type": "llama"' '"LlamaForCausalLM"' '"hidden_size": 16' '"intermediate_size": 64' \
          '"num_hidden_layers": 2' '"num_attention_heads": 1' '"num_key_value_heads": 1' '"head_dim": 16' \
          '"rms_norm_eps": 1.0000000000000001e-0\?5' '"rope_theta": 10000' '"vocab_size": 16' \
          '"tie_word_embeddings": true' '"attention_bias": false' '"mlp_bias": false' '"hidden_act": "silu"'; do
    grep -q "$kv" "$T/hf/config.json" && ok || bad "config.json lacks $kv"
done
for t in model.embed_tokens.weight model.norm.weight lm_head.weight \
         model.layers.0.self_attn.q_proj.weight model.layers.0.self_attn.k_proj.weight \
         model.layers.0.self_attn.v_proj.weight model.layers.0.self_attn.o_proj.weight \
         model.layers.1.mlp.gate_proj.weight model.layers.1.mlp.up_proj.weight \
         model.layers.1.input_layernorm.weight model.layers.1.post_attention_layernorm.weight; do
    grep -q "\"$t\"" "$T/hf/model.safetensors" && ok || bad "export lacks $t"
done
grep -q '"model.layers.1.mlp.down_proj.weight":{"dtype":"F32","shape":\[16,64\]' "$T/hf/model.safetensors" && ok || \
    bad "down_proj shape [d, d_ff]"
# the exported weights (no config metadata: inferred, heads from config.json) score the same
expect_ok "eval of the exported weights" $MD eval -i "$T/hf/model.safetensors" -L 96 --seed 5 --val-fraction 0.15 \
    --windows 5 --json "$T/g.fa"
ev2=$(sed -n 's/.*"loss": *\([0-9.eE+-]*\).*/\1/p' "$T/out")
[ "$ev2" = "$ev" ] && ok || bad "exported weights score $ev2, the checkpoint $ev"

expect_ok "dump logits" $MD eval -i "$T/a.safetensors" --windows 3 --dump-logits "$T/logits.safetensors" --dump-windows 2 "$T/g.fa"
grep -q '"logits":{"dtype":"F32","shape":\[2,96,16\]' "$T/logits.safetensors" && ok || bad "logits dump layout"

expect_ok "info preset" $MD info --model transformer --preset 1.3M
grep -q '^parameters  1,281,664 (1,279,616 without the embedding)' "$T/out" && ok || bad "info 1.3M: $(grep parameters "$T/out")"
expect_ok "info checkpoint" $MD info "$T/a.safetensors"
grep -q 'n_heads 1 (head_dim 16), d_ff 64' "$T/out" && ok || bad "info of a transformer checkpoint"
expect_error "unknown transformer preset" "unknown transformer preset '1.4M'; choose one of 214K" \
    $MD info --model transformer --preset 1.4M

finish
