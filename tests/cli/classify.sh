# mambadna classify with a small classifier fine-tuned on simulated genomes:
# the TSV (header, columns, one row per read in input order), long reads as
# windows, both strands, --min-prob, the summary and its counts, stdin and
# gzip, independence from threads and batch size; and every user error.
# These run on the CPU (-x cpu) also where a GPU is present; with one, the
# GPU's probabilities must match the CPU's (fp32, and bf16 more loosely).
. "$MD_TESTS/clilib.sh"

$MD simulate genomes -q --seed 3 -f 2bit --chroms 3 --length 20k -o "$T/g" || { bad "simulate"; finish; exit 1; }
$MD finetune -q --from-scratch --d-model 16 --n-layer 1 -L 64 -B 8 --epochs 1 --steps-per-epoch 2 --val-windows 2 \
    --test-windows 2 -o "$T/m.safetensors" human="$T/g/human.2bit" gorilla="$T/g/gorilla.2bit" \
    orang="$T/g/orangutan.2bit" || bad "finetune"
$MD pretrain -q --d-model 16 --n-layer 1 -L 64 -B 2 --steps 2 -o "$T/lm.safetensors" "$T/g/human.2bit" || bad "pretrain"
# reads of 20-300 bp (many longer than the 64 bp windows), one empty record
$MD simulate reads -q -n 60 -l 20-300 --seed 4 -o "$T/r.fa" "$T/g/human.2bit" "$T/g/gorilla.2bit" || bad "reads"
printf '>empty read\n\n' >> "$T/r.fa"
$MD simulate reads -q -n 5 -l 100 --seed 5 -o "$T/r2.fq" "$T/g/orangutan.2bit" || bad "reads 2"

expect_ok "help" $MD classify -h
expect_ok "classify" $MD classify -x cpu -i "$T/m.safetensors" --summary "$T/s.tsv" -o "$T/c.tsv" "$T/r.fa" "$T/r2.fq"
grep -q "has no sequence; skipped" "$T/err" && ok || bad "the empty read is warned about"
take_provenance "$T/c.tsv"
take_provenance "$T/s.tsv"
head -n 1 "$T/c.tsv" | grep -q '^# mambadna .* classify; model .*m.safetensors.*device CPU.*seed 1$' && ok || \
    bad "header line: $(head -n 1 "$T/c.tsv")"
[ "$(sed -n 2p "$T/c.tsv")" = "$(printf 'read_id\tlength\tlabel\tprob\tp_human\tp_gorilla\tp_orang')" ] && ok || \
    bad "columns: $(sed -n 2p "$T/c.tsv")"
# every read but the empty one, in input order, with its length
diff <(grep '^>' "$T/r.fa" | grep -v empty | cut -c 2- | cut -d ' ' -f 1; awk 'NR % 4 == 1' "$T/r2.fq" | cut -c 2- | cut -d ' ' -f 1) \
     <(tail -n +3 "$T/c.tsv" | cut -f 1) >/dev/null && ok || bad "rows are not the reads in input order"
awk 'FNR == NR { if (/^>/) n = substr($1, 2); else len[n] += length($0); next }
     FNR > 2 && $1 in len && len[$1] != $2 { bad = 1 } END { exit bad }' "$T/r.fa" "$T/c.tsv" && ok || bad "lengths"
# probabilities: in [0, 1], summing to 1, prob = the largest, label = its column
awk -F '\t' 'NR > 2 { s = $5 + $6 + $7; m = $5; l = "human"; if ($6 > m) { m = $6; l = "gorilla" } if ($7 > m) { m = $7; l = "orang" }
     if (s < 0.999 || s > 1.001 || $4 != m || $3 != l) bad = 1 } END { exit bad }' "$T/c.tsv" && ok || \
    bad "probabilities and labels inconsistent"
# summary: 66 reads, 1 skipped, the label counts add up to 65
grep -q '^# .*66 reads, 65 classified, 0 unclassified, 1 skipped' "$T/s.tsv" && ok || bad "summary header: $(head -n 1 "$T/s.tsv")"
awk -F '\t' 'NR > 2 && $4 != "skipped" { n += $2 } $4 == "skipped" { s = $2 } END { exit !(n == 65 && s == 1) }' "$T/s.tsv" && ok || \
    bad "summary counts: $(cat "$T/s.tsv")"
awk -F '\t' 'NR > 2 { p += $1 } END { exit !(p > 99.9 && p < 100.1) }' "$T/s.tsv" && ok || bad "summary percentages"
for l in unclassified human gorilla orang skipped; do
    awk -F '\t' -v l=$l '$4 == l { f = 1 } END { exit !f }' "$T/s.tsv" && ok || bad "summary row $l"
