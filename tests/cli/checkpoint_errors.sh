# Bad input to pretrain / eval / export: each must exit non-zero with exactly
# one error line saying what is wrong, and an existing checkpoint given as
# -o must keep its exact bytes (no temporary left beside it either).
. "$MD_TESTS/clilib.sh"

awk 'BEGIN { srand(11); split("A C G T", b, " "); print ">chr1"; s = "";
    for (i = 1; i <= 20000; i++) { s = s b[int(rand() * 4) + 1]; if (i % 60 == 0) { print s; s = "" } } }' > "$T/g.fa"
printf '>tiny\nACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTAC\n' > "$T/short.fa"
awk 'BEGIN { print ">gap"; for (i = 0; i < 100; i++) print "NNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNN" }' > "$T/alln.fa"
printf '>other\n' > "$T/other.fa"
awk 'BEGIN { srand(12); split("A C G T", b, " "); s = "";
    for (i = 1; i <= 20000; i++) { s = s b[int(rand() * 4) + 1]; if (i % 60 == 0) { print s; s = "" } } }' >> "$T/other.fa"

TINY="--d-model 16 --n-layer 2 -L 64 -B 2 --steps 4 --seed 3 -t 2"
C="$T/good.safetensors"
expect_ok "the checkpoint to protect" $MD pretrain $TINY --stop-at 2 -o "$C" "$T/g.fa"
cp "$C" "$T/orig.safetensors"
cp "$T/good.state.safetensors" "$T/orig.state.safetensors"

# fails DESC PATTERN ARGS...: pretrain with -o the existing checkpoint fails
# cleanly and leaves it byte for byte as it was.
fails() {
    local desc=$1 pattern=$2; shift 2
    expect_error "$desc" "$pattern" $MD pretrain -o "$C" "$@"
    cmp -s "$C" "$T/orig.safetensors" && cmp -s "$T/good.state.safetensors" "$T/orig.state.safetensors" && ok || \
        bad "$desc: the existing checkpoint changed"
    compgen -G "$T/good*.tmp*" >/dev/null && bad "$desc: a temporary was left beside the checkpoint" || ok
}

fails "unknown preset" "unknown mamba preset '9M'" --preset 9M "$T/g.fa"
fails "unknown architecture" "unknown architecture 'rnn'" -m rnn "$T/g.fa"
fails "preset and sizes conflict" "--preset and --d-model/--n-layer conflict" --preset 250K --d-model 16 --n-layer 2 "$T/g.fa"
fails "two held-out sources" "conflict: give one source of held-out data" $TINY --val-fraction 0.1 --val-contigs chr1 "$T/g.fa"
fails "split without a BED" "--train-split/--val-split need --bed" $TINY --train-split train "$T/g.fa"
fails "validation without held-out data" "--val-every needs held-out data" $TINY --val-every 2 "$T/g.fa"
fails "tokens per step below a micro-batch" "--tokens-per-step 10 is less than one micro-batch" $TINY --tokens-per-step 10 "$T/g.fa"
fails "lr floor above the peak" "--lr-min 0.5 is above --lr" $TINY --lr-min 0.5 "$T/g.fa"
fails "bad number" "--steps: 'ten' is not a valid integer" --steps ten "$T/g.fa"
fails "unknown held-out contig" "--val-contigs: the genome has no contig 'chrX'" $TINY --val-contigs chrX --val-every 2 "$T/g.fa"
fails "every contig held out" "every contig of the genome is held out" $TINY --val-contigs chr1 "$T/g.fa"
fails "genome shorter than L" "too short for -L 64: its longest contig \('tiny'\) has 50 bp" $TINY "$T/short.fa"
fails "all-N genome" "genome is all N" $TINY "$T/alln.fa"
fails "missing genome" "missing\.fa" $TINY "$T/missing.fa"
fails "CUDA asked for" "(CUDA|cuda)" $TINY -x cuda "$T/g.fa"
expect_error "unwritable output folder" "cannot create output '$T/nodir/x.safetensors'" \
    $MD pretrain $TINY -o "$T/nodir/x.safetensors" "$T/g.fa"

mkdir "$T/adir"
expect_error "output is a folder" "'$T/adir' is a folder" $MD pretrain $TINY -o "$T/adir" "$T/g.fa"

# Damaged checkpoints, resumed from (-o the good one) and evaluated.
size=$(stat -c %s "$C")
head -c $((size - 100)) "$C" > "$T/trunc.safetensors"; cp "$T/good.state.safetensors" "$T/trunc.state.safetensors"
head -c 40 "$C" > "$T/trunchdr.safetensors"
{ head -c 12 "$C"; printf 'XXXX'; tail -c +17 "$C"; } > "$T/corrupt.safetensors"
: > "$T/empty.safetensors"
fails "resume from a truncated checkpoint" "truncated safetensors file '.*trunc\.safetensors'" --resume "$T/trunc.safetensors" "$T/g.fa"
fails "resume from a checkpoint cut in its header" "trunchdr\.safetensors': header length [0-9]+ exceeds" --resume "$T/trunchdr.safetensors" "$T/g.fa"
fails "resume from a corrupt checkpoint" "corrupt safetensors file '.*corrupt\.safetensors'" --resume "$T/corrupt.safetensors" "$T/g.fa"
{ head -c 60 "$C"; printf '}}}'; tail -c +64 "$C"; } > "$T/badjson.safetensors"
fails "resume from a checkpoint with broken JSON" "badjson\.safetensors': the header is not valid JSON" --resume "$T/badjson.safetensors" "$T/g.fa"
fails "resume from an empty file" "empty\.safetensors': 0 bytes, too short" --resume "$T/empty.safetensors" "$T/g.fa"
for bad_ck in trunc trunchdr corrupt empty; do
    expect_error "eval of $bad_ck" "$bad_ck\.safetensors" $MD eval -i "$T/$bad_ck.safetensors" "$T/g.fa"
    expect_error "export of $bad_ck" "$bad_ck\.safetensors" $MD export -i "$T/$bad_ck.safetensors" -o "$T/hf_$bad_ck"
    [ ! -e "$T/hf_$bad_ck" ] && ok || bad "export of $bad_ck created a folder"
