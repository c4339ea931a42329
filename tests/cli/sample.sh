# mambadna sample: FASTA windows are the genome's text at their headers'
# coordinates (reverse-complemented for '-'), BED6 rows name the same
# windows, the thread count changes nothing, BED tiling, and user errors.
. "$MD_TESTS/clilib.sh"

# A genome with soft-masked stretches, written by awk from a fixed seed.
awk 'BEGIN {
    srand(17); split("A C G T", b, " ");
    n = split("chr1 5000 chr2 3000 chr3 90", spec, " ");
    for (i = 1; i < n; i += 2) {
        printf(">%s\n", spec[i]); line = "";
        for (j = 0; j < spec[i + 1]; j++) {
            c = b[int(rand() * 4) + 1];
            if (j % 700 < 60) c = tolower(c);
            line = line c;
            if (length(line) == 60) { print line; line = "" }
        }
        if (line != "") print line;
    }
}' >"$T/g.fa"

# check_windows FASTA: prints the number of windows whose sequence is not the
# genome's (uppercased) text at the header's 1-based inclusive coordinates.
check_windows() {
    awk -v L="$2" '
    BEGIN { comp["A"] = "T"; comp["C"] = "G"; comp["G"] = "C"; comp["T"] = "A"; comp["N"] = "N" }
    FNR == NR { if (/^>/) { name = substr($0, 2) } else { seq[name] = seq[name] toupper($0) }; next }
    /^>/ { hdr = $0; next }
    {
        if (!match(hdr, /^>[^:]+:[0-9]+-[0-9]+\([+-]\)$/)) { bad++; next }
        h = substr(hdr, 2); c = h; sub(/:.*/, "", c);
        r = h; sub(/^[^:]+:/, "", r); s = r; sub(/-.*/, "", s); e = r; sub(/^[0-9]+-/, "", e); sub(/\(.*/, "", e);
        strand = substr(hdr, length(hdr) - 1, 1);
        want = substr(seq[c], s, e - s + 1);
        if (strand == "-") { rc = ""; for (i = length(want); i >= 1; i--) rc = rc comp[substr(want, i, 1)]; want = rc }
        if ($0 != want || length($0) != L || e - s + 1 != L) bad++;
        n++;
    }
    END { print bad + 0, n + 0 }' "$T/g.fa" "$1"
}

# Uniform windows, FASTA and BED, from the same seed.
expect_ok "fasta" "$MD" sample -L 100 -n 200 --seed 3 --rc -t 2 -o "$T/w.fa" "$T/g.fa"
read -r n_bad n_win < <(check_windows "$T/w.fa" 100)
[ "$n_win" -eq 200 ] && ok || bad "fasta: $n_win windows, want 200"
[ "$n_bad" -eq 0 ] && ok || bad "fasta: $n_bad windows differ from the genome"
grep -q '(-)$' "$T/w.fa" && grep -q '(+)$' "$T/w.fa" && ok || bad "fasta: --rc gave only one strand"
grep -q '^>chr3' "$T/w.fa" && bad "fasta: a window on chr3, shorter than L" || ok
grep -q "MB/s" "$T/err" && ok || bad "fasta: no throughput line on stderr"

expect_ok "bed" "$MD" sample -L 100 -n 200 --seed 3 --rc -f bed -o "$T/w.bed" "$T/g.fa"
take_provenance "$T/w.bed"
awk -F'\t' 'NF != 6 || $5 != 0 || $3 - $2 != 100 || $4 != "w" (NR - 1) { bad++ } END { exit bad > 0 }' "$T/w.bed" \
    && ok || bad "bed: malformed BED6 rows"
awk -F'\t' '{ printf(">%s:%d-%d(%s)\n", $1, $2 + 1, $3, $6) }' "$T/w.bed" >"$T/bed_headers"
grep '^>' "$T/w.fa" >"$T/fa_headers"
cmp -s "$T/bed_headers" "$T/fa_headers" && ok || bad "bed rows and fasta headers name different windows"

# The thread count changes nothing; another seed changes everything.
expect_ok "one thread" "$MD" sample -L 100 -n 200 --seed 3 --rc -t 1 -o "$T/w1.fa" "$T/g.fa"
cmp -s "$T/w.fa" "$T/w1.fa" && ok || bad "-t 1 and -t 2 differ"
expect_ok "seed 4" "$MD" sample -L 100 -n 200 --seed 4 --rc -o "$T/w4.fa" "$T/g.fa"
cmp -s "$T/w.fa" "$T/w4.fa" && bad "--seed 4 gives the same windows as --seed 3" || ok

# Standard output works too.
"$MD" sample -L 50 -n 3 -q "$T/g.fa" >"$T/stdout.fa" 2>"$T/err" && [ "$(grep -c '^>' "$T/stdout.fa")" -eq 3 ] \
    && ok || bad "writing to stdout"

# A FIFO (like /dev/null) is written in place, not replaced by a renamed temporary.
mkfifo "$T/fifo"
timeout 30 cat "$T/fifo" >"$T/from_fifo" &
reader=$!
expect_ok "fifo output" "$MD" sample -L 100 -n 200 --seed 3 --rc -o "$T/fifo" "$T/g.fa"
wait $reader
[ -p "$T/fifo" ] && cmp -s "$T/from_fifo" "$T/w.fa" && ok || bad "fifo output: replaced, or other windows"

# BED tiling: every tile in file order with -n 0.
printf 'chr1\t0\t1000\ttrain\nchr2\t100\t450\ttrain\nchr1\t2000\t2040\ttrain\nchr2\t0\t3000\ttest\n' >"$T/iv.bed"
expect_ok "bed tiles" "$MD" sample -L 100 -n 0 --bed "$T/iv.bed" --split train -f bed -o "$T/tiles.bed" "$T/g.fa"
take_provenance "$T/tiles.bed"
# 10 tiles from [0,1000), 3 centred in [100,450) (from 125), one extended around [2000,2040).
printf 'chr1\t%d\t%d\n' 0 100 100 200 200 300 300 400 400 500 500 600 600 700 700 800 800 900 900 1000 >"$T/want"
printf 'chr2\t%d\t%d\n' 125 225 225 325 325 425 >>"$T/want"
printf 'chr1\t%d\t%d\n' 1970 2070 >>"$T/want"
cut -f1-3 "$T/tiles.bed" | cmp -s - "$T/want" && ok || bad "bed tiles: $(cut -f1-3 "$T/tiles.bed" | tr '\n' ' ')"
expect_ok "bed tiles fasta" "$MD" sample -L 100 -n 0 --bed "$T/iv.bed" --split train -o "$T/tiles.fa" "$T/g.fa"
read -r n_bad n_win < <(check_windows "$T/tiles.fa" 100)
[ "$n_win" -eq 14 ] && [ "$n_bad" -eq 0 ] && ok || bad "bed tiles fasta: $n_bad of $n_win wrong"
expect_ok "bed sampled" "$MD" sample -L 100 -n 28 --bed "$T/iv.bed" --split train -f bed -o "$T/drawn.bed" "$T/g.fa"
take_provenance "$T/drawn.bed"
# Two passes over the 14 tiles: each tile exactly twice.
[ "$(cut -f1-3 "$T/drawn.bed" | sort | uniq -c | awk '$1 != 2' | wc -l)" -eq 0 ] \
    && [ "$(cut -f1-3 "$T/drawn.bed" | sort -u | wc -l)" -eq 14 ] && ok || bad "bed sampled: not two passes over the tiles"

# Errors: one line each, and no output file left behind.
expect_error "L too long" "longer than every contig" "$MD" sample -L 6000 -n 5 -o "$T/e1.fa" "$T/g.fa"
no_file "L too long" "$T/e1.fa"
printf 'chr1\t0\t100\ttrain\nchr2\t2900\t3100\ttrain\n' >"$T/outside.bed"
expect_error "interval outside its contig" "outside.bed:2:.*chr2:2900-3100.*beyond" \
    "$MD" sample -L 100 --bed "$T/outside.bed" -o "$T/e2.fa" "$T/g.fa"
no_file "interval outside" "$T/e2.fa"
printf 'chr1\t0\t100\ttrain\nchrUn\t0\t100\ttrain\n' >"$T/unknown.bed"
expect_error "unknown contig" "unknown.bed:2:.*chrUn" "$MD" sample -L 100 --bed "$T/unknown.bed" -o "$T/e3.fa" "$T/g.fa"
no_file "unknown contig" "$T/e3.fa"
expect_ok "unknown contig skipped" "$MD" sample -L 100 -n 0 --skip-unknown-contigs --bed "$T/unknown.bed" \
    -o "$T/skip.fa" "$T/g.fa"
grep -q '^\[W::.*skipped 1 interval' "$T/err" && [ "$(grep -c '^>' "$T/skip.fa")" -eq 1 ] && ok \
    || bad "unknown contig skipped: $(cat "$T/err")"
expect_error "unknown split" "no split 'valid'" "$MD" sample -L 100 --bed "$T/iv.bed" --split valid -o "$T/e4.fa" "$T/g.fa"
no_file "unknown split" "$T/e4.fa"
expect_error "bad format" "-f/--format.*'fastq'" "$MD" sample -f fastq -o "$T/e5.fa" "$T/g.fa"
no_file "bad format" "$T/e5.fa"
expect_error "negative -n" "-n/--num" "$MD" sample -n -5 -o "$T/e6.fa" "$T/g.fa"
no_file "negative -n" "$T/e6.fa"
expect_error "-n 0 without BED" "needs --bed" "$MD" sample -n 0 -o "$T/e7.fa" "$T/g.fa"
no_file "-n 0 without BED" "$T/e7.fa"
printf 'chr1\t0\t100\ttrain\nchr1\t50\tforty\ttrain\n' >"$T/malformed.bed"
expect_error "malformed BED" "malformed.bed:2:" "$MD" sample --bed "$T/malformed.bed" -o "$T/e8.fa" "$T/g.fa"
no_file "malformed BED" "$T/e8.fa"
printf '>gap\n%s\n' "$(head -c 3000 /dev/zero | tr '\0' N)" >"$T/gap.fa"
expect_error "all-N genome" "at most .* N" "$MD" sample -L 100 -o "$T/e9.fa" "$T/gap.fa"
no_file "all-N genome" "$T/e9.fa"
expect_error "no genome" "no genome" "$MD" sample -o "$T/e10.fa"
expect_ok "help" "$MD" sample -h
grep -q "Usage: mambadna sample" "$T/out" && ok || bad "help text"

# Real data: windows from the hg38 chunk are its text (its first 10 kb are N, which --max-n keeps out).
if [ -d "${MD_SHARED:-../shared}/data" ]; then
    need_shared
    HG="$SHARED_DATA/human/hg38_chr2_1-2333275.fa.gz"
    expect_ok "hg38" "$MD" sample -L 1000 -n 50 --seed 9 -f bed -o "$T/hg.bed" "$HG"
    take_provenance "$T/hg.bed"
    awk -F'\t' '$1 != "chr2" || $2 < 9900 || $3 > 2333275 { bad++ } END { exit bad > 0 }' "$T/hg.bed" \
        && ok || bad "hg38 windows outside chr2 or N-rich"
    # The Borzoi intervals that lie inside the chunk, tiled: 196,608 / 1,024 = 192 tiles each,
    # over the folds Borzoi trained on (all but fold3 = test and fold4 = valid).
    zcat "$SHARED_DATA/intervals/borzoi_sequences_human.bed.gz" | awk '$1 == "chr2" && $3 <= 2333275' >"$T/borzoi_chunk.bed"
    n_train=$(awk '$4 != "fold3" && $4 != "fold4"' "$T/borzoi_chunk.bed" | wc -l)
    expect_ok "borzoi tiles" "$MD" sample -L 1024 -n 0 --bed "$T/borzoi_chunk.bed" --split train -f bed -o "$T/bz.bed" "$HG"
    take_provenance "$T/bz.bed"
    [ "$n_train" -gt 0 ] && [ "$(wc -l <"$T/bz.bed")" -eq $((n_train * 192)) ] && ok \
        || bad "borzoi tiles: $(wc -l <"$T/bz.bed") tiles from $n_train train intervals"
    expect_error "borzoi file on a partial chr2" "beyond its contig" \
        "$MD" sample -L 1024 --bed "$SHARED_DATA/intervals/borzoi_sequences_human.bed.gz" --skip-unknown-contigs \
        -o "$T/e11.fa" "$HG"
    no_file "borzoi file on a partial chr2" "$T/e11.fa"
fi

finish
