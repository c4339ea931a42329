# mambadna as a step of a pipeline: a stable --version, logs on stderr only,
# exit codes, provenance in every output format that has room for it (the
# recorded command line pastes back into bash as the very same arguments),
# no complete-looking output after a kill, -t as the number of threads, and
# CUDA_VISIBLE_DEVICES obeyed.
. "$MD_TESTS/clilib.sh"

expect_ok "--version" $MD --version
grep -Eqx 'mambadna [0-9]+\.[0-9]+\.[0-9]+' "$T/out" && [ ! -s "$T/err" ] && ok || bad "--version: '$(cat "$T/out" "$T/err")'"
VERSION=$(cat "$T/out")

expect_ok "genomes" $MD simulate genomes -o "$T/g" -l 20k --chroms 2 -t 1
[ ! -s "$T/out" ] && grep -q '^\[M::' "$T/err" && ok || bad "simulate genomes wrote to stdout: $(head -c 200 "$T/out")"
grep -q '"mambadna": {' "$T/g/summary.json" && grep -q "\"command\": \"$MD simulate genomes -o $T/g -l 20k" "$T/g/summary.json" \
    && ok || bad "summary.json lacks the provenance: $(head -n 5 "$T/g/summary.json")"

# stdout carries only the data; every log line is on stderr
expect_ok "sample to stdout" $MD sample -L 50 -n 20 -o - "$T/g/human.fa"
[ "$(grep -c '^>' "$T/out")" -eq 20 ] && ! grep -qv '^[>ACGTNacgtn]' "$T/out" && ok || bad "stdout holds more than FASTA"
grep -q '^\[M::cmd_sample\]' "$T/err" && ! grep -qv '^\[[MWE]::' "$T/err" && ok || bad "stderr holds more than log lines"

# BED intervals from stdin: the same tiles as from the file
printf 'chr1\t0\t1000\ttrain\nchr2\t500\t900\ttrain\n' >"$T/iv.bed"
expect_ok "BED file" $MD sample -L 100 -n 0 --bed "$T/iv.bed" -f bed -o "$T/tiles_file.bed" "$T/g/human.fa"
expect_ok "BED on stdin" $MD sample -L 100 -n 0 --bed - -f bed -o "$T/tiles_stdin.bed" "$T/g/human.fa" <"$T/iv.bed"
[ "$(grep -vc '^#' "$T/tiles_stdin.bed")" -gt 5 ] && diff <(grep -v '^#' "$T/tiles_file.bed") <(grep -v '^#' "$T/tiles_stdin.bed") >/dev/null \
    && ok || bad "BED from stdin gave other tiles"

# The command line is recorded shell-quoted: an output name with a space, a
# quote and a newline reads back in bash as the very same arguments.
odd="$T/a b'c
d.bed"
expect_ok "odd output name" $MD sample -L 50 -n 3 -f bed -o "$odd" "$T/g/human.fa"
[ "$(grep -c '^#' "$odd")" -eq 2 ] && [ "$(grep -vc '^#' "$odd")" -eq 3 ] && ok || bad "BED provenance: $(head -n 3 "$odd")"
cmd=$(sed -n 's/^# command: //p' "$odd")
eval "got=($cmd)"
want=("$MD" sample -L 50 -n 3 -f bed -o "$odd" "$T/g/human.fa")
[ "${#got[@]}" -eq "${#want[@]}" ] && [ "$(printf '%s\0' "${got[@]}" | od -c)" = "$(printf '%s\0' "${want[@]}" | od -c)" ] \
    && ok || bad "recorded command does not read back: $cmd"
take_provenance "$odd"

# checkpoints, the metrics TSV and its SVG, the exported config
expect_ok "pretrain" $MD pretrain --d-model 16 --n-layer 1 -L 64 -B 2 --steps 4 --log-every 2 -t 1 \
    --metrics "$T/m.tsv" -o "$T/m.safetensors" "$T/g/human.fa"
