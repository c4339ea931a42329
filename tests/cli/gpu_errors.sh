# Failures inside the CUDA backend, through the commands (cuda_check.h):
# pretrain (Mamba, Hyena, Transformer++), finetune and classify on -x cuda
# with MD_CUDA_FAULT injecting, at several points of the run, an
# out-of-memory, a launch beyond the GPU's resources, a cuBLAS or cuFFT
# allocation failure, a failed buffer allocation, or a bug. Each must print
# exactly one [E::] line naming the op, a size and a hint and exit 1 (a bug:
# its one line, then SIGABRT), with no core dump, and leave the run's folder
# as it was: the checkpoint being resumed byte for byte, no new output, no
# temporary. The points are fractions of the check points that the same
# command passes (MD_CUDA_FAULT=count), so they follow the code as it
# changes. A Mamba model whose activations do not fit with the scan's
# segment states runs without them instead, to the same checkpoint.
# Skipped (77) without a GPU.
. "$MD_TESTS/clilib.sh"

gpus=$($MD version --json | sed -n 's/.*"gpus": \([0-9]*\).*/\1/p')
if [ "${gpus:-0}" -eq 0 ]; then
    rm -rf "$T"
    echo "no CUDA GPU: skipped"
    exit 77
fi
ulimit -c 0

$MD simulate genomes -q --seed 3 -f 2bit --chroms 2 --length 20k -o "$T/g" || { bad "simulate"; finish; exit 1; }
$MD simulate reads -q -n 40 -l 50-200 --seed 4 -o "$T/r.fa" "$T/g/human.2bit" "$T/g/gorilla.2bit" || bad "reads"
SP="human=$T/g/human.2bit gorilla=$T/g/gorilla.2bit"
SMALL="-x cuda -L 64 -B 4 --d-model 16 --n-layer 2"
FT="-x cuda --from-scratch --d-model 16 --n-layer 1 -L 64 -B 8 --epochs 1 --steps-per-epoch 3 --val-windows 2"
FT+=" --test-windows 2"
for m in mamba hyena transformer; do
    $MD pretrain -q $SMALL -m $m --steps 2 -o "$T/$m.safetensors" "$T/g/human.2bit" || bad "pretrain $m"
done
$MD finetune -q $FT -o "$T/cls.safetensors" $SP || bad "finetune"

# R: the folder a run writes in, fresh for each run, holding the checkpoint
# pair of model $1 (pretrain resumes it); snap: its names and bytes
R="$T/run"
fresh() {
    rm -rf "$R" && mkdir "$R"
    [ -z "${1:-}" ] || cp "$T/$1.safetensors" "$T/$1.state.safetensors" "$R/"
}
snap() { (cd "$R" && ls -A && cksum -- * 2>/dev/null); }

# counts CMD...: sets n_alloc, n_runtime, n_cublas, n_cufft to the check
# points the command passes
counts() {
    local line arg args=()
    for arg in "$@"; do [ "$arg" = -q ] || args+=("$arg"); done   # -q would drop the [M::] line
    line=$(env MD_CUDA_FAULT=count "${args[@]}" 2>&1 >/dev/null | grep 'MD_CUDA_FAULT=count:')
    read -r n_alloc n_runtime n_cublas n_cufft < <(echo "$line" |
        sed -n 's/.*count: \([0-9]*\) alloc, \([0-9]*\) runtime .*, \([0-9]*\) cublas, \([0-9]*\) cufft .*/\1 \2 \3 \4/p')
    if [ -z "${n_cufft:-}" ] || [ "$n_runtime" -lt 8 ]; then
        bad "MD_CUDA_FAULT=count on $*: '$line'"
        n_alloc=1 n_runtime=8 n_cublas=1 n_cufft=1
    fi
}

