# mambadna info: the preset table and JSON (counts from the Mamba paper),
# custom sizes, the memory plan, a checkpoint's description, and one clear
# error for each misuse.
. "$MD_TESTS/clilib.sh"

expect_ok "help" $MD info -h
grep -q -- "--preset" "$T/out" && ok || bad "help lists --preset"

# The table for the default preset (1.4M).
expect_ok "info 1.4M" $MD info --model mamba --preset 1.4M
grep -q '^parameters  1,401,472 (1,399,424 without the embedding)$' "$T/out" && ok || bad "1.4M counts: $(grep parameters "$T/out")"
grep -Eq '^backbone\.layers\.11\.mixer\.conv1d\.weight +\[256, 1, 4\] +1,024  yes$' "$T/out" && ok || bad "conv1d row"
grep -Eq '^backbone\.layers\.0\.mixer\.A_log +\[256, 16\] +4,096  no$' "$T/out" && ok || bad "A_log row, no decay"
grep -Eq '^lm_head\.weight +\[16, 128\] +tied +yes +\(= backbone\.embeddings\.weight\)$' "$T/out" && ok || bad "tied lm_head row"
[ "$(grep -c '^backbone\.layers\.' "$T/out")" -eq 120 ] && ok || bad "12 layers x 10 tensors"
[ -z "$(grep -c . "$T/err" | grep -v '^[0-3]$')" ] && ok || bad "stderr: $(cat "$T/err")"

# Every preset's count, from the JSON, as the paper gives it.
for pc in 250K:261696:64 700K:682656:96 1.4M:1399424:128 3.5M:3524160:192 7M:7008512:256 19M:19284864:384 40M:40686080:512; do
    p=${pc%%:*}; rest=${pc#*:}; n=${rest%%:*}; d=${rest#*:}
    expect_ok "info $p --json" $MD info --preset "$p" --json
    grep -q "\"n_params_no_embedding\": $n," "$T/out" && ok || bad "$p: $(grep n_params_no "$T/out")"
    grep -q "\"n_params\": $((n + 16 * d))," "$T/out" && ok || bad "$p with embeddings: $(grep '"n_params"' "$T/out")"
done
grep -q '"name": "lm_head.weight"' "$T/out" && grep -q '"tied_to": "backbone.embeddings.weight"' "$T/out" && ok || bad "JSON tied entry"
grep -q '"preset": "40M"' "$T/out" && ok || bad "JSON preset"

# A custom size equals the preset of the same size; the plan appears with -L.
expect_ok "custom size" $MD info --d-model 128 --n-layer 12 --json -B 4 -L 1024
grep -q '"n_params_no_embedding": 1399424,' "$T/out" && ok || bad "custom 128 x 12"
grep -q '"preset": null' "$T/out" && ok || bad "custom size has no preset"
grep -q '"activations_bytes": [1-9]' "$T/out" && grep -q '"batch": 4' "$T/out" && ok || bad "memory plan in JSON"
expect_ok "plan with recompute" $MD info --preset 1.4M -B 4 -L 1024 --recompute
grep -q '^memory plan for batch 4 x length 1024 (f32, recompute)' "$T/out" && ok || bad "recompute plan: $(grep memory "$T/out")"
total_of() { sed -n 's/^memory plan.* total \([0-9.]*\) MiB.*/\1/p' "$T/out"; }
base=$(total_of)
# keeping every Mamba block's scan states costs the CPU's checkpoints of n_layer - 1 blocks more
expect_ok "plan keeping the scan states" $MD info --preset 1.4M -B 4 -L 1024 --keep-scan-states
grep -q '^memory plan for batch 4 x length 1024 (f32, recompute, scan states kept)' "$T/out" && ok || \
    bad "keep-states plan: $(grep memory "$T/out")"
awk -v a="$base" -v b="$(total_of)" 'BEGIN { exit !(b > a) }' && ok || bad "keeping the states costs nothing: $base vs $(total_of) MiB"
expect_ok "plan keeping the scan states, JSON" $MD info --preset 1.4M -B 4 -L 1024 --keep-scan-states --json
grep -q '"keep_scan_states": true' "$T/out" && ok || bad "keep_scan_states in the JSON plan"
expect_ok "output file" $MD info --preset 250K -o "$T/info.txt"
grep -q '^parameters  262,720 (261,696 without the embedding)$' "$T/info.txt" && ok || bad "-o file"

# Misuse: one error line each, exit 1.
expect_error "unknown preset" "unknown mamba preset '2M'" $MD info --preset 2M
expect_error "preset and size" "conflict" $MD info --preset 1.4M --d-model 64
expect_error "size without layers" "--d-model needs --n-layer" $MD info --d-model 64
expect_error "unknown architecture" "unknown architecture 'rnn'" $MD info --model rnn
expect_error "hyena preset of another family" "unknown hyena preset '7M'" $MD info --model hyena --preset 7M
expect_error "bad number" "--n-layer" $MD info --d-model 64 --n-layer two
expect_error "zero length" "-L" $MD info -L 0
expect_error "unknown option" "unrecognized|unknown" $MD info --frobnicate
expect_error "two checkpoints" "at most one checkpoint" $MD info a.safetensors b.safetensors
expect_error "missing checkpoint" "nothere.safetensors" $MD info "$T/nothere.safetensors"
printf 'not a safetensors file at all' > "$T/junk.safetensors"
expect_error "junk checkpoint" "junk.safetensors" $MD info "$T/junk.safetensors"
expect_error "checkpoint and preset" "drop --preset" $MD info --preset 1.4M "$T/junk.safetensors"

# A checkpoint written by a two-step pretrain describes itself.
awk 'BEGIN { srand(3); split("A C G T", b, " "); print ">c"; for (i = 1; i <= 6000; i++) { printf("%s", b[int(rand() * 4) + 1]); if (i % 60 == 0) print "" } }' > "$T/g.fa"
if $MD pretrain --d-model 16 --n-layer 2 -L 32 -B 2 --tokens-per-step 64 --steps 2 -t 1 -q -o "$T/m.safetensors" "$T/g.fa" 2>"$T/perr"; then
    ok
    expect_ok "info checkpoint" $MD info "$T/m.safetensors"
    grep -q "^checkpoint  $T/m.safetensors" "$T/out" && ok || bad "checkpoint line: $(head -n 2 "$T/out")"
    grep -q '^config      d_model 16, n_layer 2,' "$T/out" && ok || bad "checkpoint config: $(grep config "$T/out")"
    grep -Eq '^backbone\.layers\.1\.mixer\.D +\[32\] +32 +no +F32$' "$T/out" && ok || bad "dtype column"
    expect_ok "info checkpoint --json" $MD info --json "$T/m.safetensors"
    grep -q '"n_params_no_embedding": ' "$T/out" && grep -q '"dtype": "F32"' "$T/out" && ok || bad "checkpoint JSON"
    # a truncated copy is refused with one error
    head -c 2000 "$T/m.safetensors" > "$T/cut.safetensors"
    expect_error "truncated checkpoint" "cut.safetensors" $MD info "$T/cut.safetensors"
else
    bad "pretrain for the checkpoint test failed: $(tail -n 2 "$T/perr")"
fi

finish
