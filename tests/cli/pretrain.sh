# mambadna pretrain / eval / export end to end on a tiny model and a random
# genome: metrics TSV and SVG, validation figures that eval reproduces,
# exact resume through the command line, the exported HF folder, and the
# logits dump.
. "$MD_TESTS/clilib.sh"

# Random DNA (seeded awk), two contigs, one with an N run.
awk 'BEGIN { srand(7); split("A C G T", b, " ");
    for (c = 1; c <= 2; c++) { printf(">ctg%d\n", c); n = c == 1 ? 30000 : 12000; s = "";
        for (i = 1; i <= n; i++) { s = s ((c == 1 && i > 8000 && i <= 8200) ? "N" : b[int(rand() * 4) + 1]);
            if (i % 60 == 0) { print s; s = "" } } if (s != "") print s } }' > "$T/g.fa"

TINY="--d-model 16 --n-layer 2 -L 96 -B 3 --tokens-per-step 576 --steps 12 --lr 3e-3 --seed 5 -t 2"
VAL="--val-fraction 0.15 --val-every 6 --val-windows 5"

expect_ok "help" $MD pretrain -h
grep -q -- "--tokens-per-step" "$T/out" && ok || bad "help lists --tokens-per-step"

# A straight run with validation and metrics.
expect_ok "pretrain" $MD pretrain $TINY $VAL --log-every 3 --metrics "$T/a.tsv" -o "$T/a.safetensors" "$T/g.fa"
[ -s "$T/a.safetensors" ] && [ -s "$T/a.state.safetensors" ] && ok || bad "checkpoint and state written"
take_provenance "$T/a.tsv"
[ "$(head -n 1 "$T/a.tsv" | cut -f 1,5,8,10)" = "$(printf 'step\tloss\tval_loss\tval_bits_per_base')" ] && ok || \
    bad "metrics header: $(head -n 1 "$T/a.tsv")"
[ "$(cut -f 1 "$T/a.tsv" | tail -n +2 | tr '\n' ' ')" = "3 6 9 12 " ] && ok || bad "metrics rows: $(cut -f 1 "$T/a.tsv" | tr '\n' ' ')"
[ "$(awk -F '\t' 'NR > 1 && $8 != "NA"' "$T/a.tsv" | wc -l)" -eq 2 ] && ok || bad "two validation rows"
grep -q '</svg>' "$T/a.svg" && grep -q '<polyline' "$T/a.svg" && ok || bad "SVG plot beside the TSV"
grep -q 'order-2 Markov' "$T/a.svg" && ok || bad "Markov baseline on the plot"
# the training loss falls
awk -F '\t' 'NR == 2 { a = $5 } END { exit !($5 < a) }' "$T/a.tsv" && ok || bad "training loss does not fall"

# eval with the same held-out options and seed scores the very windows the
# final validation used.
expect_ok "eval" $MD eval -i "$T/a.safetensors" --val-fraction 0.15 --windows 5 --json "$T/g.fa"
val=$(awk -F '\t' 'END { print $8 }' "$T/a.tsv")
ev=$(sed -n 's/.*"loss": *\([0-9.eE+-]*\).*/\1/p' "$T/out")
awk -v a="$val" -v b="$ev" 'BEGIN { d = a - b; exit !(d < 2e-6 && d > -2e-6) }' && ok || \
    bad "eval loss $ev differs from the final validation loss $val"
grep -q '"bits_per_base"' "$T/out" && grep -q '"windows": *5' "$T/out" && ok || bad "eval JSON: $(cat "$T/out")"
expect_ok "eval table with a Markov baseline" $MD eval -i "$T/a.safetensors" --val-fraction 0.15 --windows 5 --markov 2 "$T/g.fa"
grep -q '^markov2_bits_per_base' "$T/out" && grep -q '^perplexity' "$T/out" && ok || bad "eval table: $(cat "$T/out")"

# Recomputing the activations in the backward, keeping the block inputs
# alone or the Mamba scan states too, trains the same weights bit for bit.
expect_ok "pretrain --recompute" $MD pretrain $TINY $VAL -o "$T/r1.safetensors" --recompute "$T/g.fa"
same_tensors "$T/a.safetensors" "$T/r1.safetensors" && ok || bad "--recompute trains other weights"
expect_ok "pretrain --keep-scan-states" $MD pretrain $TINY $VAL -o "$T/r2.safetensors" --keep-scan-states "$T/g.fa"
same_tensors "$T/a.safetensors" "$T/r2.safetensors" && ok || bad "--keep-scan-states trains other weights"
grep -q "(recompute, scan states kept)" "$T/err" && ok || bad "the plan line names the kept scan states"

