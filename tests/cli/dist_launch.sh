# The --gpus launcher and the --dist-init file bootstrap, run on the CPU
# through the NCCL stand-in (tests/nccl_stub.c, the launcher's -x cpu test
# mode): ranks, the id handshake, results equal to one process, a failing
# rank, SIGTERM forwarded, a file that never appears; and every bad option
# with its one error line. Tolerances as in dist_mpi.sh (the stub sums the
# ranks' gradients in rank order, like MPI).
. "$MD_TESTS/clilib.sh"

[ -n "${MD_NCCL_STUB:-}" ] && [ -f "$MD_NCCL_STUB" ] || { echo "skipped: no NCCL stub built"; exit 77; }
export MD_NCCL_LIBRARY=$MD_NCCL_STUB
mkdir -p "$T/shm"
export MD_NCCL_STUB_DIR=$T/shm   # the stand-in's shared files: gone with $T, whatever a test kills
mkdir -p "$T/tmp"
export TMPDIR=$T/tmp   # the launcher's private folder goes here: it must be gone at the end

random_genome "$T/g.fa"
TINY="-x cpu -t 1 --d-model 16 --n-layer 2 -L 96 --tokens-per-step 768 --steps 8 --lr 3e-3 --seed 5 --log-every 4"
close() {
    local w
    if w=$(python3 "$MD_TESTS/st_close.py" "$2" "$3" 1e-4); then ok; else bad "$1: weights differ by $w"; fi
}
clean_tmp() { [ -z "$(ls -A "$T/tmp")" ] && ok || bad "$1: left $(ls "$T/tmp")"; }

expect_ok "one process" $MD pretrain $TINY -B 5 -o "$T/one.safetensors" "$T/g.fa"
expect_ok "--gpus 0,1,2" $MD pretrain $TINY -B 5 --gpus 0,1,2 -o "$T/three.safetensors" "$T/g.fa"
grep -q 'rank 0 of 3 (nccl)' "$T/err" && ok || bad "--gpus: rank 0 of 3 not logged"
[ "$(grep -c '^\[E::' "$T/err")" -eq 0 ] && ok || bad "--gpus: error lines"
close "--gpus 0,1,2" "$T/three.safetensors" "$T/one.safetensors"
clean_tmp "--gpus run"
# One rank through the NCCL path sums over itself: the one-process bits.
expect_ok "--gpus 0" $MD pretrain $TINY -B 5 --gpus 0 -o "$T/g0.safetensors" "$T/g.fa"
grep -q 'rank 0 of 1 (nccl)' "$T/err" && ok || bad "--gpus 0: not through NCCL"
close0() { python3 "$MD_TESTS/st_close.py" "$1" "$2" 0 >/dev/null; }
close0 "$T/g0.safetensors" "$T/one.safetensors" && ok || bad "--gpus 0 differs from one process"

# A rank that fails: one error line (its own), the others stopped, no
# checkpoint, nothing left behind; whichever rank it is.
for r in 1 0; do
    MD_NCCL_STUB_FAIL_RANK=$r expect_error "rank $r fails" 'NCCL communicator set-up failed: stub: rank told to fail' \
        $MD pretrain $TINY -B 4 --gpus 0,1 -o "$T/fail.safetensors" "$T/g.fa"
    no_file "rank $r fails: no checkpoint" "$T/fail.safetensors"
    clean_tmp "rank $r fails"
done

# SIGTERM to the launcher reaches every rank: they stop together after a
# step, rank 0 saves, the launcher exits 143, and the run resumes.
$MD pretrain $TINY -B 4 --steps 100000 --log-every 1 --gpus 0,1 -o "$T/sig.safetensors" "$T/g.fa" 2>"$T/sig.err" &
pid=$!
for _ in $(seq 200); do grep -qs 'step [0-9]*/100000' "$T/sig.err" && break; sleep 0.05; done
kill -TERM $pid
for _ in $(seq 200); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
if kill -0 $pid 2>/dev/null; then   # not forwarded: stop the ranks, then the launcher
    kill -KILL $(pgrep -P $pid) $pid
    bad "SIGTERM: the ranks did not stop within 10 s"
fi
wait $pid
rc=$?
[ $rc -eq 143 ] && ok || bad "SIGTERM: exit $rc, not 143 ($(tail -n 2 "$T/sig.err"))"
grep -q 'stopped by SIGTERM after step' "$T/sig.err" && [ -s "$T/sig.safetensors" ] && ok || bad "SIGTERM: no save"
clean_tmp "SIGTERM"
n=$(sed -n 's/.*stopped by SIGTERM after step \([0-9]*\).*/\1/p' "$T/sig.err")
expect_ok "resume after SIGTERM" $MD pretrain $TINY -B 4 --steps 100000 --stop-at $((n + 2)) --resume "$T/sig.safetensors" \
    "$T/g.fa"
grep -q "resumed from .* at step $n " "$T/err" && ok || bad "not resumed at step $n"

# A launcher killed outright: its death asks the ranks to save and stop
# (rank 0 outlives its broken stderr pipe), and none is left running.
$MD pretrain $TINY -B 4 --steps 100000 --log-every 1 --gpus 0,1 -o "$T/k9.safetensors" "$T/g.fa" 2>"$T/k9.err" &
pid=$!
for _ in $(seq 200); do grep -qs 'step [0-9]*/100000' "$T/k9.err" && break; sleep 0.05; done
kill -KILL $pid
wait $pid 2>/dev/null
for _ in $(seq 200); do pgrep -f "$T/k9.safetensors" >/dev/null || break; sleep 0.05; done
left=$(pgrep -f "$T/k9.safetensors")
if [ -n "$left" ]; then kill -KILL $left; bad "kill -9 of the launcher: ranks left running"; else ok; fi
[ -s "$T/k9.safetensors" ] && [ -s "$T/k9.state.safetensors" ] && ok || bad "kill -9 of the launcher: no checkpoint"
rm -rf "$T"/tmp/mambadna-gpus.*   # the launcher could not remove its folder

