#!/usr/bin/env bash
# The main job on the embedded default data: install, build, simulate five
# great-ape-like genomes, pretrain a small Mamba on one of them, then
# fine-tune it to tell the species apart and classify simulated reads.
#
#   bash tools/demo.sh [OUTDIR]        (default: demo-out)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo-out}
jobs=$(nproc 2>/dev/null || echo 2)

bash tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
md=build/mambadna
step() { echo; echo "[M::demo] $*"; }
mkdir -p "$out"

step "1. simulate five species (human, chimpanzee, bonobo, gorilla, orangutan)"
"$md" simulate genomes --seed 1 -f 2bit -o "$out/genomes"
"$md" view --lengths "$out/genomes/human.2bit"

step "2. a few training windows, as the trainer samples them"
"$md" sample -L 64 -n 3 --seed 1 "$out/genomes/human.2bit"

step "3. simulated reads from the five species, their true label in each name"
"$md" simulate reads -n 1000 -l 1000 -e 0.01 --seed 2 -o "$out/reads.fa" "$out"/genomes/{human,chimpanzee,bonobo,gorilla,orangutan}.2bit
grep -m 3 '^>' "$out/reads.fa"

step "4. pretrain a small Mamba (next-base prediction) on the human genome"
"$md" pretrain -m mamba --preset 250K -L 1024 -B 8 --steps 200 --seed 1 \
    --val-fraction 0.05 --metrics "$out/pretrain.tsv" -o "$out/pretrain.safetensors" \
    "$out/genomes/human.2bit"
"$md" eval -i "$out/pretrain.safetensors" --val-fraction 0.05 "$out/genomes/human.2bit"

step "5. fine-tune it to tell the five species apart (chr2 held out for validation, chr3 for the test)"
"$md" finetune -i "$out/pretrain.safetensors" -o "$out/species.safetensors" --seed 1 \
    -L 1024 -B 16 --epochs 2 --steps-per-epoch 50 --val-contigs chr2 --test-contigs chr3 \
    human="$out/genomes/human.2bit" chimpanzee="$out/genomes/chimpanzee.2bit" \
    bonobo="$out/genomes/bonobo.2bit" gorilla="$out/genomes/gorilla.2bit" \
    orangutan="$out/genomes/orangutan.2bit"
cat "$out/species.test-confusion.tsv"

step "6. classify the simulated reads (their true species is the first field of each name)"
"$md" classify -i "$out/species.safetensors" --summary "$out/summary.tsv" \
    -o "$out/classified.tsv" "$out/reads.fa"
head -n 5 "$out/classified.tsv"
cat "$out/summary.tsv"
echo; echo "[M::demo] done; outputs in $out/"
