# mambadna simulate: genomes in FASTA and 2bit hold the same sequences for a
# seed, outputs are whole or absent, reads carry their species, and every
# misuse gives one error line and no files.
. "$MD_TESTS/clilib.sh"
O=$T/g
SPECIES="human chimpanzee bonobo gorilla orangutan"

expect_ok "genomes, FASTA" "$MD" simulate genomes -o "$O/fa" -l 50k --chroms 2 --seed 3 -q
for sp in $SPECIES; do
    [ -s "$O/fa/$sp.fa" ] && ok || bad "no $O/fa/$sp.fa"
done
[ "$(grep '^>' "$O/fa/human.fa" | tr '\n' ' ')" = ">chr1 >chr2 " ] && ok || bad "human.fa contigs: $(grep '^>' "$O/fa/human.fa")"
grep -q '"realised"' "$O/fa/summary.json" && ok || bad "summary.json lacks the divergences"
grep -q '"subfamily": "[ACGT]\{300,\}"' "$O/fa/summary.json" && grep -q '"subfamily_insertions": [1-9]' "$O/fa/summary.json" &&
    ok || bad "summary.json lacks the branches' subfamilies"
[ -z "$(ls "$O/fa" | grep -v -E '^(human|chimpanzee|bonobo|gorilla|orangutan)\.fa$|^summary\.json$')" ] && ok ||
    bad "stray files: $(ls "$O/fa")"

expect_ok "genomes, 2bit" "$MD" simulate genomes -o "$O/tb" -f 2bit -l 50k --chroms 2 --seed 3 -q
for sp in $SPECIES; do
    [ "$(head -c 4 "$O/tb/$sp.2bit" | od -An -tx1 | tr -d ' ')" = "4327411a" ] && ok || bad "$sp.2bit lacks the 2bit magic"
done

# The same seed in both formats: the same sequences, soft-masking included.
if "$MD" view -h >/dev/null 2>&1; then
    for sp in $SPECIES; do
        if cmp -s <("$MD" view -q "$O/fa/$sp.fa") <("$MD" view -q "$O/tb/$sp.2bit"); then ok; else bad "$sp: FASTA and 2bit differ"; fi
    done
else
    echo "note: 'mambadna view' is not registered; FASTA/2bit comparison skipped"
fi

# Determinism: the same seed on one thread gives the same bytes; another seed does not.
expect_ok "genomes again, 1 thread" "$MD" simulate genomes -o "$O/again" -l 50k --chroms 2 --seed 3 -t 1 -q
cmp -s "$O/fa/bonobo.fa" "$O/again/bonobo.fa" && ok || bad "seed 3 on 1 thread differs"
expect_ok "genomes, seed 4" "$MD" simulate genomes -o "$O/other" -l 50k --chroms 2 --seed 4 -q
cmp -s "$O/fa/bonobo.fa" "$O/other/bonobo.fa" && bad "seeds 3 and 4 give the same genome" || ok

# --json also prints the summary; --ancestor adds the base genome.
expect_ok "genomes --json --ancestor" "$MD" simulate genomes -o "$O/json" -l 20k --chroms 1 --json --ancestor -q
grep -q '"divergence"' "$T/out" && ok || bad "--json printed no summary"
[ -s "$O/json/ancestor.fa" ] && ok || bad "--ancestor wrote no ancestor.fa"

# Reads from two species at once (each file its own genome), labelled by file name.
expect_ok "reads" "$MD" simulate reads "$O/fa/human.fa" "$O/tb/gorilla.2bit" -n 300 -l 100 -e 0.01 -o "$T/r.fq" -q
[ "$(wc -l <"$T/r.fq")" -eq 1200 ] && ok || bad "r.fq has $(wc -l <"$T/r.fq") lines"
grep -q '^@human|chr[12]|[0-9]*-[0-9]*|[+-]|' "$T/r.fq" && ok || bad "no human reads: $(head -n 1 "$T/r.fq")"
grep -q '^@gorilla|' "$T/r.fq" && ok || bad "no gorilla reads"
expect_ok "reads, FASTA by extension" "$MD" simulate reads "$O/fa/human.fa" -n 5 -l 50-80 --label hs -o "$T/r.fa" -q
[ "$(head -c 4 "$T/r.fa")" = ">hs|" ] && ok || bad "r.fa starts '$(head -c 4 "$T/r.fa")'"

# Misuse: one error line, nothing written.
expect_error "unknown format" "format.*bam" "$MD" simulate genomes -o "$O/bad1" -f bam
no_file "unknown format" "$O/bad1"
expect_error "zero length" "length.*0" "$MD" simulate genomes -o "$O/bad2" -l 0
no_file "zero length" "$O/bad2"
expect_error "bad length" "length.*'1x'" "$MD" simulate genomes -o "$O/bad3" -l 1x
no_file "bad length" "$O/bad3"
expect_error "zero chromosomes" "chroms" "$MD" simulate genomes -o "$O/bad4" --chroms 0
no_file "zero chromosomes" "$O/bad4"
expect_error "negative subfamily rate" "subfamily-repeats.*-1" "$MD" simulate genomes -o "$O/bad6" --subfamily-repeats -1
no_file "negative subfamily rate" "$O/bad6"
expect_error "no output folder" "output folder" "$MD" simulate genomes -l 10k
expect_error "-o without a value" "'-o' needs a value" "$MD" simulate genomes -l 10k -o
touch "$T/afile"
expect_error "output under a file" "cannot create output folder.*afile/sub" "$MD" simulate genomes -o "$T/afile/sub" -l 10k
no_file "output under a file" "$T/afile/"
expect_error "output is a file" "not a folder" "$MD" simulate genomes -o "$T/afile" -l 10k
if [ "$(id -u)" -ne 0 ]; then
    mkdir "$T/ro" && chmod 555 "$T/ro"
    expect_error "read-only output folder" "cannot create" "$MD" simulate genomes -o "$T/ro" -l 10k
    [ -z "$(ls -A "$T/ro")" ] && ok || bad "files left in a read-only folder: $(ls -A "$T/ro")"
    chmod 755 "$T/ro"
fi
expect_error "unknown subcommand" "unknown subcommand 'genome'" "$MD" simulate genome -o "$O/bad5"
no_file "unknown subcommand" "$O/bad5"
expect_error "reads without a genome" "no genome" "$MD" simulate reads -n 5
expect_error "reads, inverted range" "200 exceeds maximum 100" "$MD" simulate reads "$O/fa/human.fa" -l 200-100
expect_error "reads, bad format" "format.*sam" "$MD" simulate reads "$O/fa/human.fa" -f sam -o "$T/bad.fq"
no_file "reads, bad format" "$T/bad.fq"
expect_error "reads, missing genome" "nope.fa" "$MD" simulate reads "$T/nope.fa" -o "$T/bad2.fq"
no_file "reads, missing genome" "$T/bad2.fq"
expect_error "reads longer than the genome" "do not fit" "$MD" simulate reads "$O/fa/human.fa" -l 1M -o "$T/bad3.fq"
no_file "reads longer than the genome" "$T/bad3.fq"
expect_error "reads, bad label" "label" "$MD" simulate reads "$O/fa/human.fa" --label 'a|b' -o "$T/bad4.fq"
no_file "reads, bad label" "$T/bad4.fq"
expect_error "reads, error rate" "error-rate" "$MD" simulate reads "$O/fa/human.fa" -e 2 -o "$T/bad5.fq"
no_file "reads, error rate" "$T/bad5.fq"

finish
