#!/usr/bin/env bash
# Regenerates the seed corpora in tests/fuzz/corpus from the project's own
# outputs (mambadna simulate / view / pretrain, bgzip) and small hand-written
# files. Usage: tests/fuzz/make_corpus.sh path/to/mambadna
set -euo pipefail
MD=${1:?usage: make_corpus.sh MAMBADNA}
cd "$(dirname "$0")"
C=corpus
rm -rf "$C"
mkdir -p "$C"/{reads,genome,twobit,bed,safetensors,checkpoint,config,species}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

# --- genomes: a simulated 2bit, and FASTA views of it ---
$MD simulate genomes -q -o "$W/sim" -f 2bit --chroms 2 --length 1000 --seed 5 >/dev/null
tb=$(ls "$W"/sim/*.2bit | head -n 1)
cp "$tb" "$C/twobit/sim.2bit"
cp "$tb" "$C/genome/sim.2bit"
printf '>a\nACGTNNNNacgtnnRYKM\n>b desc\nAC\nGT\nA\n' > "$C/genome/hand.fa"
printf '>a\r\nACGTAC\r\nGT\r\n' > "$C/genome/crlf.fa"
$MD view -q "$tb" > "$W/g.fa"
head -c 1500 "$W/g.fa" > "$W/small.fa"
printf '\n' >> "$W/small.fa"
gzip -c "$W/small.fa" > "$C/genome/small.fa.gz"
# a FASTA with the .fai mambadna writes beside it, in the target's layout
cp "$W/small.fa" "$W/x.fa" && $MD view -q --lengths "$W/x.fa" >/dev/null
{ cat "$W/x.fa"; printf '\n==fai==\n'; cat "$W/x.fa.fai"; } > "$C/genome/with_fai"
bgzip -c "$W/small.fa" > "$W/y.fa.gz" && $MD view -q --lengths "$W/y.fa.gz" >/dev/null
{ cat "$W/y.fa.gz"; printf '\n==fai==\n'; cat "$W/y.fa.gz.fai"; printf '\n==gzi==\n'; cat "$W/y.fa.gz.gzi"; } \
    > "$C/genome/bgzip_with_index"

# --- reads: simulated FASTQ and FASTA, and hand-written edge cases ---
$MD simulate reads -q -n 6 -l 60,10 -e 0.02 --seed 3 -o "$W/r.fq" "$tb" >/dev/null
cp "$W/r.fq" "$C/reads/sim.fq"
$MD simulate reads -q -n 4 -l 40,5 --seed 4 -o "$W/r.fa" "$tb" >/dev/null
cp "$W/r.fa" "$C/reads/sim.fa"
printf '@r1 c\nACGT\n+\nIIII\n@r2\nAC\nGT\n+r2\nII\nII\n' > "$C/reads/wrapped.fq"
printf '>r1\nACGT\n\n>r2 x\tdesc\r\nAC GT\n>empty\n' > "$C/reads/mixed.fa"

# --- BED: Basenji and Borzoi layouts ---
printf 'chr1\t0\t100\ttrain\nchr1\t100\t200\tvalid\n#c\nchr2\t5\t50\ttest\n' > "$C/bed/basenji.bed"
printf 'track name=x\nchr1 10 20 fold3\nchr1 20 30 fold4\nchr2 0 9 fold0\n' > "$C/bed/borzoi.bed"
# the first byte of a bed input picks the split column (fuzz_bed.c)
for f in "$C"/bed/*.bed; do { printf '\001'; cat "$f"; } > "$f.col4"; { printf '\000'; cat "$f"; } > "$f.nocol"; rm "$f"; done

# --- checkpoints: tiny Mamba and Transformer++ models, and their training state ---
awk 'BEGIN { srand(7); split("A C G T", b, " "); print ">c";
    for (i = 1; i <= 20; i++) { s = ""; for (j = 0; j < 60; j++) s = s b[int(rand() * 4) + 1]; print s } }' > "$W/t.fa"
$MD pretrain -q -m mamba --d-model 2 --n-layer 1 -L 16 -B 1 --steps 1 -t 1 -o "$W/m.safetensors" "$W/t.fa" >/dev/null
$MD pretrain -q -m transformer --d-model 2 --n-layer 1 -L 16 -B 1 --steps 1 -t 1 -o "$W/t.safetensors" "$W/t.fa" >/dev/null
for f in m t; do
    cp "$W/$f.safetensors" "$C/checkpoint/$f.safetensors"
    cp "$W/$f.safetensors" "$C/safetensors/$f.safetensors"
done
cp "$W/m.state.safetensors" "$C/safetensors/state.safetensors"

# --- config JSON: what the checkpoints hold ---
python3 - "$W/m.safetensors" "$W/t.safetensors" "$C/config" <<'PY'
import json, struct, sys
for i, p in enumerate(sys.argv[1:3]):
    b = open(p, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    cfg = json.loads(b[8:8 + n])['__metadata__']['config']
    open(f'{sys.argv[3]}/config{i}.json', 'w').write(cfg)
PY
printf '{"d_model":64,"n_layer":8}' > "$C/config/minimal.json"
# --- species TSVs (finetune --species-tsv) ---
printf 'human\tg/human.2bit\nchimpanzee\tg/chimp.fa.gz\n# comment\n\ngorilla\tg/gorilla.2bit\nhuman\tg/human2.fa\n' \
    > "$C/species/apes.tsv"
printf 'a\tx\r\nb\t\n\tc\nd e\tf\n' > "$C/species/bad.tsv"
printf 'only-a-label\n' > "$C/species/nopath.tsv"
printf '\tg/x.fa\n' > "$C/species/emptylabel.tsv"

ls -R "$C" | head -40

