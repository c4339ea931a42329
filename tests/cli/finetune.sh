# mambadna finetune on small simulated great-ape genomes: from a pretrained
# LM and from scratch (both families, both poolings), held-out contigs and
# fractions, the species TSV, the sequence-length warmup, the reports; and
# every user error (one [E::] line, exit 1, no checkpoint left).
. "$MD_TESTS/clilib.sh"

$MD simulate genomes -q --seed 3 -f 2bit --chroms 3 --length 20k -o "$T/g" || { bad "simulate"; finish; exit 1; }
SP="human=$T/g/human.2bit chimp=$T/g/chimpanzee.2bit bonobo=$T/g/bonobo.2bit gorilla=$T/g/gorilla.2bit orang=$T/g/orangutan.2bit"
$MD pretrain -q --d-model 16 --n-layer 2 -L 64 -B 4 --steps 5 -o "$T/lm.safetensors" "$T/g/human.2bit" || bad "pretrain"
FAST="-L 64 -B 8 --micro-batch 4 --epochs 2 --steps-per-epoch 3 --val-windows 4 --test-windows 6 -t 2 --log-every 1"

expect_ok "help" $MD finetune -h
grep -q -- "--species-tsv" "$T/out" && ok || bad "help lists --species-tsv"
grep -q -- "--resume FILE" "$T/out" && ok || bad "help lists --resume"

# From the pretrained LM, held-out contigs.
expect_ok "finetune from an LM" $MD finetune -i "$T/lm.safetensors" $FAST --val-contigs chr2 --test-contigs chr3 \
    -o "$T/a.safetensors" $SP
grep -q "backbone from" "$T/err" && ok || bad "the backbone comes from the LM"
for f in a.safetensors a.epochs.tsv a.epochs.svg a.val-confusion.tsv a.val-confusion.svg a.test-confusion.tsv \
         a.test-confusion.svg; do
    [ -s "$T/$f" ] && ok || bad "$f written"
done
for f in a.epochs.tsv a.val-confusion.tsv a.test-confusion.tsv; do take_provenance "$T/$f"; done
[ "$(tail -n +2 "$T/a.epochs.tsv" | cut -f 1,2 | tr '\t\n' ' ')" = "1 3 2 6 " ] && ok || \
    bad "epochs TSV rows: $(cat "$T/a.epochs.tsv")"
head -n 1 "$T/a.epochs.tsv" | grep -q $'val_acc\tval_acc_human\tval_acc_chimp' && ok || bad "per-species columns"
# the test confusion: 5 species x 6 windows, each row 6, the "all" row's n 30
awk -F '\t' '$1 == "all" && $7 == 30 { f = 1 } END { exit !f }' "$T/a.test-confusion.tsv" && ok || \
    bad "test confusion total: $(cat "$T/a.test-confusion.tsv")"
[ "$(awk -F '\t' 'NR > 2 && $1 != "all" { print $7 }' "$T/a.test-confusion.tsv" | sort -u)" = 6 ] && ok || \
    bad "6 test windows per species"
grep -q '<rect' "$T/a.test-confusion.svg" && grep -q '</svg>' "$T/a.test-confusion.svg" && ok || bad "heat map SVG"
grep -q "test accuracy" "$T/err" && ok || bad "test accuracy logged"

# The checkpoint is a classifier: info shows its head; classify accepts it.
expect_ok "info on the classifier" $MD info "$T/a.safetensors"
grep -q "classifier.weight" "$T/out" && ok || bad "info lists classifier.weight"
grep -q "^classifier  5 classes (human, chimp, bonobo, gorilla, orang), last-position pooling" "$T/out" && ok || \
    bad "info names the classes: $(grep '^classifier' "$T/out")"

# Reproducible: the same run gives the same checkpoint, whatever the threads.
expect_ok "same run, 1 thread" $MD finetune -i "$T/lm.safetensors" $FAST -t 1 --val-contigs chr2 --test-contigs chr3 \
    -o "$T/a1.safetensors" $SP
same_tensors "$T/a.safetensors" "$T/a1.safetensors" && ok || bad "a second run (1 thread) gives another checkpoint"