# what each kind's one line must say, after "[E::func] "
SIZE='( after op [a-z0-9_]+)?( on tensors up to [0-9]+ x [0-9]+ \([0-9.]+ [KMG]iB\)| of [0-9.]+ [KMG]iB)'
FREE='; [0-9.]+ [KMG]iB of [0-9.]+ [KMG]iB free on the GPU'
HINT="; try a smaller batch \(-B, or finetune's --micro-batch\), --recompute or a shorter -L$"
OP='backend cuda, op [a-z0-9_]+:'
CUBLAS="out of GPU memory: cuBLAS could not allocate its workspace \([^)]*, CUBLAS_STATUS_ALLOC_FAILED\)"
CUFFT="out of GPU memory: cuFFT could not allocate for [a-z ]+ of [0-9]+ sequences of [0-9]+ points"
MODEL="its [a-z ]+ \([0-9.]+ MiB of a [0-9.]+ MiB plan for batch [0-9]+ x length [0-9]+\); try a smaller batch, "
MODEL+="--recompute or a shorter -L"
OPT="the optimizer state \(2 x [0-9.]+ MiB, after the model's buffers\); try a smaller batch, --recompute, "
OPT+="a shorter -L or a smaller model"
TOKENS="the training step's tokens \([0-9.]+ MiB, after the model's buffers and the optimizer state\); try a "
TOKENS+="smaller batch, --recompute, a shorter -L or a smaller model"
BUG=" \(a bug in mambadna; please report this line\)$"
DETECTED=", detected here \(an earlier op may have queued the kernel at fault; CUDA_LAUNCH_BLOCKING=1 names it\)"
declare -A want=(
    [oom]="$OP out of GPU memory \(out of memory, cudaErrorMemoryAllocation\)$SIZE$FREE$HINT"
    [launch]="$OP a kernel launch exceeds the GPU's resources \([^)]*, cudaErrorLaunchOutOfResources\)$SIZE$HINT"
    [cublas]="$OP $CUBLAS in [A-Za-z]+ for a [0-9]+ x [0-9]+ x [0-9]+ product$FREE$HINT"
    [cufft]="$OP $CUFFT \([0-9.]+ [KMG]iB of samples\) \(CUFFT_ALLOC_FAILED\)$FREE$HINT"
    [alloc]="out of cuda memory for ($MODEL|$OPT|$TOKENS)$"
    [bug]="$OP CUDA call failed \([^)]*, cudaErrorIllegalAddress\)$SIZE$DETECTED$BUG"
)

# expect_end DESC STATUS PATTERN CMD...: the command must print exactly one
# [E::] line, matching PATTERN, and end with STATUS (1; a bug: 134, SIGABRT)
expect_end() {
    local desc=$1 status=$2 pattern=$3; shift 3
    { "$@" >"$T/out" 2>"$T/err"; } 2>/dev/null   # (no "Aborted" notice from bash)
    local rc=$? n_err
    n_err=$(grep -c '^\[E::' "$T/err")
    if [ $rc -ne "$status" ]; then bad "$desc: exit $rc, expected $status: $(head -c 600 "$T/err")"; return; fi
    if [ "$n_err" -ne 1 ]; then bad "$desc: $n_err error lines: $(head -c 600 "$T/err")"; return; fi
    if ! grep -Eq -- "$pattern" "$T/err"; then bad "$desc: error '$(grep '^\[E::' "$T/err")' does not match /$pattern/"; return; fi
    ok
}

# inject KIND N CKPT CMD...: CMD (run in a fresh $R holding checkpoint CKPT,
# or none for "-") fails at MD_CUDA_FAULT=KIND@N as KIND must, and leaves $R
# as it found it
inject() {
    local kind=$1 n=$2 ckpt=$3; shift 3
    [ "$ckpt" = - ] && fresh || fresh "$ckpt"
    local before desc="MD_CUDA_FAULT=$kind@$n $*"
    before=$(snap)
    expect_end "$desc" "$([ "$kind" = bug ] && echo 134 || echo 1)" "${want[$kind]}" env MD_CUDA_FAULT="$kind@$n" "$@"
    [ "$(snap)" = "$before" ] && ok || bad "$desc: the run's folder changed: $(snap | tr '\n' ' ')"
}

