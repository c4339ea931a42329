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
