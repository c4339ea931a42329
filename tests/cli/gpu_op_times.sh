# MD_CUDA_OP_TIMES on a GPU (skipped without one): bench train prints one
# table, for its timed steps alone (not the warm-up, not the teardown's
# frees), with cuFFT's transforms as rows of their own and the timed
# region's wall time and GPU busy share; nothing without the variable.
. "$MD_TESTS/clilib.sh"

if ! $MD version | grep -Eq '^gpus: +[1-9]'; then
    echo "skipped: no GPU"
    rm -rf "$T"
    exit 77
fi
args=(bench train -x cuda -m hyena --d-model 32 --n-layer 2 -L 1024 -B 2 --steps 2 --warmup 1)
expect_ok "timed bench train" env MD_CUDA_OP_TIMES=1 $MD "${args[@]}"
cp "$T/err" "$T/timed.err"
# Each Hyena layer's fftconv makes one r2c and one c2r call forward and
# one of each backward (the forward's spectra kept): 2 x 2 layers x 2 steps.
python3 - "$T/timed.err" <<'PY' && ok || bad "the op table of the timed steps ($(grep -c 'M::report' "$T/timed.err") lines)"
import re, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("[M::report]")]
assert sum("GPU time per op" in l for l in lines) == 1, "one table"
rows = {}
for l in lines:
    f = l.split()   # [M::report] NAME... GPU-ms pct% calls GPU-us host-us gap-us
    if len(f) >= 8 and f[-5].endswith("%"):
        rows[" ".join(f[1:-6])] = (float(f[-6]), int(f[-4]))
assert rows.get("cufft r2c", (0, 0))[1] == 8 and rows.get("cufft c2r", (0, 0))[1] == 8, rows
assert "free" not in rows and "alloc" not in rows, rows
assert all(ms > 0 for ms, _ in rows.values()), rows
m = [re.search(r"wall ([0-9.]+) ms: GPU busy ([0-9.]+)%", l) for l in lines]
m = [x for x in m if x]
assert len(m) == 1 and float(m[0].group(1)) > 0 and 0 < float(m[0].group(2)) <= 100, m
PY
# =shapes: the GEMM rows carry their shape (m x n x k and the transposes)
expect_ok "timed bench train, GEMMs by shape" env MD_CUDA_OP_TIMES=shapes $MD "${args[@]}"
grep -Eq '^\[M::report\] gemm[a-z0-9 ]* [0-9]+x[0-9]+x[0-9]+ t[01][01] ' "$T/err" && ok ||
    bad "no GEMM row by shape under MD_CUDA_OP_TIMES=shapes"
grep -Eq '^\[M::report\] gemm[a-z0-9 ]* [0-9]+x[0-9]+x[0-9]+ t[01][01] ' "$T/timed.err" &&
    bad "GEMM rows by shape under MD_CUDA_OP_TIMES=1" || ok
expect_ok "bench train without the variable" $MD "${args[@]}"
grep -q "GPU time per op" "$T/err" && bad "a table without MD_CUDA_OP_TIMES" || ok
finish