# Exact resume: stopped mid-epoch (step 4 of 2 x 3) or at an epoch's end (step 3), then resumed, a run ends
# with the straight run's checkpoint and reports; its optimizer state lies beside every checkpoint.
[ -s "$T/a.state.safetensors" ] && ok || bad "the optimizer state beside the checkpoint"
for at in 4 3; do
    R="$T/r$at"
    expect_ok "stop at step $at" $MD finetune -i "$T/lm.safetensors" $FAST --val-contigs chr2 --test-contigs chr3 \
        --stop-at $at -o "$R.safetensors" $SP
    no_file "no test report when stopped at $at" "$R.test-confusion.tsv"
    expect_ok "resume from step $at" $MD finetune -i "$T/lm.safetensors" $FAST --val-contigs chr2 --test-contigs chr3 \
        --resume "$R.safetensors" -o "$R.safetensors" $SP
    grep -q "resumed from '$R.safetensors' at step $at" "$T/err" && ok || bad "resume from step $at logged"
    same_tensors "$T/a.safetensors" "$R.safetensors" && ok || bad "resumed from step $at: another checkpoint"
    for f in epochs.tsv test-confusion.tsv; do
        cmp -s <(grep -v '^#' "$T/a.$f") <(grep -v '^#' "$R.$f") && ok || bad "resumed from step $at: another $f"
    done
done
# Options that contradict the saved run; a checkpoint that is not a finetune run's.
expect_ok "stop at step 2" $MD finetune -i "$T/lm.safetensors" $FAST --val-contigs chr2 --test-contigs chr3 \
    --stop-at 2 -o "$T/s.safetensors" $SP
expect_error "resume with another -L" "-L 32 on --resume, but checkpoint .*s.safetensors' was trained with 64" \
    $MD finetune -i "$T/lm.safetensors" $FAST -L 32 --val-contigs chr2 --test-contigs chr3 \
    --resume "$T/s.safetensors" -o "$T/s2.safetensors" $SP
expect_error "resume with other species" "species \[\"human\", \"chimp\"\] on --resume" $MD finetune \
    -i "$T/lm.safetensors" $FAST --val-contigs chr2 --test-contigs chr3 --resume "$T/s.safetensors" \
    -o "$T/s2.safetensors" human="$T/g/human.2bit" chimp="$T/g/chimpanzee.2bit"
expect_error "resume with another model" "--d-model 8 on --resume" $MD finetune --from-scratch --d-model 8 --n-layer 2 \
    $FAST --val-contigs chr2 --test-contigs chr3 --resume "$T/s.safetensors" -o "$T/s2.safetensors" $SP
expect_error "resume with another seed" "--seed \"2\" on --resume" $MD finetune -i "$T/lm.safetensors" $FAST --seed 2 \
    --val-contigs chr2 --test-contigs chr3 --resume "$T/s.safetensors" -o "$T/s2.safetensors" $SP
expect_error "resume from a pretrained LM" "is not a finetune run's" $MD finetune -i "$T/lm.safetensors" $FAST \
    --val-contigs chr2 --test-contigs chr3 --resume "$T/lm.safetensors" -o "$T/s2.safetensors" $SP
expect_error "resume from a missing checkpoint" "option --resume: cannot read '.*nothere.safetensors'" $MD finetune \
    -i "$T/lm.safetensors" $FAST --val-contigs chr2 --test-contigs chr3 --resume "$T/nothere.safetensors" \
    -o "$T/s2.safetensors" $SP
expect_error "bf16 on the CPU" "--precision" $MD finetune -x cpu --precision bf16 -i "$T/lm.safetensors" $FAST \
    --val-contigs chr2 --test-contigs chr3 -o "$T/s2.safetensors" $SP
expect_error "bad --precision" "option --precision: 'fp16'" $MD finetune --precision fp16 -i "$T/lm.safetensors" $FAST \
    --val-contigs chr2 --test-contigs chr3 -o "$T/s2.safetensors" $SP
no_file "no checkpoint after the resume errors" "$T/s2.safetensors"

# Contigs named per species (LABEL:NAME) hold out the same as plain names.
expect_ok "per-species contig names" $MD finetune -i "$T/lm.safetensors" $FAST --val-contigs chr2 \
    --test-contigs human:chr3,chimp:chr3,bonobo:chr3,gorilla:chr3,orang:chr3 -o "$T/a2.safetensors" $SP
