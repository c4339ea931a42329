# Bad genome input through mambadna view: each must exit non-zero, without a
# crash, with exactly one error line naming the file and the problem, and
# leave no output file behind.
. "$MD_TESTS/clilib.sh"
need_shared
TB=$SHARED_DATA/twobit
F=$TB/lib2bit_foo.2bit

# err DESC PATTERN VIEW-ARGS...: fails with one matching line, no -o output left.
err() {
    local desc=$1 pattern=$2; shift 2
    expect_error "$desc" "$pattern" $MD view -o "$T/result.fa" "$@"
    no_file "$desc: no output" "$T/result.fa"
    rm -f "$T/result.fa"*   # so that one failure does not cascade
}

err "missing file" "missing\.fa: cannot open: No such file" "$T/missing.fa"
: > "$T/empty.fa"
err "empty file" "empty\.fa: empty file" "$T/empty.fa"
err "a folder" "is a directory" "$T"
head -c 3000 /dev/urandom > "$T/junk.bin"
printf '\177ELF\002\001\001\000\000\000' > "$T/elf.bin"
err "binary junk" "elf\.bin: not a FASTA, gzip or 2bit file" "$T/elf.bin"
expect_error "random bytes" "junk\.bin: " $MD view "$T/junk.bin"
printf 'Hello, this is a README.\n' > "$T/readme.txt"
err "text, not FASTA" "readme\.txt: line 1: sequence or text before the first '>' header" "$T/readme.txt"
printf 'ACGT\n>chr1\nACGT\n' > "$T/seqfirst.fa"
err "sequence before any header" "seqfirst\.fa: line 1: sequence or text before the first '>' header" "$T/seqfirst.fa"
printf '>chr1\n' > "$T/header_only.fa"
err "header-only FASTA" "header_only\.fa: record 'chr1' \(line 1\) has no sequence" "$T/header_only.fa"
printf '>chr1' > "$T/header_nonl.fa"
err "a lone header without newline" "header_nonl\.fa: record 'chr1' \(line 1\) has no sequence" "$T/header_nonl.fa"
printf '>a\n>b\nACGT\n' > "$T/empty_record.fa"
err "an empty record" "empty_record\.fa: record 'a' \(line 1\) has no sequence" "$T/empty_record.fa"
printf '>a\nACGT\n>a\nACGT\n' > "$T/dup.fa"
err "duplicate name in a file" "dup\.fa: line 3: contig name 'a' appears twice" "$T/dup.fa"
printf '>a\nACGT\n>b\nAC GT1\n' > "$T/digit.fa"
err "a digit in a sequence" "digit\.fa: line 4: unexpected character '1'" "$T/digit.fa"
printf '>chr2\nACGT\n' > "$T/chr2.fa"
err "duplicate name across files" "chr2\.fa: contig name 'chr2' is also in .*lib2bit_foo\.2bit" "$F" "$T/chr2.fa"
bzip2 -c "$TB/lib2bit_foo.fa" > "$T/foo.fa.bz2" 2>/dev/null && \
    err "bzip2" "foo\.fa\.bz2: bzip2-compressed" "$T/foo.fa.bz2"

# Truncated gzip and bgzip (no index beside them, so the whole file is read).
S=$TB/lastz_pseudopig.fa
gzip -c "$S" > "$T/pig.gz"
head -c 9000 "$T/pig.gz" > "$T/pig_cut.gz"
err "truncated gzip" "pig_cut\.gz: truncated gzip file" "$T/pig_cut.gz"
head -c $(( $(stat -c %s "$T/pig.gz") - 4 )) "$T/pig.gz" > "$T/pig_cut2.gz"
err "gzip without its trailer" "pig_cut2\.gz: truncated gzip file" "$T/pig_cut2.gz"
bgzip -c "$S" > "$T/pig.bgz"
head -c 9000 "$T/pig.bgz" > "$T/pig_cut.bgz"
err "truncated bgzip" "pig_cut\.bgz: truncated (or corrupt )?bgzip file" "$T/pig_cut.bgz"
head -c $(( $(stat -c %s "$T/pig.bgz") - 28 )) "$T/pig.bgz" > "$T/pig_noeof.bgz"
err "bgzip without its end-of-file block" "pig_noeof\.bgz: truncated bgzip file \(the end-of-file block is missing\)" "$T/pig_noeof.bgz"
{ head -c 9000 "$T/pig.bgz"; tail -c 28 "$T/pig.bgz"; } > "$T/pig_hole.bgz"
err "bgzip missing its middle" "pig_hole\.bgz: truncated or corrupt bgzip file \(a block cannot be read\)" "$T/pig_hole.bgz"
# bytes flipped inside the compressed data
flip() { { head -c 3000 "$1"; head -c 100 "$1" | tail -c 50 | tr 'A-Za-z0-9' 'N-ZA-Mn-za-m5-90-4'; tail -c +3051 "$1"; } > "$2"; }
flip "$T/pig.gz" "$T/pig_flip.gz"
err "corrupt gzip" "pig_flip\.gz: (corrupt gzip data: [a-z]|truncated gzip)" "$T/pig_flip.gz"
flip "$T/pig.bgz" "$T/pig_flip.bgz"
err "corrupt bgzip" "pig_flip\.bgz: truncated or corrupt bgzip file" "$T/pig_flip.bgz"
[ ! -e "$T/pig_cut.bgz.fai" ] && [ ! -e "$T/pig_cut.gz.fai" ] && ok || bad "no index is left beside a truncated file"

