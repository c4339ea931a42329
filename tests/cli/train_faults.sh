# What a training run does when things go wrong (docs/reliability.md):
# SIGTERM and SIGINT save at the next step boundary and exit 143 / 130 with
# a checkpoint that resumes exactly; a second signal stops at once; a
# non-finite step (poisoned through the MD_TEST_POISON_STEPS test hook) is
# skipped without touching the weights, and a streak of them stops the run
# keeping the last checkpoint; a full disk (a file-size limit) fails the
# save with one error naming the file, leaving the last checkpoint whole.
. "$MD_TESTS/clilib.sh"

awk 'BEGIN { srand(5); split("A C G T", b, " "); print ">c1"; s = "";
    for (i = 1; i <= 20000; i++) { s = s b[int(rand() * 4) + 1]; if (i % 60 == 0) { print s; s = "" } } }' > "$T/g.fa"
ARGS="--d-model 16 --n-layer 2 -L 64 -B 2 --lr 3e-3 --seed 9 -t 2 --log-every 1"

# the tensor data of a safetensors file, without its header (whose training
# record names the step)
st_data() { local n; n=$(od -An -t u8 -N 8 "$1" | tr -d ' '); tail -c +$((9 + n)) "$1"; }
ckpt_step() { $MD info "$1" 2>/dev/null | sed -n 's/^training .*"step":\([0-9]*\).*/\1/p'; }
# start_run NAME ARGS...: pretrain in the background (a long run) until it
# has logged 3 metrics rows; $pid is the process
start_run() {
    local name=$1; shift
    $MD pretrain $ARGS --steps 100000 "$@" --metrics "$T/$name.tsv" -o "$T/$name.safetensors" "$T/g.fa" \
        >/dev/null 2>"$T/$name.err" &
    pid=$!
    for ((i = 0; i < 600; i++)); do
        [ -e "$T/$name.tsv" ] && [ "$(grep -c '^[0-9]' "$T/$name.tsv")" -ge 3 ] && return
        sleep 0.05
    done
}
# stop_run SIGNAL...: sends the signals to $pid; rc is its exit status (a
# run still going 20 s later is killed: 137)
stop_run() {
    for sig in "$@"; do kill -$sig $pid; done
    for ((i = 0; i < 400; i++)); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
    kill -KILL $pid 2>/dev/null
    wait $pid
    rc=$?
}

# ---- SIGTERM: save after the current step, exit 143, resume exactly ----
start_run term
stop_run TERM
[ $rc -eq 143 ] && ok || bad "SIGTERM: exit $rc, expected 143 ($(tail -n 2 "$T/term.err"))"
s=$(sed -n 's/.*stopped by SIGTERM after step \([0-9]*\); continue with --resume.*/\1/p' "$T/term.err")
[ -n "$s" ] && ok || bad "SIGTERM: no 'stopped by' line: $(tail -n 3 "$T/term.err")"
[ "$(ckpt_step "$T/term.safetensors")" = "$s" ] && ok || bad "SIGTERM: checkpoint not at step $s"
# the interrupted run, resumed to step s + 3, equals a run straight to s + 3
expect_ok "resume after SIGTERM" $MD pretrain $ARGS --steps 100000 --stop-at $((s + 3)) --resume "$T/term.safetensors" \
    "$T/g.fa"
expect_ok "straight run" $MD pretrain $ARGS --steps 100000 --stop-at $((s + 3)) -o "$T/straight.safetensors" "$T/g.fa"
same_tensors "$T/straight.safetensors" "$T/term.safetensors" && ok || bad "SIGTERM: the resumed weights differ"
same_tensors "$T/straight.state.safetensors" "$T/term.state.safetensors" && ok || bad "SIGTERM: the resumed state differs"

# ---- SIGINT: the same, exit 130 ----
start_run int
stop_run INT
[ $rc -eq 130 ] && grep -q 'stopped by SIGINT' "$T/int.err" && ok || bad "SIGINT: exit $rc ($(tail -n 2 "$T/int.err"))"
[ -s "$T/int.safetensors" ] && ok || bad "SIGINT: no checkpoint"

# ---- a second signal stops at once; the last checkpoint still resumes ----
start_run twice --save-every 2
stop_run INT TERM
# (the two may arrive in either order: death by the second one, no save)
{ [ $rc -eq 143 ] || [ $rc -eq 130 ]; } && ! grep -q 'stopped by' "$T/twice.err" && ok || \
    bad "second signal: exit $rc, expected death by the signal ($(tail -n 2 "$T/twice.err"))"