same_tensors "$T/a.safetensors" "$T/a2.safetensors" && ok || bad "LABEL:NAME contigs give another checkpoint"

# From scratch: Transformer++ with mean pooling, fractions, species from a TSV, reverse complements.
printf 'human\t%s\n# a comment\n\nchimp\t%s\ngorilla\t%s\n' "$T/g/human.2bit" "$T/g/chimpanzee.2bit" "$T/g/gorilla.2bit" > "$T/sp.tsv"
expect_ok "transformer from scratch" $MD finetune --from-scratch -m transformer --d-model 16 --n-layer 1 --pooling mean \
    --revcomp $FAST --val-fraction 0.1 --test-fraction 0.1 --species-tsv "$T/sp.tsv" -o "$T/b.safetensors"
take_provenance "$T/b.epochs.tsv"
head -n 1 "$T/b.epochs.tsv" | grep -q $'val_acc_human\tval_acc_chimp\tval_acc_gorilla$' && ok || \
    bad "three species from the TSV: $(head -n 1 "$T/b.epochs.tsv")"

# Sequence-length warmup: L 64 above a start of 32 adds one epoch at 32.
expect_ok "length warmup" $MD finetune --from-scratch --d-model 16 --n-layer 1 $FAST --seq-warmup-start 32 \
    -o "$T/c.safetensors" human="$T/g/human.2bit" orang="$T/g/orangutan.2bit"
grep -q "epoch 1: sequence length 32" "$T/err" && grep -q "epoch 2: sequence length 64" "$T/err" && ok || \
    bad "warmup epochs: $(grep epoch "$T/err" | head -n 4)"
take_provenance "$T/c.epochs.tsv"
[ "$(tail -n +2 "$T/c.epochs.tsv" | wc -l)" -eq 3 ] && ok || bad "3 epochs with the warmup one"

# Resume across the length warmup: from a start of 16, L 64 runs epochs at 16, 32, 64, 64 (3 steps each).
# Stopped inside the first warmup epoch (2), at the end of the second (6, the next step changes L) and
# inside the first epoch at L (8), the resumed run ends with the straight run's checkpoint and reports.
WARM="--from-scratch --d-model 16 --n-layer 1 $FAST --seq-warmup-start 16 --val-contigs chr2 --test-contigs chr3"
expect_ok "straight run with two warmup epochs" $MD finetune $WARM -o "$T/w.safetensors" $SP
grep -q "epoch 2: sequence length 32" "$T/err" && grep -q "epoch 3: sequence length 64" "$T/err" && ok || \
    bad "warmup epochs at 16 and 32: $(grep epoch "$T/err" | head -n 4)"
for at in 2 6 8; do
    R="$T/w$at"
    expect_ok "warmup: stop at step $at" $MD finetune $WARM --stop-at $at -o "$R.safetensors" $SP
    expect_ok "warmup: resume from step $at" $MD finetune $WARM --resume "$R.safetensors" -o "$R.safetensors" $SP
    grep -q "resumed from '$R.safetensors' at step $at" "$T/err" && ok || bad "warmup: resume from step $at logged"
    same_tensors "$T/w.safetensors" "$R.safetensors" && ok || bad "warmup: resumed from step $at: another checkpoint"
    for f in epochs.tsv val-confusion.tsv test-confusion.tsv; do
        cmp -s <(grep -v '^#' "$T/w.$f") <(grep -v '^#' "$R.$f") && ok || bad "warmup: resumed from step $at: another $f"
    done
done

