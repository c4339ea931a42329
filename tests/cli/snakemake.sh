# The Snakemake workflow (pipelines/snakemake) run for real on tiny simulated
# data with Debian's snakemake, --cores 2, under a timeout; every output is
# checked. Skipped (77) without snakemake. Until 'mambadna finetune' exists
# the steps up to pretraining are run and checked, then the test reports
# itself skipped.
. "$MD_TESTS/clilib.sh"

command -v snakemake >/dev/null || { echo "skipped: snakemake is not installed (apt-get install snakemake)"; exit 77; }
WF="$MD_TESTS/../pipelines/snakemake"
W="$T/work"
mkdir -p "$W"
smk() {   # snakemake with the tiny config, in the work folder
    timeout 300 snakemake -s "$WF/Snakefile" --configfile "$WF/config-test.yaml" --directory "$W" \
        --config mambadna="$MD" --cores 2 "$@"
}
R="$W/results-test"

# The device switch: a dry run with -x cuda asks for a GPU on the GPU steps only.
expect_ok "dry run for cuda" smk -n --config mambadna="$MD" device=cuda
[ "$(cat "$T/out" "$T/err" | grep -c 'gpu=1')" -eq 3 ] && ok || bad "dry run: $(cat "$T/out" "$T/err" | grep -c 'gpu=1') jobs ask for a GPU, want 3"

have_finetune=1
$MD finetune -h >/dev/null 2>&1 || have_finetune=0
if [ $have_finetune = 1 ]; then
    expect_ok "workflow" smk
else
    expect_ok "workflow up to pretrain" smk results-test/pretrain/model.safetensors results-test/reads/reads.fq
fi
[ $fail -eq 0 ] || { tail -n 30 "$T/err"; cat "$R"/logs/*.log 2>/dev/null | tail -n 20; }

# simulated inputs
for s in human chimpanzee bonobo gorilla orangutan; do
    [ "$(grep -c '^>' "$R/genomes/$s.fa")" -eq 2 ] && ok || bad "genome $s"
done
grep -q '"command": ".*simulate genomes' "$R/genomes/summary.json" && ok || bad "summary.json provenance"
[ "$(awk 'NR % 4 == 1' "$R/reads/reads.fq" | grep -c '^@[a-z]*|chr')" -eq 60 ] && ok || bad "60 named reads in FASTQ"

# pretraining: checkpoint, state, metrics and plot, run with the rule's threads and device
for f in model.safetensors model.state.safetensors; do
    grep -aq '"mambadna_command":"[^"]* pretrain .*-t 2 -x cpu --seed 1' "$R/pretrain/$f" && ok || bad "$f provenance"
done
take_provenance "$R/pretrain/metrics.tsv"
[ "$(cut -f 1 "$R/pretrain/metrics.tsv" | tr '\n' ' ')" = "step 2 4 6 " ] && ok || bad "metrics rows: $(cut -f 1 "$R/pretrain/metrics.tsv")"
grep -q '</svg>' "$R/pretrain/metrics.svg" && ok || bad "metrics plot"

# every rule that ran left a log with mambadna's closing lines and a benchmark
steps="simulate_genomes simulate_reads pretrain"
[ $have_finetune = 1 ] && steps="$steps finetune classify"
for r in $steps; do
    grep -q '^\[M::main\] Real time' "$R/logs/$r.log" && ok || bad "log of $r: $(tail -n 2 "$R/logs/$r.log")"
    [ "$(head -n 1 "$R/benchmarks/$r.tsv" | cut -f 1,3)" = "$(printf 's\tmax_rss')" ] && [ "$(wc -l <"$R/benchmarks/$r.tsv")" -eq 2 ] \
        && ok || bad "benchmark of $r"
done

if [ $have_finetune = 0 ]; then
    finish >/dev/null || { echo "$pass passed, $fail failed"; exit 1; }
    echo "$pass passed; skipped: 'mambadna finetune' does not exist yet, so finetune, classify and report were not run"
    exit 77
fi

# fine-tuning: the classifier (run with the rule's threads and device) and its reports
grep -aq '"mambadna_command":"[^"]* finetune -i [^"]* -t 2 -x cpu --seed 1' "$R/finetune/classifier.safetensors" \
    && ok || bad "classifier provenance"
[ "$(grep -v '^#' "$R/finetune/classifier.epochs.tsv" | cut -f 1 | tr '\n' ' ')" = "epoch 1 " ] && ok \
    || bad "epochs table: $(cat "$R/finetune/classifier.epochs.tsv")"
for f in val test; do
    # 4 windows of each of 5 species (--val-windows/--test-windows 4 in config-test.yaml)
    [ "$(awk -F '\t' '$1 == "all" { print $(NF - 1) }' "$R/finetune/classifier.$f-confusion.tsv")" = 20 ] \
        && grep -q '</svg>' "$R/finetune/classifier.$f-confusion.svg" && ok || bad "$f confusion matrix"
done
for f in epochs.tsv val-confusion.tsv test-confusion.tsv; do
    grep -q '^# command: .* finetune ' "$R/finetune/classifier.$f" && ok || bad "classifier.$f lacks the command line"
done

# classification: a call per read, with provenance; the summary counts every read
grep -q '^# command: .* classify ' "$R/classify/reads.tsv" && ok || bad "calls lack the command line"
[ "$(grep -v '^#' "$R/classify/reads.tsv" | awk -F '\t' '$2 ~ /^[0-9]+$/' | wc -l)" -eq 60 ] && ok || bad "60 calls"
[ "$(grep -v '^#' "$R/classify/summary.tsv" | awk -F '\t' '$2 ~ /^[0-9]+$/ { n += $2 } END { print n }')" = 60 ] \
    && ok || bad "summary: $(cat "$R/classify/summary.tsv")"
awk -F '\t' '$1 == "all" && $2 == 60 { found = 1 } END { exit !found }' "$R/report/report.tsv" && ok || bad "report: $(cat "$R/report/report.tsv")"
[ "$(grep -c '^\(human\|chimpanzee\|bonobo\|gorilla\|orangutan\)	' "$R/report/report.tsv")" -eq 5 ] && ok || bad "report rows"
grep -q '^# calls mambadna ' "$R/report/report.tsv" && ok || bad "report keeps the calls' provenance"

# a second run finds nothing to do
expect_ok "rerun" smk
grep -q 'Nothing to be done' "$T/err" "$T/out" && ok || bad "a second run redid work"

finish
