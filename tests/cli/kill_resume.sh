# SIGKILL at random moments: pretrain on a tiny model with a checkpoint
# every 2 steps is killed again and again (during steps, during saves,
# during start-up) and resumed each time. After every kill the checkpoint
# pair must load (resume without an error), and at most --save-every steps
# may be lost; at the end the weights, the optimizer state and every
# metrics row but the timing must equal an uninterrupted run's exactly.
#   MD_KILL_ROUNDS  kills (20; on a shorter run in a sanitizer build)
#   MD_KILL_SEED    seeds the kill times (printed, to replay a failure)
. "$MD_TESTS/clilib.sh"

awk 'BEGIN { srand(11); split("A C G T", b, " ");
    for (c = 1; c <= 2; c++) { printf(">ctg%d\n", c); n = c == 1 ? 30000 : 12000; s = "";
        for (i = 1; i <= n; i++) { s = s b[int(rand() * 4) + 1]; if (i % 60 == 0) { print s; s = "" } }
        if (s != "") print s } }' > "$T/g.fa"

if ldd "$MD" | grep -q libasan; then rounds=${MD_KILL_ROUNDS:-20}; steps=200
else rounds=${MD_KILL_ROUNDS:-20}; steps=600; fi
SAVE=2
ARGS="--d-model 16 --n-layer 2 -L 96 -B 3 --steps $steps --lr 3e-3 --seed 5 -t 2 --log-every 1 --save-every $SAVE"

expect_ok "uninterrupted run" $MD pretrain $ARGS --metrics "$T/ref.tsv" -o "$T/ref.safetensors" "$T/g.fa"
RANDOM=${MD_KILL_SEED:-$$}
echo "kill seed ${MD_KILL_SEED:-$$}, $rounds rounds, $steps steps"
# Each round kills the run once it has logged a random number of further
# steps (0 .. steps / rounds - 1: the rounds together leave about half the
# run to finish, on a fast or a loaded machine alike), then 0-9 ms later;
# one round in five kills it blind after 5-64 ms, often during start-up.
span=$((steps / rounds))

# the step a checkpoint holds, read back through `mambadna info` (which
# loads the weights)
ckpt_step() { $MD info "$1" 2>/dev/null | sed -n 's/^training .*"step":\([0-9]*\).*/\1/p'; }
last_row() { [ -s "$T/k.tsv" ] && awk -F '\t' '$1 ~ /^[0-9]+$/ { s = $1 } END { print s + 0 }' "$T/k.tsv" || echo 0; }

kills=0 finished=0 in_save=0 from_prev=0
for ((r = 1; r <= rounds; r++)); do
    resume=()
    [ -e "$T/k.safetensors" ] && resume=(--resume "$T/k.safetensors")
    $MD pretrain $ARGS "${resume[@]}" --metrics "$T/k.tsv" -o "$T/k.safetensors" "$T/g.fa" >/dev/null 2>"$T/err" &
    pid=$!
    if [ $((RANDOM % 5)) -eq 0 ]; then
        sleep "$(printf '0.%03d' $((5 + RANDOM % 60)))"
    else
        target=$(($(last_row) + RANDOM % span))
        while kill -0 $pid 2>/dev/null && [ "$(last_row)" -lt $target ]; do sleep 0.005; done
        sleep "0.00$((RANDOM % 10))"
    fi
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
    rc=$?
    if grep -q '^\[E::' "$T/err"; then bad "round $r: $(grep '^\[E::' "$T/err")"; break; fi
    grep -q 'was interrupted; resuming from' "$T/err" && from_prev=$((from_prev + 1))
    # a kill inside a save leaves its temporary (safe to delete) or the
    # set-aside state behind
    if compgen -G "$T/k.*tmp*" >/dev/null || [ -e "$T/k.state.safetensors.prev" ]; then
        in_save=$((in_save + 1))
        rm -f "$T"/k.*tmp*
    fi
    if [ $rc -eq 0 ]; then finished=1; break; fi
    [ $rc -eq 137 ] && kills=$((kills + 1)) || { bad "round $r: exit $rc"; break; }
    # what the run had done (its metrics rows) against what a resume gets
    done_steps=$(last_row)
    [ -n "${MD_KILL_VERBOSE:-}" ] && echo "round $r: killed after $done_steps steps"
    [ -e "$T/k.safetensors" ] || continue
    got=$(ckpt_step "$T/k.safetensors")
    if [ -z "$got" ]; then bad "round $r: the checkpoint does not load"; break; fi
    [ $((done_steps - got)) -le $SAVE ] && ok || bad "round $r: checkpoint at step $got, but $done_steps steps were done"
done
echo "$kills kills ($in_save inside a save; $from_prev resumes from the set-aside state); finished by itself: $finished"
[ $kills -ge $((rounds * 3 / 4)) ] && ok || bad "only $kills of $rounds rounds were killed mid-run"

# finish the run
resume=()
[ -e "$T/k.safetensors" ] && resume=(--resume "$T/k.safetensors")
expect_ok "final resume" $MD pretrain $ARGS "${resume[@]}" --metrics "$T/k.tsv" -o "$T/k.safetensors" "$T/g.fa"
same_tensors "$T/ref.safetensors" "$T/k.safetensors" && ok || bad "weights differ from the uninterrupted run's"
same_tensors "$T/ref.state.safetensors" "$T/k.state.safetensors" && ok || bad "optimizer state differs"
take_provenance "$T/ref.tsv"
take_provenance "$T/k.tsv"
# every column but tokens per second (7)
diff <(cut -f 1-6,8- "$T/ref.tsv") <(cut -f 1-6,8- "$T/k.tsv") >"$T/diff" && ok || \
    bad "metrics differ from the uninterrupted run's: $(head -n 4 "$T/diff")"
[ "$(wc -l < "$T/k.tsv")" -eq $((steps + 1)) ] && ok || bad "$(wc -l < "$T/k.tsv") metrics lines, expected $((steps + 1))"
[ ! -e "$T/k.state.safetensors.prev" ] && ok || bad "the set-aside training state was left behind"
finish
