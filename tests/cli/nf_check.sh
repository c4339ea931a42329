# tools/nf-check.py on pipelines/nextflow: the modules' structure, main.nf
# against meta.yml, and their script: and stub: blocks run through bash on
# tiny data. Then copies of the tree, each broken once, must fail with the
# message that names the breakage. Skipped (77) when the real runs of
# finetune/classify could not happen because those commands do not exist yet
# (everything else having passed).
. "$MD_TESTS/clilib.sh"

REPO="$MD_TESTS/.."
CHECK="$REPO/tools/nf-check.py"
python3 -c 'import yaml' 2>/dev/null || { echo "skipped: python3-yaml is not installed"; exit 77; }
# the modules call 'mambadna': give the checker a binary of that name
mkdir -p "$T/bin"
ln -s "$MD" "$T/bin/mambadna"

python3 "$CHECK" --mambadna "$T/bin/mambadna" "$REPO/pipelines/nextflow" >"$T/out" 2>"$T/err"
rc=$?
cat "$T/err"
[ $rc -eq 0 ] || [ $rc -eq 77 ] && ok || bad "nf-check on the real tree: exit $rc"
whole_rc=$rc

# broken_copy NAME: a fresh copy of the pipeline (and the Dockerfiles it names) in $T/NAME
broken_copy() {
    rm -rf "$T/$1"
    mkdir -p "$T/$1/pipelines"
    cp -r "$REPO/pipelines/nextflow" "$T/$1/pipelines/"
    cp "$REPO/Dockerfile" "$REPO/Dockerfile.cuda" "$T/$1/"
    B="$T/$1/pipelines/nextflow"
    P="$B/modules/local/mambadna/pretrain"
}
# expect_broken DESC PATTERN [--no-script]: nf-check on $B must fail (exit 1) naming PATTERN
expect_broken() {
    python3 "$CHECK" --mambadna "$T/bin/mambadna" --modules pretrain ${3:-} "$B" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ $rc -ne 1 ]; then bad "$1: exit $rc, want 1"; return; fi
    grep -Eq -- "$2" "$T/err" && ok || bad "$1: no /$2/ in: $(grep FAIL "$T/err")"
}

broken_copy emit
sed -i 's/emit: model$/emit: weights/' "$P/main.nf"
expect_broken "emit renamed in main.nf" "emit names differ: main.nf \['weights'" --no-script

broken_copy stub_output
sed -i '/touch \${prefix}.metrics.svg/d' "$P/main.nf"
expect_broken "stub output dropped" "stub: output 'plot' \(stub_meta.metrics.svg\) matched no file" --no-script

broken_copy script_output
sed -i 's/--metrics \${prefix}.metrics.tsv/--metrics metrics.tsv/' "$P/main.nf"
expect_broken "script output under another name" "script: output 'metrics' \(human.metrics.tsv\) matched no file"

broken_copy def_prefix
sed -i 's/^    prefix = task.ext.prefix/    def prefix = task.ext.prefix/' "$P/main.nf"
expect_broken "prefix local to the script" "unknown variable 'prefix'" --no-script

broken_copy threads
sed -i 's/-t \$task.cpus/-t 1/' "$P/main.nf"
expect_broken "threads not from task.cpus" "does not pass -t \\\$task.cpus" --no-script

broken_copy meta_input
sed -i 's/^    - genome:$/    - fasta:/' "$P/meta.yml"
expect_broken "meta.yml input renamed" "inputs differ" --no-script

broken_copy versions
sed -i '0,/mambadna: \\\$(mambadna --version/s//mambadna: \\$(echo 9.9.9 || mambadna --version/' "$P/main.nf"
expect_broken "versions.yml not from --version" "versions.yml says mambadna '9.9.9'"

broken_copy no_args
sed -i 's/^        \$args \\\\$//' "$P/main.nf"
expect_broken "task.ext.args dropped from the command" "task.ext.args .* not in the command"

finish >/dev/null || { echo "$pass passed, $fail failed"; exit 1; }
echo "$pass passed"
[ $whole_rc -eq 77 ] && { echo "skipped: part of the real runs (see above)"; exit 77; }
exit 0