# A 2bit file cut at several points. lib2bit_foo.2bit: header [0,16), index
# [16,34), chr1's record header and blocks [34,74), its bases [74,112), then
# chr2's record [112,161).
if [ -f "$F" ]; then
    for cut in 2 12 20 30 38 50 66 72 90 111 130 160; do
        head -c $cut "$F" > "$T/cut$cut.2bit"
        err "2bit cut at $cut bytes" "cut$cut\.2bit: truncated (or corrupt )?2bit file" "$T/cut$cut.2bit"
    done
    # wrong magic, unknown version
    { printf 'XXXX'; tail -c +5 "$F"; } > "$T/badmagic.2bit"
    err "2bit with a wrong magic" "badmagic\.2bit: (not a FASTA|line 1)" "$T/badmagic.2bit"
    { head -c 4 "$F"; printf '\011\000\000\000'; tail -c +9 "$F"; } > "$T/v9.2bit"
    err "2bit version 9" "v9\.2bit: unsupported 2bit version 9" "$T/v9.2bit"
    # chr1's first N block (start at byte 42) moved past its end
    { head -c 42 "$F"; printf '\377\000\000\000'; tail -c +47 "$F"; } > "$T/block.2bit"
    err "2bit N block past the end" "block\.2bit: corrupt 2bit record of 'chr1': N block 1" "$T/block.2bit"
    # a sequence count the file cannot hold
    { head -c 8 "$F"; printf '\377\377\377\177'; tail -c +13 "$F"; } > "$T/count.2bit"
    err "2bit with a huge count" "count\.2bit: truncated or corrupt 2bit file: the header claims 2147483647 sequences" "$T/count.2bit"
    # chr2's N block (start at byte 120) past its end: found only when chr2 is
    # fetched, after chr1 was written; still no file is left
    { head -c 120 "$F"; printf '\377\000\000\000'; tail -c +125 "$F"; } > "$T/late.2bit"
    err "failure after chr1 was written" "late\.2bit: corrupt 2bit record of 'chr2'" "$T/late.2bit"
fi

# Regions.
if [ -f "$F" ]; then
    err "region beyond the end" "region 'chr1:100-151' goes beyond the end of contig 'chr1' \(length 150\)" -r chr1:100-151 "$F"
    err "region starting beyond the end" "region 'chr2:101' goes beyond the end" -r chr2:101 "$F"
    err "unknown contig" "region 'chrZ:1-10': no contig 'chrZ'" -r chrZ:1-10 "$F"
    err "unknown bare contig" "region 'chrZ': no contig of that name" -r chrZ "$F"
    err "malformed region" "region 'chr1:x-5': malformed" -r chr1:x-5 "$F"
    err "region start 0" "region 'chr1:0-5': positions are 1-based" -r chr1:0-5 "$F"
    err "region end before start" "region 'chr1:9-5': end is before start" -r chr1:9-5 "$F"
    err "good then bad region" "no contig 'chrZ'" -r chr1:1-10 -r chrZ:1-10 "$F"
    printf 'chr1\t10\t500\n' > "$T/beyond.bed"
    err "BED beyond the end" "beyond\.bed:1: BED interval chr1:10-500 goes beyond the end of 'chr1' \(length 150\)" -R "$T/beyond.bed" "$F"
    printf 'chr1\tten\t20\n' > "$T/malformed.bed"
    err "malformed BED" "malformed\.bed:1: malformed BED line" -R "$T/malformed.bed" "$F"
    printf 'chr1\t20\t20\n' > "$T/emptyiv.bed"
    err "empty BED interval" "emptyiv\.bed:1: empty BED interval" -R "$T/emptyiv.bed" "$F"
    err "missing regions file" "nothere\.bed: cannot open the regions file" -R "$T/nothere.bed" "$F"
    err "--lengths with -r" "--lengths .* does not combine with -r or -R" --lengths -r chr1 "$F"
    err "bad -w" "option -w/--width: 'x' is not a valid integer" -w x "$F"
    err "no genome" "no genome files given"
fi

finish