expect_ok "resume after a second signal" $MD pretrain $ARGS --steps 100000 --stop-at 100 --resume "$T/twice.safetensors" \
    "$T/g.fa"

# ---- finetune: SIGTERM saves the classifier and exits 143 ----
$MD simulate genomes -q --seed 3 -f 2bit --chroms 2 --length 20k -o "$T/apes" || bad "simulate"
$MD finetune --from-scratch --d-model 16 --n-layer 2 -L 64 -B 4 --epochs 1 --steps-per-epoch 100000 -t 2 \
    --log-every 1 --val-fraction 0.2 --test-fraction 0.2 -o "$T/cls.safetensors" \
    human="$T/apes/human.2bit" chimp="$T/apes/chimpanzee.2bit" >/dev/null 2>"$T/cls.err" &
pid=$!
for ((i = 0; i < 600; i++)); do grep -q 'step 3/' "$T/cls.err" && break; sleep 0.05; done
stop_run TERM
[ $rc -eq 143 ] && grep -q 'stopped by SIGTERM after step [0-9]* (epoch 1): saved' "$T/cls.err" && ok || \
    bad "finetune SIGTERM: exit $rc ($(tail -n 2 "$T/cls.err"))"
$MD info "$T/cls.safetensors" 2>/dev/null | grep -q 'classifier.weight' && ok || bad "finetune SIGTERM: no classifier saved"

# ---- a non-finite step is skipped: no update at all ----
MD_TEST_POISON_STEPS=3 expect_ok "poisoned step 3" $MD pretrain $ARGS --steps 8 --stop-at 3 -o "$T/p3.safetensors" \
    "$T/g.fa"
grep -q 'step 3 skipped: non-finite loss or gradient' "$T/err" && ok || bad "no skip warning: $(cat "$T/err")"
expect_ok "two clean steps" $MD pretrain $ARGS --steps 8 --stop-at 2 -o "$T/c2.safetensors" "$T/g.fa"
cmp -s <(st_data "$T/p3.safetensors") <(st_data "$T/c2.safetensors") && ok || bad "the skipped step changed the weights"
cmp -s <(st_data "$T/p3.state.safetensors") <(st_data "$T/c2.state.safetensors") && ok || \
    bad "the skipped step changed the moments"
# scattered bad steps do not stop a run; the metrics show them as nan
MD_TEST_POISON_STEPS=2,4,6 expect_ok "scattered bad steps" $MD pretrain $ARGS --steps 8 --max-bad-steps 2 \
    --metrics "$T/p.tsv" -o "$T/p.safetensors" "$T/g.fa"
[ "$(grep -c 'skipped: non-finite' "$T/err")" -eq 3 ] && ok || bad "3 skip warnings expected: $(cat "$T/err")"
[ "$(awk -F '\t' '$5 == "nan" { printf "%s ", $1 }' "$T/p.tsv")" = "2 4 6 " ] && ok || \
    bad "metrics rows of skipped steps: $(cut -f 1,5 "$T/p.tsv" | tr '\n' ' ')"
# a streak stops the run; the checkpoint of step 4 stays as it was (no
# periodic save at step 6, inside the streak)
expect_ok "four clean steps" $MD pretrain $ARGS --steps 10 --stop-at 4 -o "$T/c4.safetensors" "$T/g.fa"
MD_TEST_POISON_STEPS=5,6,7 expect_error "a streak of bad steps" \
    'training stopped at step 7: 3 steps in a row had a non-finite loss or gradient' \
    $MD pretrain $ARGS --steps 10 --save-every 2 --max-bad-steps 3 -o "$T/s.safetensors" "$T/g.fa"
same_tensors "$T/c4.safetensors" "$T/s.safetensors" && same_tensors "$T/c4.state.safetensors" "$T/s.state.safetensors" && \
    ok || bad "the last good checkpoint (step 4) was not kept"
expect_error "--max-bad-steps 0" "--max-bad-steps" $MD pretrain $ARGS --max-bad-steps 0 "$T/g.fa"