for f in m.safetensors m.state.safetensors; do
    grep -aq "\"mambadna\":\"${VERSION#mambadna }\"" "$T/$f" && grep -aq "\"mambadna_command\":\"$MD pretrain --d-model 16" "$T/$f" \
        && ok || bad "$f lacks the provenance metadata"
done
take_provenance "$T/m.tsv"
grep -q "<metadata>$VERSION; command: $MD pretrain --d-model 16 .*--metrics $T/m.tsv" "$T/m.svg" && ok || bad "SVG lacks the provenance"
expect_ok "export" $MD export -i "$T/m.safetensors" -o "$T/hf"
grep -q '"command": "'"$MD"' export' "$T/hf/config.json" && grep -aq '"mambadna_command":"'"$MD"' export' "$T/hf/model.safetensors" \
    && ok || bad "exported files lack the provenance"

# exit codes: 0 on success (above), 1 on a user error, never a signal
expect_error "unknown option" "unrecognized option" $MD sample --no-such-option "$T/g/human.fa"
expect_error "missing genome" "nowhere.fa" $MD sample -o "$T/x.fa" "$T/nowhere.fa"
no_file "missing genome" "$T/x.fa"

# A killed run leaves no complete-looking output: only a temporary beside it.
$MD sample -L 1000 -n 100000000 -t 1 -o "$T/killed.fa" "$T/g/human.fa" 2>/dev/null &
pid=$!
for _ in $(seq 100); do compgen -G "$T/killed.fa.tmp*" >/dev/null && break; sleep 0.05; done
sleep 0.2
kill -9 $pid; wait $pid 2>/dev/null
[ ! -e "$T/killed.fa" ] && compgen -G "$T/killed.fa.tmp*" >/dev/null && ok || bad "a killed run left $T/killed.fa"

# -t N: at most N threads once main() runs. Threads are counted through
# /proc from the first log line on (the BLAS library's start-up pool exists
# for an instant before main stops it).
max_threads() {   # CMD...: runs it, prints the most threads seen at once
    "$@" 2>"$T/thr_err" >/dev/null &
    local pid=$! most=0 n st
    while kill -0 $pid 2>/dev/null; do
        # an exited child stays a zombie until bash reaps it, which a loop of
        # builtins alone may never let it do: stop at the zombie state
        st=; { read -r st </proc/$pid/stat; } 2>/dev/null; st=${st##*) }
        [ "${st%% *}" = Z ] && break
        [ -s "$T/thr_err" ] || continue
        n=(/proc/$pid/task/*)
        [ -e "${n[0]}" ] && [ ${#n[@]} -gt $most ] && most=${#n[@]}
    done
    wait $pid || echo "failed"
    echo $most
}
n=$(max_threads $MD pretrain --d-model 32 --n-layer 2 -L 128 -B 2 --steps 8 -t 1 -o "$T/t1.safetensors" "$T/g/human.fa")
[ "$n" = 1 ] && ok || bad "pretrain -t 1 ran $n threads"
n=$(max_threads $MD sample -L 1000 -n 100000 -t 1 -o /dev/null "$T/g/human.fa")
[ "$n" = 1 ] && ok || bad "sample -t 1 ran $n threads"
n=$(max_threads $MD sample -L 1000 -n 100000 -t 2 -o /dev/null "$T/g/human.fa")
[ "$n" = 2 ] && ok || bad "sample -t 2 ran $n threads (the count must be seen to reach 2, and not pass it)"

# CUDA_VISIBLE_DEVICES is obeyed: with no GPU visible, -x auto runs on the
# CPU and -x cuda is one clear error.
CUDA_VISIBLE_DEVICES= expect_ok "auto with no visible GPU" $MD eval -i "$T/m.safetensors" -x auto -L 64 --windows 2 "$T/g/human.fa"
grep -q 'CPU' "$T/err" && ok || bad "-x auto did not say it runs on the CPU: $(grep device "$T/err")"
CUDA_VISIBLE_DEVICES= expect_error "cuda with no visible GPU" "no GPU is visible|built without CUDA" \
    $MD eval -i "$T/m.safetensors" -x cuda -L 64 --windows 2 "$T/g/human.fa"

finish