# Exact resume: stop at step 5, resume to 12; weights and state must be
# byte-identical to the straight run's, and so must the metrics' losses.
expect_ok "first part" $MD pretrain $TINY $VAL --log-every 3 --stop-at 5 --metrics "$T/b.tsv" -o "$T/b.safetensors" "$T/g.fa"
expect_ok "resume" $MD pretrain $TINY $VAL --log-every 3 --resume "$T/b.safetensors" --metrics "$T/b.tsv" -o "$T/c.safetensors" "$T/g.fa"
take_provenance "$T/b.tsv"
same_tensors "$T/a.safetensors" "$T/c.safetensors" && ok || bad "resumed weights differ from the straight run's"
same_tensors "$T/a.state.safetensors" "$T/c.state.safetensors" && ok || bad "resumed state differs from the straight run's"
# (the loss column is a mean over the log interval, which a resume splits at
# step 5; each row's grad norm, lr and validation loss are per step)
diff <(awk -F '\t' 'NR > 1 && $1 % 3 == 0 { print $1, $2, $4, $6, $8 }' "$T/a.tsv") \
     <(awk -F '\t' 'NR > 1 && $1 % 3 == 0 { print $1, $2, $4, $6, $8 }' "$T/b.tsv") >/dev/null && ok || \
    bad "resumed metrics differ"
[ "$(awk -F '\t' '$1 == 12 { print $5 }' "$T/a.tsv")" = "$(awk -F '\t' '$1 == 12 { print $5 }' "$T/b.tsv")" ] && ok || \
    bad "loss of the last interval differs after resume"
# Resuming with only the checkpoint reuses its options (-o defaults to it).
cp "$T/b.safetensors" "$T/d.safetensors"; cp "$T/b.state.safetensors" "$T/d.state.safetensors"
expect_ok "resume with saved options" $MD pretrain -t 2 --resume "$T/d.safetensors" "$T/g.fa"
same_tensors "$T/a.safetensors" "$T/d.safetensors" && ok || bad "resume from saved options alone differs"

# Sequence-length warmup: shorter windows first, same tokens per step.
expect_ok "sequence-length warmup" $MD pretrain --d-model 16 --n-layer 2 -L 128 -B 2 --steps 6 --seq-warmup 2 \
    --seq-warmup-start 32 --log-every 1 --metrics "$T/s.tsv" -o "$T/s.safetensors" "$T/g.fa"
take_provenance "$T/s.tsv"
[ "$(cut -f 3 "$T/s.tsv" | tail -n +2 | tr '\n' ' ')" = "32 32 64 64 128 128 " ] && ok || \
    bad "stage lengths: $(cut -f 3 "$T/s.tsv" | tr '\n' ' ')"
[ "$(cut -f 2 "$T/s.tsv" | tail -n +2 | tr '\n' ' ')" = "256 512 768 1024 1280 1536 " ] && ok || \
    bad "tokens per step: $(cut -f 2 "$T/s.tsv" | tr '\n' ' ')"

# Held-out contigs and a BED split work too.
expect_ok "held-out contig" $MD pretrain --d-model 16 --n-layer 1 -L 64 -B 2 --steps 2 --val-every 2 \
    --val-contigs ctg2 --val-windows 3 -o "$T/v.safetensors" "$T/g.fa"
grep -q "validation: loss" "$T/err" && ok || bad "held-out contig validation"
printf 'ctg1\t0\t20000\ttrain\nctg1\t20000\t30000\tvalid\nctg2\t0\t12000\ttrain\n' > "$T/split.bed"
expect_ok "BED split" $MD pretrain --d-model 16 --n-layer 1 -L 64 -B 2 --steps 2 --val-every 2 --bed "$T/split.bed" \
    --train-split train --val-split valid --val-windows 3 -o "$T/w.safetensors" "$T/g.fa"
grep -q "validation: loss" "$T/err" && ok || bad "BED split validation"

# Export: a transformers folder.
expect_ok "export" $MD export -i "$T/a.safetensors" -o "$T/hf"
[ -s "$T/hf/model.safetensors" ] && [ -s "$T/hf/config.json" ] && ok || bad "export folder"
for kv in '"model_type": "mamba"' '"hidden_size": 16' '"num_hidden_layers": 2' '"vocab_size": 16' \
          '"state_size": 16' '"use_bias": false' '"tie_word_embeddings": true' '"pad_token_id": 4' \
          '"time_step_rank": 1' '"conv_kernel": 4'; do
    grep -q "$kv" "$T/hf/config.json" && ok || bad "config.json lacks $kv"
done
grep -q '"backbone.layers.1.mixer.conv1d.weight":{"dtype":"F32","shape":\[32,1,4\]' "$T/hf/model.safetensors" && \
    ok || bad "conv1d.weight shape [E,1,4] in the export"
grep -q '"lm_head.weight"' "$T/hf/model.safetensors" && ok || bad "lm_head.weight in the export"
# The exported weights load back (as a checkpoint without our config).
expect_ok "eval of the exported weights" $MD eval -i "$T/hf/model.safetensors" -L 96 --seed 5 --val-fraction 0.15 --windows 5 --json "$T/g.fa"
ev2=$(sed -n 's/.*"loss": *\([0-9.eE+-]*\).*/\1/p' "$T/out")
[ "$ev2" = "$ev" ] && ok || bad "exported weights score $ev2, the checkpoint $ev"

# Logits dump for tools/check_hf.py.
expect_ok "dump logits" $MD eval -i "$T/a.safetensors" --windows 3 --dump-logits "$T/logits.safetensors" --dump-windows 2 "$T/g.fa"
grep -q '"input_ids":{"dtype":"I64","shape":\[2,96\]' "$T/logits.safetensors" && \
    grep -q '"logits":{"dtype":"F32","shape":\[2,96,16\]' "$T/logits.safetensors" && ok || bad "logits dump layout"

finish