done

# Checkpoints of other models: safetensors built byte by byte.
mk_st() {   # FILE HEADER-JSON DATA-BYTES
    local n=${#2}
    { printf "$(printf '\\%03o\\%03o\\%03o\\%03o\\000\\000\\000\\000' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24 & 255)))"
      printf '%s' "$2"; head -c "$3" /dev/zero; } > "$1"
}
mk_st "$T/hyena.safetensors" '{"__metadata__":{"format":"pt","model_type":"hyena"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' 8
mk_st "$T/hyenacfg.safetensors" '{"__metadata__":{"format":"pt","config":"{\"arch\":\"hyena\",\"d_model\":16,\"n_layer\":2}"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' 8
mk_st "$T/llama.safetensors" '{"__metadata__":{"format":"pt"},"model.embed_tokens.weight":{"dtype":"F32","shape":[4,2],"data_offsets":[0,32]}}' 32
mk_st "$T/gpt.safetensors" '{"__metadata__":{"format":"pt","model_type":"gpt2"},"wte":{"dtype":"F32","shape":[4,2],"data_offsets":[0,32]}}' 32
mk_st "$T/wide.safetensors" '{"backbone.embeddings.weight":{"dtype":"F32","shape":[50280,1],"data_offsets":[0,201120]},"backbone.layers.0.mixer.in_proj.weight":{"dtype":"F32","shape":[4,1],"data_offsets":[201120,201136]},"backbone.layers.0.mixer.A_log":{"dtype":"F32","shape":[2,16],"data_offsets":[201136,201264]},"backbone.layers.0.mixer.dt_proj.weight":{"dtype":"F32","shape":[2,1],"data_offsets":[201264,201272]},"backbone.layers.0.mixer.conv1d.weight":{"dtype":"F32","shape":[2,1,4],"data_offsets":[201272,201304]}}' 201304
fails "resume from a hyena checkpoint without a config" "holds a hyena model without mambadna's model config" --resume "$T/hyena.safetensors" "$T/g.fa"
fails "resume from a hyena config without its tensors" "lacks tensor 'hyena.backbone.embeddings.word_embeddings.weight'" --resume "$T/hyenacfg.safetensors" "$T/g.fa"
fails "resume from a llama checkpoint without its layers" "is not a Llama checkpoint: no model config, and no model.layers.0" --resume "$T/llama.safetensors" "$T/g.fa"
expect_error "eval of a gpt2 checkpoint" "holds a model of type .gpt2., which mambadna does not know" $MD eval -i "$T/gpt.safetensors" "$T/g.fa"
expect_error "eval of a text-vocabulary Mamba" "vocab_size 50280 is not 16" $MD eval -i "$T/wide.safetensors" "$T/g.fa"
expect_error "eval of a training state" "is a training state file, not model weights" $MD eval -i "$T/good.state.safetensors" "$T/g.fa"

# Resume checks: options fixed by the run, the genome, the state beside it.
fails "resume with another lr" "--lr 0.01 differs from the 0.002 .* cannot change on --resume" --resume "$C" --lr 0.01 "$T/g.fa"
fails "resume with another L" "-L 32 differs from the 64" --resume "$C" -L 32 "$T/g.fa"
fails "resume with another model size" "ask for a mamba 64 x 8 model, but checkpoint .* is a mamba 16 x 2" --resume "$C" --preset 250K "$T/g.fa"
fails "resume on another genome" "trained on another genome" --resume "$C" "$T/other.fa"
cp "$C" "$T/nostate.safetensors"
fails "resume without the training state" "nostate\.state\.safetensors" --resume "$T/nostate.safetensors" "$T/g.fa"
# a state from another step (an interrupted save)
expect_ok "a later checkpoint" $MD pretrain $TINY --stop-at 3 -o "$T/later.safetensors" "$T/g.fa"
cp "$C" "$T/mixed.safetensors"; cp "$T/later.state.safetensors" "$T/mixed.state.safetensors"
fails "weights and state from different steps" "are from different steps" --resume "$T/mixed.safetensors" "$T/g.fa"
fails "resume beyond --steps" "at step 2, beyond --steps 1" --resume "$C" --steps 1 "$T/g.fa"

# Export refuses an -o that is a file, and leaves it alone.
printf 'keep me\n' > "$T/afile"
expect_error "export onto a file" "'$T/afile' exists and is not a folder" $MD export -i "$C" -o "$T/afile"
[ "$(cat "$T/afile")" = "keep me" ] && ok || bad "export overwrote a file"

finish
