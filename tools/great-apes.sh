#!/usr/bin/env bash
# The Mamba paper's great-ape species classification (its Table 13), at small
# scale on the simulated great-ape genomes: pretrain each model family on the
# simulated human genome, fine-tune a 5-species classifier at several window
# lengths L (chromosome 2 of every species held out for validation, 3 for the
# test), and tabulate the test accuracy by family and L, as a TSV, a Markdown
# table and an SVG plot.
#
#   tools/great-apes.sh [-x DEVICE] [-t THREADS] [-o OUTDIR] [-p cpu|gpu] [-b MAMBADNA]
#
# Profiles (-p): cpu (default) is sized to finish in about 15 minutes on two
# cores: Mamba only (FAMILIES="mamba transformer" adds Transformer++, with
# batches of 4: its attention is quadratic in L), L = 2^10..2^14, lineage
# subfamily copies far denser than simulate's default (1000 per Mbp per
# branch rather than 64: each branch adds a third to the genome, unlike any
# real one, but a run this short needs that many copies to learn from), 400
# fine-tuning steps of 8 windows at lr 1e-3 with mean pooling (a copy
# anywhere in the window reaches the head directly; last-position pooling
# needs the state to carry its mark to the window's end, a longer thing to
# learn). gpu is the paper's setting (Mamba 1.4M, Transformer++ 1.3M, Hyena
# 1.6M presets, batch 64, epochs of 1024 steps, last-position pooling, L up
# to 2^20) for a GPU (-x cuda). Any setting below can be overridden from the
# environment, e.g. LENGTHS="10 12" FAMILIES=mamba POOLING=mean FT_LR=1e-3.
set -euo pipefail
cd "$(dirname "$0")/.."
device=cpu threads=0 out=great-apes-out profile=cpu md=build/mambadna
while getopts "x:t:o:p:b:h" opt; do
    case $opt in
    x) device=$OPTARG ;;
    t) threads=$OPTARG ;;
    o) out=$OPTARG ;;
    p) profile=$OPTARG ;;
    b) md=$OPTARG ;;
    *) sed -n '2,23p' "$0"; exit 2 ;;
    esac
done
case $profile in
cpu)
    : "${FAMILIES:=mamba}" "${LENGTHS:=10 12 14}"
    : "${CHROMS:=3}" "${CHROM_LEN:=1M}" "${DIV_SCALE:=3}" "${SUBFAMILY_REPEATS:=1000}"
    : "${MODEL_mamba:=--d-model 32 --n-layer 2}" "${MODEL_transformer:=--d-model 32 --n-layer 2}"
    : "${MODEL_hyena:=--d-model 32 --n-layer 2}"
    : "${PRE_L:=1024}" "${PRE_B:=8}" "${PRE_STEPS:=300}" "${PRE_LR:=4e-3}"
    : "${LENGTHS_transformer:=10 12 14}" "${BATCH_transformer:=4}"
    : "${BATCH:=8}" "${EPOCHS:=2}" "${STEPS_PER_EPOCH:=200}" "${VAL_WINDOWS:=8}" "${TEST_WINDOWS:=16}"
    : "${POOLING:=mean}" "${FT_LR:=1e-3}" "${TOKENS_PER_MICRO:=65536}" ;;
gpu)
    : "${FAMILIES:=mamba transformer hyena}" "${LENGTHS:=10 12 14 16 18 20}"
    : "${CHROMS:=5}" "${CHROM_LEN:=4M}" "${DIV_SCALE:=1}" "${SUBFAMILY_REPEATS:=64}"
    : "${MODEL_mamba:=--preset 1.4M}" "${MODEL_transformer:=--preset 1.3M}" "${MODEL_hyena:=--preset 1.6M}"
    : "${PRE_L:=1024}" "${PRE_B:=64}" "${PRE_STEPS:=10000}" "${PRE_LR:=8e-3}"
    : "${BATCH:=64}" "${EPOCHS:=10}" "${STEPS_PER_EPOCH:=1024}" "${VAL_WINDOWS:=64}" "${TEST_WINDOWS:=256}"
    : "${POOLING:=last}" "${FT_LR:=}" "${TOKENS_PER_MICRO:=4194304}" ;;
*) echo "[E::great-apes] profile -p $profile is not cpu or gpu" >&2; exit 1 ;;
esac
[ -x "$md" ] || { echo "[E::great-apes] no mambadna binary at $md (build first, or -b PATH)" >&2; exit 1; }
mkdir -p "$out"
log() { echo "[M::great-apes] $*" >&2; }
run() { log "$*"; "$@"; }
common=(-x "$device" -t "$threads" --seed 1)

log "profile $profile: families $FAMILIES, L = 2^{${LENGTHS// /,}}, device $device"
g=$out/genomes
if [ ! -s "$g/orangutan.2bit" ]; then
    run "$md" simulate genomes -q --seed 1 -f 2bit --chroms "$CHROMS" --length "$CHROM_LEN" --div-scale "$DIV_SCALE" \
        --subfamily-repeats "$SUBFAMILY_REPEATS" -o "$g"
fi
species=(human="$g/human.2bit" chimpanzee="$g/chimpanzee.2bit" bonobo="$g/bonobo.2bit" gorilla="$g/gorilla.2bit"
         orangutan="$g/orangutan.2bit")

