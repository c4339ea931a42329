# mambadna view: the shared 2bit files print as their source FASTA, in every
# genome format; regions, BED regions, -U, -w and --lengths.
. "$MD_TESTS/clilib.sh"
need_shared
TB=$SHARED_DATA/twobit

# FASTA with headers cut to their first word ("> pig1 x" -> ">pig1").
headers() { sed -E 's/^> */>/; /^>/s/[ \t].*//' "$1"; }
# One line per record: ">name" then the whole sequence.
oneline() { headers "$1" | awk '/^>/ { if (s != "") print s; s = ""; print; next } { s = s $0 } END { if (s != "") print s }'; }
# The sequence of record $2 in FASTA $1, one line.
seq_of() { oneline "$1" | awk -v n=">$2" '$0 == n { getline; print; exit }'; }
same() { if cmp -s "$2" "$3"; then ok; else bad "$1: $(diff "$2" "$3" | head -n 4)"; fi; }

expect_ok "view -h" $MD view -h
grep -q "^Usage: mambadna view" "$T/out" && ok || bad "view -h prints usage on stdout"

# Each shared 2bit is its FASTA, byte for byte at the FASTA's own width
# (soft-masking kept), and line for line at -w 0.
for pair in lib2bit_foo:50 lastz_pseudopig:100 lastz_shorties:100; do
    stem=${pair%%:*} width=${pair##*:}
    [ -f "$TB/$stem.2bit" ] || continue
    headers "$TB/$stem.fa" > "$T/$stem.want"
    expect_ok "view $stem" $MD view -w "$width" -o "$T/$stem.got" "$TB/$stem.2bit"
    same "$stem.2bit at width $width" "$T/$stem.want" "$T/$stem.got"
    oneline "$TB/$stem.fa" > "$T/$stem.want1"
    $MD view -q -w 0 "$TB/$stem.2bit" > "$T/$stem.got1"
    same "$stem.2bit at -w 0" "$T/$stem.want1" "$T/$stem.got1"
    # default width 60
    $MD view -q "$TB/$stem.2bit" > "$T/$stem.got60"
    if awk '!/^>/ && length($0) > 60 { exit 1 }' "$T/$stem.got60" && \
       [ "$(grep -v '>' "$T/$stem.got60" | tr -d '\n')" = "$(grep -v '>' "$T/$stem.want1" | tr -d '\n')" ]; then ok
    else bad "$stem: default width 60"; fi
done

# The same genome as plain FASTA, gzip, bgzip (no index, then with the one
# view writes) and 2bit prints identically.
S=$TB/lastz_pseudopig
if [ -f "$S.2bit" ]; then
    cp "$S.fa" "$T/pig.fa"
    gzip -c "$S.fa" > "$T/pig_gzip.fa"
    bgzip -c "$S.fa" > "$T/pig_bgzip.data"
    $MD view -q -w 0 "$S.2bit" > "$T/pig.want"
    for f in pig.fa pig_gzip.fa pig_bgzip.data pig.fa pig_bgzip.data; do
        $MD view -q -w 0 "$T/$f" > "$T/pig.got"
        same "view of $f" "$T/pig.want" "$T/pig.got"
    done
    [ -f "$T/pig_bgzip.data.fai" ] && [ -f "$T/pig_bgzip.data.gzi" ] && [ -f "$T/pig.fa.fai" ] && ok || bad "indexes written beside plain and bgzip FASTA"
    [ ! -f "$T/pig_gzip.fa.fai" ] && ok || bad "no index beside plain gzip"
    # regions through faidx (indexed) and from a 2bit agree
    for g in "$T/pig.fa" "$T/pig_bgzip.data" "$S.2bit"; do
        $MD view -q -w 0 -r pig2:101-250 -r pig3 -r pig1:22900 "$g" > "$T/reg.got"
        {
            echo ">pig2:101-250"; seq_of "$T/pig.want" pig2 | cut -c101-250
            echo ">pig3"; seq_of "$T/pig.want" pig3
            echo ">pig1:22900-22929"; seq_of "$T/pig.want" pig1 | cut -c22900-
        } > "$T/reg.want"
        same "regions of $g" "$T/reg.want" "$T/reg.got"
    done
fi

F=$TB/lib2bit_foo.2bit
if [ -f "$F" ]; then
    chr1=$(seq_of "$TB/lib2bit_foo.fa" chr1)
    # samtools-style region, commas, and a region that starts in an N run
    expect_ok "region" $MD view -r chr1:45-70 -r 'chr1:1,01-1,10' "$F"
    printf '>chr1:45-70\n%s\n>chr1:101-110\n%s\n' "$(echo "$chr1" | cut -c45-70)" "$(echo "$chr1" | cut -c101-110)" > "$T/want"
    same "regions" "$T/want" "$T/out"
    # -R: region lines and BED lines (0-based starts), comments skipped
    printf '# a comment\ntrack name=x\nchr1:45-70\nchr1\t44\t70\tname\t0\t+\n\nchr2\n' > "$T/regions.txt"
    expect_ok "-R" $MD view -w 0 -R "$T/regions.txt" "$F"
    printf '>chr1:45-70\n%s\n>chr1:45-70\n%s\n>chr2\n%s\n' "$(echo "$chr1" | cut -c45-70)" "$(echo "$chr1" | cut -c45-70)" \
        "$(seq_of "$TB/lib2bit_foo.fa" chr2)" > "$T/want"
    same "-R regions and BED" "$T/want" "$T/out"
    # -U folds the soft-masking
    expect_ok "-U" $MD view -U -w 0 -r chr1:51-80 "$F"
    printf '>chr1:51-80\n%s\n' "$(echo "$chr1" | cut -c51-80 | tr a-z A-Z)" > "$T/want"
    same "-U" "$T/want" "$T/out"
    grep -q '[acgt]' "$T/want" && ok || bad "-U test region should hold lowercase"
    $MD view -q -w 0 -r chr1:51-80 "$F" | grep -q '[acgt]' && ok || bad "soft-masking kept without -U"
    # -w 7 wraps exactly
    expect_ok "-w 7" $MD view -w 7 -r chr1:1-20 "$F"
    printf '>chr1:1-20\n%s\n%s\n%s\n' "$(echo "$chr1" | cut -c1-7)" "$(echo "$chr1" | cut -c8-14)" "$(echo "$chr1" | cut -c15-20)" > "$T/want"
    same "-w 7" "$T/want" "$T/out"
    # --lengths over several files is one genome
    expect_ok "--lengths" $MD view --lengths "$F" "$TB/lastz_shorties.2bit"
    { oneline "$TB/lib2bit_foo.fa"; oneline "$TB/lastz_shorties.fa"; } | awk '/^>/ { n = substr($0, 2); next } { print n "\t" length($0) }' > "$T/want"
    same "--lengths" "$T/want" "$T/out"
    # -o writes the file whole
    expect_ok "-o" $MD view -o "$T/foo.out" -w 50 "$F"
    headers "$TB/lib2bit_foo.fa" > "$T/want"
    same "-o" "$T/want" "$T/foo.out"
fi

# The hg38 chunk through its existing index (read-only folder).
H=$SHARED_DATA/human/hg38_chr2_1-2333275.fa.gz
if [ -f "$H" ]; then
    expect_ok "hg38 lengths" $MD view --lengths "$H"
    [ "$(cat "$T/out")" = "$(printf 'chr2\t2333275')" ] && ok || bad "hg38 --lengths: $(cat "$T/out")"
    expect_ok "hg38 region" $MD view -w 0 -r chr2:9991-10010 "$H"
    [ "$(sed -n 2p "$T/out" | cut -c1-10)" = "NNNNNNNNNN" ] && [ "$(sed -n 2p "$T/out" | cut -c11- | tr -d 'ACGTacgt')" = "" ] \
        && ok || bad "hg38 chr2:9991-10010 should be 10 N then bases: $(sed -n 2p "$T/out")"
fi

finish