done

# --min-prob 1: every read unclassified
expect_ok "min-prob 1" $MD classify -x cpu -i "$T/m.safetensors" --min-prob 1 --summary "$T/s1.tsv" -o "$T/c1.tsv" "$T/r.fa"
take_provenance "$T/c1.tsv"
[ "$(tail -n +3 "$T/c1.tsv" | cut -f 3 | sort -u)" = unclassified ] && ok || bad "min-prob 1 leaves reads classified"
grep -q ' 0 classified, 60 unclassified, 1 skipped' "$T/s1.tsv" && ok || bad "summary with min-prob: $(head -n 1 "$T/s1.tsv")"

# The same result whatever the thread count and batch size; stdin and gzip read the same.
tail -n +2 "$T/c.tsv" > "$T/ref"
$MD classify -x cpu -q -t 1 -B 3 -i "$T/m.safetensors" "$T/r.fa" "$T/r2.fq" 2>/dev/null | tail -n +4 > "$T/t1"
cmp -s "$T/ref" "$T/t1" && ok || bad "1 thread, batches of 3 differ"
gzip -c "$T/r2.fq" > "$T/r2.fq.gz"
cat "$T/r.fa" | $MD classify -x cpu -q -i "$T/m.safetensors" - "$T/r2.fq.gz" 2>/dev/null | tail -n +4 > "$T/t2"
cmp -s "$T/ref" "$T/t2" && ok || bad "stdin + gzip differ"
# Chunks of 7 reads (10 chunks over the two files, the empty read inside
# one, the last chunk short), serially and through the GPU's two-thread
# pipeline (the next chunk read and the last one's rows written while
# this one runs): the same rows and the same summary.
for ov in 0 1; do
    MD_CLASSIFY_CHUNK_READS=7 MD_CLASSIFY_OVERLAP=$ov $MD classify -x cpu -q -i "$T/m.safetensors" \
        --summary "$T/sc$ov.tsv" "$T/r.fa" "$T/r2.fq" 2>"$T/ec$ov" | tail -n +4 > "$T/tc$ov"
    cmp -s "$T/ref" "$T/tc$ov" && ok || bad "chunks of 7 reads (overlap $ov) differ"
    cmp -s "$T/s.tsv" <(tail -n +3 "$T/sc$ov.tsv") && ok || bad "chunks of 7 reads (overlap $ov): summary differs"
    grep -q "has no sequence; skipped" "$T/ec$ov" && ok || bad "chunks of 7 reads (overlap $ov): the empty read's warning"
done

# A long read is the sum of its windows: a 128 bp read gives the normalised
# product of its two 64 bp halves' probabilities.
awk 'BEGIN { srand(9); split("A C G T", b, " "); printf(">long\n"); for (i = 0; i < 128; i++) printf("%s", b[int(rand() * 4) + 1]); print "" }' > "$T/long.fa"
awk 'NR == 2 { print ">h1"; print substr($0, 1, 64); print ">h2"; print substr($0, 65) }' "$T/long.fa" > "$T/halves.fa"
$MD classify -x cpu -q -i "$T/m.safetensors" "$T/long.fa" 2>/dev/null | tail -n 1 > "$T/l"
$MD classify -x cpu -q -i "$T/m.safetensors" "$T/halves.fa" 2>/dev/null | tail -n 2 > "$T/h"
paste <(cut -f 5-7 "$T/h" | head -n 1) <(cut -f 5-7 "$T/h" | tail -n 1) "$T/l" |
    awk -F '\t' '{ s = 0; for (k = 1; k <= 3; k++) { q[k] = $k * $(k + 3); s += q[k] }
        for (k = 1; k <= 3; k++) if ((d = q[k] / s - $(k + 10)) > 2e-3 || d < -2e-3) bad = 1 } END { exit bad }' && ok || \
    bad "a long read is not its windows' product: $(cat "$T/h" "$T/l")"