table=$out/table.tsv
printf 'family\tlog2_L\tL\ttest_accuracy\tval_accuracy\ttest_windows\tseconds\n' > "$table"
for fam in $FAMILIES; do
    model_var=MODEL_$fam
    pre=$out/$fam.pretrain.safetensors
    if [ ! -s "$pre" ]; then
        # shellcheck disable=SC2086
        run "$md" pretrain "${common[@]}" -m "$fam" ${!model_var} -L "$PRE_L" -B "$PRE_B" --steps "$PRE_STEPS" \
            --lr "$PRE_LR" --log-every 50 --metrics "$out/$fam.pretrain.tsv" -o "$pre" "$g/human.2bit"
    fi
    lengths_var=LENGTHS_$fam batch_var=BATCH_$fam
    batch=${!batch_var:-$BATCH}
    for k in ${!lengths_var:-$LENGTHS}; do
        L=$((1 << k))
        micro=$((TOKENS_PER_MICRO / L)); [ "$micro" -ge 1 ] || micro=1; [ "$micro" -le "$batch" ] || micro=$batch
        extra=(--pooling "$POOLING")
        [ -n "$FT_LR" ] && extra+=(--lr "$FT_LR")
        [ "$L" -gt 16384 ] && extra+=(--recompute)
        cls=$out/$fam.L$k.safetensors
        t0=$(date +%s)
        run "$md" finetune "${common[@]}" -i "$pre" -L "$L" -B "$batch" --micro-batch "$micro" --epochs "$EPOCHS" \
            --steps-per-epoch "$STEPS_PER_EPOCH" --val-contigs chr2 --test-contigs chr3 --val-windows "$VAL_WINDOWS" \
            --test-windows "$TEST_WINDOWS" --log-every 1 "${extra[@]}" -o "$cls" "${species[@]}" 2> "$out/$fam.L$k.log"
        secs=$(( $(date +%s) - t0 ))
        test_acc=$(awk -F "\t" '$1 == "all" { print $NF }' "$out/$fam.L$k.test-confusion.tsv")
        test_n=$(awk -F "\t" '$1 == "all" { print $(NF - 1) }' "$out/$fam.L$k.test-confusion.tsv")
        val_acc=$(awk -F "\t" '$1 == "all" { print $NF }' "$out/$fam.L$k.val-confusion.tsv")
        printf '%s\t%d\t%d\t%s\t%s\t%s\t%d\n' "$fam" "$k" "$L" "$test_acc" "$val_acc" "$test_n" "$secs" >> "$table"
        log "$fam L = 2^$k: test accuracy $test_acc on $test_n windows ($secs s)"
    done
done

# The Markdown table (accuracy in %, like the paper's Table 13).
md_table=$out/table.md
{
    printf '| model |'; for k in $LENGTHS; do printf ' 2^%s |' "$k"; done; printf '\n|---|'
    for _ in $LENGTHS; do printf -- '---|'; done; printf '\n'
    for fam in $FAMILIES; do
        printf '| %s |' "$fam"
        for k in $LENGTHS; do
            awk -F '\t' -v f="$fam" -v k="$k" '$1 == f && $2 == k { printf(" %.2f", 100 * $4); x = 1 }
                END { printf(x ? " |" : " - |") }' "$table"
        done
        printf '\n'
    done
} > "$md_table"

# The SVG: test accuracy against log2 L, one line per family, chance dotted.
awk -F '\t' -v lengths="$LENGTHS" -v title="great-ape classification (test accuracy, simulated genomes, profile $profile)" '
NR == 1 { next }
{ fam[$1] = 1; acc[$1, $2] = 100 * $4; if (!($1 in order)) { order[$1] = ++nf; name[nf] = $1 } }
END {
    n = split(lengths, ks, " "); W = 640; H = 400; l = 70; r = 160; t = 50; b = 60
    x0 = ks[1]; x1 = ks[n]; if (x1 == x0) x1 = x0 + 1
    printf("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\">\n", W, H)
    printf("<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%d\" y=\"28\" font-size=\"14\">%s</text>\n", l, title)
    for (y = 0; y <= 100; y += 20) {
        py = t + (H - t - b) * (1 - y / 100)
        printf("<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", l, py, W - r, py)
        printf("<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%d%%</text>\n", l - 6, py + 4, y)
    }
    for (i = 1; i <= n; i++) {
        px = l + (W - l - r) * (ks[i] - x0) / (x1 - x0)
        printf("<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">2^%s</text>\n", px, H - b + 18, ks[i])
    }
    printf("<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">window length L</text>\n", (l + W - r) / 2, H - 15)
    py = t + (H - t - b) * 0.8
    printf("<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"3,3\"/>\n", l, py, W - r, py)
    printf("<text x=\"%d\" y=\"%.1f\" font-size=\"11\" fill=\"#888\">chance 20%%</text>\n", W - r + 6, py + 4)
    split("#1f77b4 #d62728 #2ca02c #9467bd", col, " ")
    for (f = 1; f <= nf; f++) {
        pts = ""
        for (i = 1; i <= n; i++) if ((name[f], ks[i]) in acc) {
            px = l + (W - l - r) * (ks[i] - x0) / (x1 - x0); py = t + (H - t - b) * (1 - acc[name[f], ks[i]] / 100)
            pts = pts sprintf("%.1f,%.1f ", px, py)
            printf("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", px, py, col[f])
        }
        printf("<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>\n", pts, col[f])
        printf("<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"%s\">%s</text>\n", W - r + 6, t + 16 * f, col[f], name[f])
    }
    print "</svg>"
}' "$table" > "$out/table.svg"
log "wrote $table, $md_table and $out/table.svg"
cat "$md_table"