# The file bootstrap with two processes started independently.
$MD pretrain $TINY -B 4 --dist-init "file:$T/id" --rank 1 --world-size 2 -o "$T/fi.safetensors" "$T/g.fa" \
    2>"$T/r1.err" &
pid=$!
expect_ok "--dist-init rank 0" $MD pretrain $TINY -B 4 --dist-init "file:$T/id" --rank 0 --world-size 2 \
    -o "$T/fi.safetensors" "$T/g.fa"
wait $pid && ok || bad "--dist-init rank 1: $(cat "$T/r1.err")"
[ ! -e "$T/id" ] && ok || bad "rank 0 left the id file"
expect_ok "one process, -B 4" $MD pretrain $TINY -B 4 -o "$T/one4.safetensors" "$T/g.fa"
close "--dist-init" "$T/fi.safetensors" "$T/one4.safetensors"
RANK=1 WORLD_SIZE=2 expect_error "the id file never appears" "did not appear within 0.5 s" \
    $MD pretrain $TINY -B 4 --dist-init "file:$T/never" --dist-timeout 0.5 -o "$T/x.safetensors" "$T/g.fa"
MD_NCCL_STUB_FAIL_RANK=0 expect_error "rank 0 fails to join" "rank told to fail" \
    $MD pretrain $TINY -B 4 --dist-init "file:$T/id0" --rank 0 --world-size 1 -o "$T/x.safetensors" "$T/g.fa"
[ ! -e "$T/id0" ] && ok || bad "a failed rank 0 left its id file"
touch "$T/stale"
expect_error "rank 0 finds an old id file" "already exists" \
    $MD pretrain $TINY -B 4 --dist-init "file:$T/stale" --rank 0 --world-size 2 -o "$T/x.safetensors" "$T/g.fa"

# bench train --gpus: one row from rank 0, with the ranks and an efficiency
# that is all ranks' tokens/s over twice one rank's.
expect_ok "bench train --gpus 0,1" $MD bench train -x cpu -t 1 --d-model 16 --n-layer 2 -L 32 -B 2 --steps 3 \
    --warmup 1 --gpus 0,1
[ "$(grep -c . "$T/out")" -eq 2 ] && ok || bad "bench: one header and one row: $(cat "$T/out")"
sed -n 2p "$T/out" | awk -F '\t' '{ e = $10 / (2 * $11); exit !($4 == 2 && $12 > 0 && e / $12 > 0.99 && e / $12 < 1.01) }' && ok ||
    bad "bench row: $(cat "$T/out")"
clean_tmp "bench"

# Bad options: one error line each.
for bad_list in "0,,1" "a" "1," "-1"; do
    expect_error "--gpus '$bad_list'" "option --gpus" $MD pretrain $TINY --gpus "$bad_list" -o "$T/x.safetensors" "$T/g.fa"
done
expect_error "--gpus repeats a GPU" "GPU 1 is listed twice" \
    $MD pretrain $TINY --gpus 0,1,1 -o "$T/x.safetensors" "$T/g.fa"
expect_error "more GPUs than present" "no GPU is visible|GPU 999 does not exist" \
    $MD pretrain -t 1 --gpus 0,999 -o "$T/x.safetensors" "$T/g.fa"
expect_error "-x cuda:1 with --gpus" "contradicts --gpus" \
    $MD pretrain -x cuda:1 --gpus 0,1 -o "$T/x.safetensors" "$T/g.fa"
MD_NCCL_LIBRARY=$T/none.so expect_error "a missing NCCL" "cannot load NCCL from MD_NCCL_LIBRARY='.*none.so'" \
    $MD pretrain $TINY --gpus 0,1 -o "$T/x.safetensors" "$T/g.fa"
MD_NCCL_LIBRARY=$MD_TESTS/clilib.sh expect_error "not a library" "cannot load NCCL" \
    $MD pretrain $TINY --gpus 0,1 -o "$T/x.safetensors" "$T/g.fa"
expect_error "--gpus with --dist-init" "leave out --dist-init" \
    $MD pretrain $TINY --gpus 0,1 --dist-init "file:$T/id" -o "$T/x.safetensors" "$T/g.fa"
expect_error "--rank alone" "go with --dist-init" $MD pretrain $TINY --rank 1 -o "$T/x.safetensors" "$T/g.fa"
expect_error "--dist-init without a rank" "needs this process's rank" \
    env -u RANK -u WORLD_SIZE -u SLURM_PROCID -u SLURM_NTASKS \
    $MD pretrain $TINY --dist-init "file:$T/id" -o "$T/x.safetensors" "$T/g.fa"
expect_error "--dist-init not a file:" "not of the form file:PATH" \
    $MD pretrain $TINY --dist-init "tcp://h:1" --rank 0 --world-size 2 -o "$T/x.safetensors" "$T/g.fa"
expect_error "-B below the ranks" "-B 1 is smaller than the 2 ranks" \
    $MD pretrain $TINY -B 1 --gpus 0,1 -o "$T/x.safetensors" "$T/g.fa"
no_file "no checkpoint from a bad run" "$T/x.safetensors"
clean_tmp "bad options"

finish