# ---- pretrain, resuming each architecture's checkpoint pair for 4 more steps ----
for m in mamba hyena transformer; do
    run=($MD pretrain -q $SMALL -m $m --steps 6 --resume "$R/$m.safetensors" "$T/g/human.2bit")
    fresh $m
    counts "${run[@]}"
    echo "pretrain $m: $n_alloc alloc, $n_runtime runtime, $n_cublas cublas, $n_cufft cufft check points"
    for f in 1 4 2; do   # the first call, a quarter and half of the way
        p=$(( f == 1 ? 1 : n_runtime / f ))
        inject oom $p $m "${run[@]}"
        inject launch $(( p + 1 )) $m "${run[@]}"
    done
    inject bug $(( n_runtime / 3 )) $m "${run[@]}"
    inject cublas 1 $m "${run[@]}"
    inject cublas $(( n_cublas / 2 + 1 )) $m "${run[@]}"
    inject alloc 1 $m "${run[@]}"
    inject alloc $n_alloc $m "${run[@]}"
    if [ $m = hyena ]; then
        [ "$n_cufft" -gt 4 ] && ok || bad "hyena passes cuFFT's check points ($n_cufft)"
        inject cufft 1 $m "${run[@]}"
        inject cufft $(( n_cufft / 2 )) $m "${run[@]}"
    fi
done

# ---- where the activations do not fit with the scan's segment states (the
# third buffer of a model's plan), a Mamba model plans without them: one
# warning, and the checkpoint of the run without the fault, byte for byte ----
run=($MD pretrain -q $SMALL -m mamba --steps 6 --resume "$R/mamba.safetensors" "$T/g/human.2bit")
fresh mamba
"${run[@]}" 2>"$T/err" && cp "$R/mamba.safetensors" "$T/ref.safetensors" || bad "pretrain mamba: $(tail -n 1 "$T/err")"
fresh mamba
if env MD_CUDA_FAULT=alloc@3 "${run[@]}" 2>"$T/err"; then
    grep -q "^\[W::.*no room on cuda.* for the scan's segment states" "$T/err" && ok ||
        bad "alloc@3: no warning of the plan without segment states: $(head -c 400 "$T/err")"
    [ "$(grep -c '^\[E::' "$T/err")" -eq 0 ] && ok || bad "alloc@3: error lines: $(grep '^\[E::' "$T/err")"
    cmp -s "$R/mamba.safetensors" "$T/ref.safetensors" && ok ||
        bad "alloc@3: the checkpoint differs from the run with segment states"
else
    bad "alloc@3 (the activations) on Mamba: exit $? ($(tail -n 2 "$T/err"))"
fi

# ---- finetune from scratch: no checkpoint, no report may appear ----
run=($MD finetune -q $FT -o "$R/ft.safetensors" $SP)
fresh
counts "${run[@]}"
echo "finetune: $n_alloc alloc, $n_runtime runtime, $n_cublas cublas check points"
inject oom $(( n_runtime / 4 )) - "${run[@]}"
inject launch $(( n_runtime / 2 )) - "${run[@]}"
inject cublas $(( n_cublas / 3 + 1 )) - "${run[@]}"
inject alloc 1 - "${run[@]}"

# ---- classify: its TSV and summary are open while the model runs; none may be left ----
run=($MD classify -q -x cuda -B 8 -i "$T/cls.safetensors" --summary "$R/s.tsv" -o "$R/c.tsv" "$T/r.fa")
fresh
counts "${run[@]}"
echo "classify: $n_alloc alloc, $n_runtime runtime, $n_cublas cublas check points"
inject oom $(( n_runtime / 2 )) - "${run[@]}"
inject launch $(( n_runtime * 3 / 4 )) - "${run[@]}"
inject cublas $(( n_cublas / 2 + 1 )) - "${run[@]}"
inject bug $(( n_runtime / 2 )) - "${run[@]}"

# ---- a malformed MD_CUDA_FAULT is one error naming it ----
for v in oom oom@0 oom@x launch@-1 disk@3 count@2; do
    expect_end "MD_CUDA_FAULT=$v" 1 "environment MD_CUDA_FAULT: '$v' is not KIND@N" \
        env MD_CUDA_FAULT=$v $MD pretrain -q $SMALL --steps 1 -o "$T/bad.safetensors" "$T/g/human.2bit"
    no_file "no checkpoint after MD_CUDA_FAULT=$v" "$T/bad.safetensors"
done

finish
