# Real DNA (../shared/data, skipped when absent): a small classifier of
# three species -- E. coli, A. thaliana and chimpanzee (chrX loci) -- is
# fine-tuned from scratch with the end of every contig held out, then
# classifies reads simulated from the held-out test part of each genome's
# largest contig, which training never saw. The species differ enough in
# composition for a tiny model to beat chance (33%) clearly in a few dozen
# steps; the figures are checked loosely (50% of the reads at least; 62% at the time of writing).
. "$MD_TESTS/clilib.sh"
need_shared
S=$SHARED_DATA
ECO=$S/genomes/Ecoli_K12_MG1655_NC_000913.3.fna.gz
ATH=$S/genomes/Athaliana_first1pct_per_chrom.fa.gz
CHIMP=$S/species/Pan_troglodytes_Pan_tro_3.0_chrX_loci_DMD_etc.fa.gz
for f in "$ECO" "$ATH" "$CHIMP"; do [ -r "$f" ] || { echo "skipped: $f is absent"; exit 77; }; done

expect_ok "finetune on real genomes" $MD finetune --from-scratch --d-model 32 --n-layer 1 --pooling mean -L 128 -B 16 \
    --epochs 4 --steps-per-epoch 30 --lr 5e-3 --val-fraction 0.05 --test-fraction 0.05 --val-windows 8 \
    --test-windows 16 --seed 2 -t 2 -o "$T/m.safetensors" eco="$ECO" ath="$ATH" chimp="$CHIMP"
awk -F '\t' '$1 == "all" && $6 > 0.45 { f = 1 } END { exit !f }' "$T/m.test-confusion.tsv" && ok || \
    bad "test accuracy: $(cat "$T/m.test-confusion.tsv")"

# Reads from the test part of each species' largest contig: [len - 0.1 len + 0.05 len, len).
: > "$T/reads.fa"
for sp in eco:"$ECO" ath:"$ATH" chimp:"$CHIMP"; do
    label=${sp%%:*} file=${sp#*:}
    region=$($MD view --lengths "$file" 2>/dev/null | sort -k2,2nr | head -n 1 |
        awk '{ held = int($2 * 0.1); val = int($2 * 0.05); printf("%s:%d-%d", $1, $2 - held + val + 1, $2) }')
    $MD view -r "$region" "$file" > "$T/$label.fa" 2>/dev/null || bad "view $region of $label"
    $MD simulate reads -q -n 20 -l 400 -e 0.01 --seed 3 --label "$label" "$T/$label.fa" >> "$T/reads.fa" || \
        bad "reads of $label"
done
expect_ok "classify held-out reads" $MD classify -i "$T/m.safetensors" --summary "$T/s.tsv" -o "$T/c.tsv" "$T/reads.fa"
# the true label is the read name's first field
acc=$(awk -F '\t' 'NR > 2 { split($1, f, "|"); n++; ok += f[1] == $3 } END { printf("%.2f", ok / n) }' "$T/c.tsv")
awk -v a="$acc" 'BEGIN { exit !(a >= 0.5) }' && ok || bad "read accuracy $acc below 0.5: $(cat "$T/s.tsv")"
echo "held-out read accuracy $acc"
grep -q ' 60 reads' "$T/s.tsv" && ok || bad "summary: $(head -n 1 "$T/s.tsv")"
finish
