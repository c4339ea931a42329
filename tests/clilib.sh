# Shared helpers for the CLI tests in tests/cli, sourced as
#   . "$MD_TESTS/clilib.sh"
# $MD is the mambadna binary; $MD_SHARED the shared folder.
set -u
MD=${MD:-mambadna}
pass=0
fail=0
T=$(mktemp -d /tmp/mdcli.XXXXXX)

ok()   { pass=$((pass + 1)); }
bad()  { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# need_shared: exit 77 (skipped) when ../shared/data is absent.
need_shared() {
    SHARED_DATA="${MD_SHARED:-../shared}/data"
    [ -d "$SHARED_DATA" ] || { echo "skipped: $SHARED_DATA is absent"; exit 77; }
}

# need_mpi: exit 77 without mpirun or an MPI build; else MPIRUN is the
# command to start ranks with: no CMA (containers forbid it), as root where
# need be, and no leak checks for the ranks under AddressSanitizer (Open
# MPI's components leak at MPI_Finalize and are unloaded before
# LeakSanitizer reports, so no suppression can name them; the same training
# code is leak-checked without MPI in the other tests).
need_mpi() {
    command -v mpirun >/dev/null || { echo "skipped: no mpirun"; exit 77; }
    $MD version | grep -q '^mpi: *compiled in' || { echo "skipped: built without MPI"; exit 77; }
    MPIRUN="mpirun --oversubscribe --mca btl_vader_single_copy_mechanism none"
    [ "$(id -u)" -eq 0 ] && MPIRUN="$MPIRUN --allow-run-as-root"
    MPIRUN="env ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 $MPIRUN"
}

# need_gpu_nccl: exit 77 without a GPU or without NCCL (a one-step
# --gpus 0 run that cannot load it); else n_gpu is the GPUs present. A
# probe that fails otherwise is a failure.
need_gpu_nccl() {
    n_gpu=$($MD version | sed -n 's/^gpus: *\([0-9]*\) present/\1/p')
    [ "${n_gpu:-0}" -gt 0 ] || { echo "skipped: no GPU"; exit 77; }
    random_genome "$T/probe.fa"
    if ! $MD pretrain -x cuda --d-model 16 --n-layer 1 -L 64 -B 2 --steps 1 --gpus 0 -o "$T/probe.safetensors" \
        "$T/probe.fa" 2>"$T/probe.err"; then
        grep -q 'cannot load NCCL' "$T/probe.err" && { echo "skipped: no NCCL"; exit 77; }
        bad "--gpus 0: $(tail -n 2 "$T/probe.err")"
    fi
}

# tensors_close DESC A B RTOL: the safetensors files A and B hold the same
# tensors, equal to RTOL relative (tests/st_close.py; 0: the same bits).
tensors_close() {
    local w
    if w=$(python3 "$MD_TESTS/st_close.py" "$2" "$3" "$4"); then ok; else bad "$1: differ by $w"; fi
}

# expect_ok DESC CMD...: the command must exit 0.
expect_ok() {
    local desc=$1; shift
    if "$@" >"$T/out" 2>"$T/err"; then ok; else bad "$desc: exit $? ($(tail -n 2 "$T/err"))"; fi
}

# expect_error DESC PATTERN CMD...: the command must exit non-zero without a
# crash (no signal), print exactly one [E::...] line on stderr, and that
# line must match the extended regex PATTERN.
expect_error() {
    local desc=$1 pattern=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    local n_err
    n_err=$(grep -c '^\[E::' "$T/err")
    if [ $rc -eq 0 ]; then bad "$desc: exit 0, expected failure"; return; fi
    if [ $rc -ge 128 ]; then bad "$desc: killed by signal $((rc - 128))"; return; fi
    if [ "$n_err" -ne 1 ]; then bad "$desc: $n_err error lines: $(head -c 400 "$T/err")"; return; fi
    if ! grep -Eq -- "$pattern" "$T/err"; then bad "$desc: error '$(grep '^\[E::' "$T/err")' does not match /$pattern/"; return; fi
    ok
}

# random_genome FILE: a seeded random genome (contigs of 30 and 12 kb, the
# first with a 200 bp N run), the data of the training tests.
random_genome() {
    awk 'BEGIN { srand(7); split("A C G T", b, " ");
        for (c = 1; c <= 2; c++) { printf(">ctg%d\n", c); n = c == 1 ? 30000 : 12000; s = "";
            for (i = 1; i <= n; i++) { s = s ((c == 1 && i > 8000 && i <= 8200) ? "N" : b[int(rand() * 4) + 1]);
                if (i % 60 == 0) { print s; s = "" } } if (s != "") print s } }' > "$1"
}

# no_file DESC PATH: nothing at PATH, nor any temporary beside it.
no_file() {
    if compgen -G "$2*" >/dev/null; then bad "$1: $(compgen -G "$2*" | head -n 1) exists"; else ok; fi
}

# take_provenance FILE: FILE must start with the two '#' provenance lines,
# the version as --version prints it and the command line that ran $MD;
# they are checked, then removed, so the file reads as it did without them.
take_provenance() {
    local want
    want="# $($MD --version)"
    if [ "$(head -n 1 "$1")" = "$want" ] && [[ "$(sed -n 2p "$1")" == "# command: $MD "* ]]; then ok
    else bad "provenance of $1: $(head -n 2 "$1")"; fi
    sed -i '1,2d' "$1"
}

# st_without_command FILE: a safetensors file's header (with its
# "mambadna_command" metadata and padding removed) and data, so that two
# runs made by different command lines can be compared.
st_without_command() {
    local n
    n=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
    head -c $((8 + n)) "$1" | tail -c "$n" | sed -e 's/"mambadna_command":"\([^"\\]\|\\.\)*",\{0,1\}//' -e 's/ *$//'
    tail -c +$((9 + n)) "$1"
}

# same_tensors A B: the safetensors files agree but for the command line.
same_tensors() { cmp -s <(st_without_command "$1") <(st_without_command "$2"); }

finish() {
    rm -rf "$T"
    echo "$pass passed, $fail failed"
    [ $fail -eq 0 ]
}
