# mambadna with -m hyena (HyenaDNA's operator) end to end on a tiny model
# and a generated genome: training lowers the loss, the checkpoint has
# HyenaDNA's names and l_max in its config, eval reproduces the validation
# loss, the resume is exact, a sequence-length warmup runs, info describes presets and the checkpoint, and
# the user errors of the filter length each give one line.
. "$MD_TESTS/clilib.sh"

awk 'BEGIN { srand(13); split("A C G T", b, " ");
    for (c = 1; c <= 2; c++) { printf(">ctg%d\n", c); n = c == 1 ? 30000 : 12000; s = "";
        for (i = 1; i <= n; i++) { s = s ((c == 1 && i > 8000 && i <= 8200) ? "N" : b[int(rand() * 4) + 1]);
            if (i % 60 == 0) { print s; s = "" } } if (s != "") print s } }' > "$T/g.fa"

TINY="-m hyena --d-model 16 --n-layer 2 -L 80 -B 3 --tokens-per-step 480 --steps 12 --lr 3e-3 --seed 5 -t 2"
VAL="--val-fraction 0.15 --val-every 6 --val-windows 5"

expect_ok "pretrain" $MD pretrain $TINY $VAL --log-every 3 --metrics "$T/a.tsv" -o "$T/a.safetensors" "$T/g.fa"
grep -q "hyena model d=16 x 2 blocks" "$T/err" && ok || bad "memory plan names the hyena model"
[ -s "$T/a.safetensors" ] && [ -s "$T/a.state.safetensors" ] && ok || bad "checkpoint and state written"
take_provenance "$T/a.tsv"
awk -F '\t' 'NR == 2 { a = $5 } END { exit !($5 < a) }' "$T/a.tsv" && ok || bad "training loss does not fall"
for t in '"hyena.backbone.layers.1.mixer.in_proj.weight":{"dtype":"F32","shape":\[48,16\]' \
         '"hyena.backbone.layers.0.mixer.short_filter.weight":{"dtype":"F32","shape":\[48,1,3\]' \
         '"hyena.backbone.layers.0.mixer.filter_fn.implicit_filter.5.freq":{"dtype":"F32","shape":\[1,64\]' \
         '"hyena.backbone.ln_f.bias"' '"lm_head.weight"' '\\"l_max\\":80'; do
    grep -q "$t" "$T/a.safetensors" && ok || bad "checkpoint lacks $t"
done

expect_ok "eval" $MD eval -i "$T/a.safetensors" --val-fraction 0.15 --windows 5 --json "$T/g.fa"
val=$(awk -F '\t' 'END { print $8 }' "$T/a.tsv")
ev=$(sed -n 's/.*"loss": *\([0-9.eE+-]*\).*/\1/p' "$T/out")
awk -v a="$val" -v b="$ev" 'BEGIN { d = a - b; exit !(d < 2e-6 && d > -2e-6) }' && ok || \
    bad "eval loss $ev differs from the final validation loss $val"
expect_error "eval beyond the filter length" "length 200 exceeds the hyena model's filter length l_max = 80" \
    $MD eval -i "$T/a.safetensors" -L 200 --windows 2 "$T/g.fa"

# exact resume: stop at 5, resume to 12, byte-identical to the straight run
expect_ok "first part" $MD pretrain $TINY $VAL --log-every 3 --stop-at 5 -o "$T/b.safetensors" "$T/g.fa"
expect_ok "resume" $MD pretrain $TINY $VAL --log-every 3 --resume "$T/b.safetensors" -o "$T/c.safetensors" "$T/g.fa"
same_tensors "$T/a.safetensors" "$T/c.safetensors" && ok || bad "resumed weights differ from the straight run's"
same_tensors "$T/a.state.safetensors" "$T/c.state.safetensors" && ok || bad "resumed state differs from the straight run's"
expect_error "resume with another l_max" "option --l-max 96 differs from the filter length 80" \
    $MD pretrain $TINY --l-max 96 --resume "$T/b.safetensors" -o "$T/d.safetensors" "$T/g.fa"
no_file "no checkpoint after a refused resume" "$T/d.safetensors"

expect_ok "sequence-length warmup (shorter calls on buffers planned for L)" $MD pretrain $TINY --steps 4 \
    --seq-warmup 2 --seq-warmup-start 40 --log-every 1 --metrics "$T/w.tsv" -o "$T/w.safetensors" "$T/g.fa"
take_provenance "$T/w.tsv"
awk -F '\t' 'NR == 2 && $3 == 40 { a = 1 } NR == 5 && $3 == 80 { b = 1 } END { exit !(a && b) }' "$T/w.tsv" && ok || \
    bad "warmup lengths 40 then 80: $(cut -f 3 "$T/w.tsv" | tr '\n' ' ')"
expect_ok "l_max above L" $MD pretrain $TINY --steps 2 --l-max 160 -o "$T/e.safetensors" "$T/g.fa"
grep -q '\\"l_max\\":160' "$T/e.safetensors" && ok || bad "--l-max is stored"
expect_error "l_max below L" "length 80 exceeds the hyena model's filter length l_max = 40" \
    $MD pretrain $TINY --l-max 40 -o "$T/f.safetensors" "$T/g.fa"
expect_error "l_max for mamba" "option --l-max applies to hyena models only" \
    $MD pretrain -m mamba --d-model 16 --n-layer 2 -L 80 --l-max 100 -o "$T/f.safetensors" "$T/g.fa"
no_file "no checkpoint after refused runs" "$T/f.safetensors"
expect_error "export of a hyena model" "is a hyena model" $MD export -i "$T/a.safetensors" -o "$T/hf"

expect_ok "info preset" $MD info --model hyena --preset 436K
grep -q '^parameters  436,096 (434,048 without the embedding)' "$T/out" && ok || bad "info 436K: $(grep parameters "$T/out")"
expect_ok "info 6.6M" $MD info --model hyena --preset 6.6M -L 4096
grep -q '^parameters  6,550,528' "$T/out" && ok || bad "info 6.6M: $(grep parameters "$T/out")"
grep -q 'l_max 4096' "$T/out" && ok || bad "info shows l_max = -L"
expect_ok "info checkpoint" $MD info "$T/a.safetensors"
grep -q 'model       hyena' "$T/out" && grep -q 'l_max 80' "$T/out" && ok || bad "info of a hyena checkpoint"
grep -q 'implicit_filter.3.freq .*(= hyena.backbone.layers.0.mixer.filter_fn.implicit_filter.1.freq)' "$T/out" && ok || \
    bad "info shows the shared Sin frequency"
expect_error "unknown hyena preset" "unknown hyena preset '1.4M'; choose one of 436K" \
    $MD info --model hyena --preset 1.4M

finish