# User errors.
O="$T/e.safetensors"
expect_error "no starting point" "give -i" $MD finetune -o "$O" $SP
expect_error "-i and --from-scratch" "conflict" $MD finetune -i "$T/lm.safetensors" --from-scratch -o "$O" $SP
expect_error "model options with -i" "go with --from-scratch" $MD finetune -i "$T/lm.safetensors" --preset 1.4M -o "$O" $SP
expect_error "no -o" "give -o" $MD finetune -i "$T/lm.safetensors" $SP
expect_error "-o stdout" "standard output" $MD finetune -i "$T/lm.safetensors" -o - $SP
expect_error "-o a folder" "is a folder" $MD finetune -i "$T/lm.safetensors" -o "$T" $SP
expect_error "one species" "at least two species" $MD finetune -i "$T/lm.safetensors" -o "$O" human="$T/g/human.2bit"
expect_error "no species" "no species given" $MD finetune -i "$T/lm.safetensors" -o "$O"
expect_error "not LABEL=GENOME" "not LABEL=GENOME" $MD finetune -i "$T/lm.safetensors" -o "$O" "$T/g/human.2bit" $SP
expect_error "empty label" "label before '=' is empty" $MD finetune -i "$T/lm.safetensors" -o "$O" "=$T/g/human.2bit" $SP
expect_error "empty path" "empty genome path" $MD finetune -i "$T/lm.safetensors" -o "$O" "x=$T/g/human.2bit," $SP
expect_error "missing genome" "nothere.fa" $MD finetune -i "$T/lm.safetensors" $FAST -o "$O" x="$T/nothere.fa" $SP
expect_error "missing checkpoint" "nothere.safetensors" $MD finetune -i "$T/nothere.safetensors" -o "$O" $SP
expect_error "bad pooling" "--pooling" $MD finetune -i "$T/lm.safetensors" --pooling max -o "$O" $SP
expect_error "val contigs alone" "needs --test-contigs" $MD finetune -i "$T/lm.safetensors" --val-contigs chr2 -o "$O" $SP
expect_error "contigs and fractions" "conflict" $MD finetune -i "$T/lm.safetensors" --val-contigs chr2 \
    --test-contigs chr3 --val-fraction 0.1 -o "$O" $SP
expect_error "fractions leave nothing" "leave nothing for training" $MD finetune -i "$T/lm.safetensors" \
    --val-fraction 0.5 --test-fraction 0.5 -o "$O" $SP
expect_error "unknown contig, named by species" "species 'human'.*no contig 'chr9'" $MD finetune -i "$T/lm.safetensors" \
    $FAST --val-contigs chr2 --test-contigs chr9 -o "$O" $SP
expect_error "a species-only contig it lacks" "species 'gorilla'.*no contig 'chr9'" $MD finetune -i "$T/lm.safetensors" \
    $FAST --val-contigs chr2 --test-contigs chr3,gorilla:chr9 -o "$O" $SP
expect_error "no test contig for a species" "--test-contigs names no contig of species 'chimp'" $MD finetune \
    -i "$T/lm.safetensors" $FAST --val-contigs chr2 --test-contigs human:chr3 -o "$O" $SP
expect_error "same contig twice" "held out for validation already" $MD finetune -i "$T/lm.safetensors" $FAST \
    --val-contigs chr2 --test-contigs chr2 -o "$O" $SP
expect_error "every contig held out" "none is left for training" $MD finetune -i "$T/lm.safetensors" $FAST \
    --val-contigs chr1,chr2 --test-contigs chr3 -o "$O" $SP
expect_error "windows longer than the held-out part" "less than a window" $MD finetune -i "$T/lm.safetensors" \
    -L 4000 --val-fraction 0.01 --test-fraction 0.01 -o "$O" $SP
printf 'human %s\n' "$T/g/human.2bit" > "$T/bad.tsv"
expect_error "species TSV without a tab" "bad.tsv' line 1" $MD finetune -i "$T/lm.safetensors" --species-tsv "$T/bad.tsv" -o "$O" $SP
: > "$T/empty.tsv"
expect_error "empty species TSV" "lists no species" $MD finetune -i "$T/lm.safetensors" --species-tsv "$T/empty.tsv" -o "$O" $SP
expect_error "bad -L" "-L" $MD finetune -i "$T/lm.safetensors" -L 0 -o "$O" $SP
expect_error "lr-min above lr" "--lr-min" $MD finetune -i "$T/lm.safetensors" --lr 1e-5 --lr-min 1e-3 -o "$O" $SP
expect_error "unknown option" "unrecognized option|--frobnicate" $MD finetune --frobnicate -o "$O" $SP
expect_error "CUDA without a GPU" "-x/--device|GPU|CUDA" \
    env CUDA_VISIBLE_DEVICES= $MD finetune -x cuda -i "$T/lm.safetensors" $FAST -o "$O" $SP
no_file "no checkpoint after the errors" "$O"
finish