# ---- a full disk: a file-size limit below the training state's size ----
expect_ok "run to step 4" $MD pretrain $ARGS --steps 10 --stop-at 4 -o "$T/d.safetensors" "$T/g.fa"
cp "$T/d.safetensors" "$T/d.keep"; cp "$T/d.state.safetensors" "$T/d.state.keep"
lim=$(( $(stat -c %s "$T/d.state.safetensors") / 1024 - 4 ))
expect_error "file-size limit" "cannot write '.*d\.state\.safetensors': File too large" \
    bash -c "ulimit -f $lim; exec \"\$@\"" - $MD pretrain $ARGS --steps 10 --save-every 2 --resume "$T/d.safetensors" "$T/g.fa"
cmp -s "$T/d.safetensors" "$T/d.keep" && cmp -s "$T/d.state.safetensors" "$T/d.state.keep" && ok || \
    bad "the last checkpoint changed after a failed save"
[ -z "$(compgen -G "$T/d.*tmp*")" ] && [ ! -e "$T/d.state.safetensors.prev" ] && ok || \
    bad "leftovers of the failed save: $(ls "$T")"
expect_ok "resume after the failed save" $MD pretrain $ARGS --steps 10 --resume "$T/d.safetensors" "$T/g.fa"

# ---- a save killed between its renames, made by hand: the step-4 weights
# beside the step-10 state, the step-4 state set aside. --resume takes the
# state that matches and puts it back in place (a later save must not set
# the step-10 one aside); --stop-at 4 stops before any save, to see that.
cp "$T/d.keep" "$T/h.safetensors"; cp "$T/d.state.safetensors" "$T/h.state.safetensors"
cp "$T/d.state.keep" "$T/h.state.safetensors.prev"
expect_ok "resume after a kill between the renames" $MD pretrain $ARGS --steps 10 --stop-at 4 --resume "$T/h.safetensors" \
    "$T/g.fa"
grep -q "the last save of .* was interrupted; resuming from .*h.state.safetensors.prev" "$T/err" && ok || \
    bad "no warning about the interrupted save: $(cat "$T/err")"
cmp -s "$T/h.state.safetensors" "$T/d.state.keep" && [ ! -e "$T/h.state.safetensors.prev" ] && ok || \
    bad "the matching state is not back in place"
# killed after setting the state aside: only STATE.prev is there
cp "$T/d.keep" "$T/h2.safetensors"; cp "$T/d.state.keep" "$T/h2.state.safetensors.prev"
expect_ok "resume after a kill after the set-aside" $MD pretrain $ARGS --steps 10 --resume "$T/h2.safetensors" "$T/g.fa"
same_tensors "$T/h2.safetensors" "$T/d.safetensors" && ok || bad "resumed from STATE.prev, the run differs"

# ---- a metrics row cut short by a kill during its append ----
expect_ok "metrics to step 4" $MD pretrain $ARGS --steps 10 --stop-at 4 --metrics "$T/m.tsv" -o "$T/m.safetensors" "$T/g.fa"
printf '5\t1' >> "$T/m.tsv"
expect_ok "resume over a cut row" $MD pretrain $ARGS --steps 10 --stop-at 6 --metrics "$T/m.tsv" --resume "$T/m.safetensors" \
    "$T/g.fa"
grep -q "ignoring its incomplete last line" "$T/err" && ok || bad "no warning about the cut metrics row"
expect_ok "metrics to step 6" $MD pretrain $ARGS --steps 10 --stop-at 6 --metrics "$T/m6.tsv" -o "$T/m6.safetensors" "$T/g.fa"
diff <(grep -v '^#' "$T/m.tsv" | cut -f 1-6,8-) <(grep -v '^#' "$T/m6.tsv" | cut -f 1-6,8-) >/dev/null && ok || \
    bad "metrics after a cut row differ: $(cut -f 1,5 "$T/m.tsv" | tr '\n' ' ')"

# ---- out of memory for the model's plan: the buffer, its size, a hint ----
# (an address-space limit; not under AddressSanitizer, which reserves terabytes)
if ! ldd "$MD" | grep -q libasan; then
    expect_error "out of memory" 'out of cpu memory for its activations \([0-9.]+ MiB of a [0-9.]+ MiB plan.*try a smaller batch, --recompute or a shorter -L' \
        bash -c 'ulimit -v 1500000; exec "$@"' - $MD pretrain --d-model 64 --n-layer 2 -L 4096 -B 512 --steps 2 -t 2 \
        -o "$T/oom.safetensors" "$T/g.fa"
    no_file "out of memory" "$T/oom.safetensors"
fi
finish