# both strands: the average of the read's and its reverse complement's probabilities
expect_ok "both strands" $MD classify -x cpu -i "$T/m.safetensors" --both-strands -o "$T/b.tsv" "$T/long.fa"
grep -q 'both strands' "$T/b.tsv" && ok || bad "the header says both strands"
awk 'NR == 2 { print ">rc"; print $0 }' "$T/long.fa" | rev | tr ACGT TGCA | sed '1s/.*/>rc/' > "$T/rc.fa"
$MD classify -x cpu -q -i "$T/m.safetensors" "$T/rc.fa" 2>/dev/null | tail -n 1 > "$T/r"
paste "$T/l" "$T/r" <(tail -n 1 "$T/b.tsv") | awk -F '\t' '{ for (k = 5; k <= 7; k++)
    if ((d = ($k + $(k + 7)) / 2 - $(k + 14)) > 1e-3 || d < -1e-3) bad = 1 } END { exit bad }' && ok || \
    bad "both strands is not the mean: $(cat "$T/l" "$T/r"; tail -n 1 "$T/b.tsv")"

# --precision: fp32 is the CPU's default; bf16 is for GPUs
expect_ok "precision fp32" $MD classify -x cpu -i "$T/m.safetensors" --precision fp32 -o "$T/p.tsv" "$T/r.fa" "$T/r2.fq"
take_provenance "$T/p.tsv"
head -n 1 "$T/p.tsv" | grep -q 'device CPU.*, fp32; seed 1$' && ok || bad "header line names the precision: $(head -n 1 "$T/p.tsv")"
cmp -s <(tail -n +3 "$T/c.tsv") <(tail -n +3 "$T/p.tsv") && ok || bad "--precision fp32 changed the CPU's results"

# User errors: one [E::] line, exit 1, no output left.
O="$T/e.tsv"
expect_error "no -i" "no classifier given" $MD classify -o "$O" "$T/r.fa"
expect_error "no reads" "no reads given" $MD classify -i "$T/m.safetensors" -o "$O"
expect_error "a language model" "language model, not a classifier" $MD classify -i "$T/lm.safetensors" -o "$O" "$T/r.fa"
expect_error "missing model" "nothere.safetensors" $MD classify -i "$T/nothere.safetensors" -o "$O" "$T/r.fa"
expect_error "a label the model lacks" "no label 'chimp'" $MD classify -i "$T/m.safetensors" --labels human,chimp -o "$O" "$T/r.fa"
expect_error "missing reads" "nothere.fa" $MD classify -i "$T/m.safetensors" -o "$O" "$T/r.fa" "$T/nothere.fa"
head -c 300 "$T/m.safetensors" > "$T/junk.fa"
expect_error "junk reads" "junk.fa" $MD classify -i "$T/m.safetensors" -o "$O" "$T/junk.fa"
printf '@r1\nACGT\n+\nII\n' > "$T/badq.fq"
expect_error "bad FASTQ" "badq.fq" $MD classify -i "$T/m.safetensors" -o "$O" "$T/badq.fq"
: > "$T/none.fa"
expect_error "no reads in the input" "no reads in" $MD classify -i "$T/m.safetensors" -o "$O" "$T/none.fa"
expect_error "bad --min-prob" "--min-prob" $MD classify -i "$T/m.safetensors" --min-prob 2 -o "$O" "$T/r.fa"
expect_error "bf16 on the CPU" "--precision" $MD classify -x cpu --precision bf16 -i "$T/m.safetensors" -o "$O" "$T/r.fa"
expect_error "bad --precision" "--precision" $MD classify --precision fp16 -i "$T/m.safetensors" -o "$O" "$T/r.fa"
if [ "$($MD version | sed -n 's/^gpus: *\([0-9]*\) present/\1/p')" -gt 0 ] 2>/dev/null; then
    # on a GPU: the CPU's probabilities, within fp32's rounding (bf16's)
    for p in "fp32 1e-4" "bf16 2e-2"; do
        set -- $p
        expect_ok "GPU $1" $MD classify -x cuda --precision $1 -i "$T/m.safetensors" -o "$T/g.tsv" "$T/r.fa" "$T/r2.fq"
        take_provenance "$T/g.tsv"
        paste <(tail -n +3 "$T/c.tsv") <(tail -n +3 "$T/g.tsv") | awk -F '\t' -v tol=$2 '
            { n++; for (k = 5; k <= 7; k++) if ((d = $k - $(k + 7)) > tol || d < -tol) bad = 1 }
            END { exit bad || n != 65 }' && ok || bad "GPU $1 probabilities differ from the CPU's by more than $2"
    done
else
    expect_error "CUDA without a GPU" "-x/--device|GPU|CUDA" $MD classify -x cuda -i "$T/m.safetensors" -o "$O" "$T/r.fa"
fi
expect_error "summary in a missing folder" "nofolder" $MD classify -i "$T/m.safetensors" --summary "$T/nofolder/s.tsv" -o "$O" "$T/r.fa"
no_file "no output after the errors" "$O"
finish
