# Hostile files, made here, small, each claiming something it cannot hold:
# safetensors checkpoints that lie about their header, dtypes, shapes,
# offsets or model, and genome, index and BED files that claim huge names,
# contigs or offsets. Each must be refused with exactly one error line and
# exit 1, quickly and without allocating what it claims (a 10 s limit and a
# 2 GB address-space limit per command; the sanitizer build has neither,
# as ASan reserves terabytes of address space).
. "$MD_TESTS/clilib.sh"
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
limit() { if [ -z "${MD_NO_ULIMIT:-}" ] && ! ldd "$MD" | grep -q libasan; then (ulimit -v 2000000; timeout 10 "$@"); else timeout 10 "$@"; fi; }

awk 'BEGIN { srand(5); split("A C G T", b, " "); print ">chr1";
    for (i = 1; i <= 40; i++) { s = ""; for (j = 0; j < 60; j++) s = s b[int(rand() * 4) + 1]; print s } }' > "$T/g.fa"
C=$T/m.safetensors
expect_ok "a tiny checkpoint" $MD pretrain -q -m mamba --d-model 4 --n-layer 1 -L 16 -B 1 --steps 1 -t 1 -o "$C" "$T/g.fa"
expect_ok "info on it" limit $MD info "$C"

# st.py IN OUT EDIT: rewrites a checkpoint's header with one edit (python).
cat > "$T/st.py" <<'PY'
import json, struct, sys
src, dst, edit = sys.argv[1:4]
b = open(src, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
data = b[8 + n:]
names = [k for k in h if k != '__metadata__']
def first(prefix): return next(k for k in names if k.startswith(prefix))
raw_header = None
if edit == 'len-beyond':     open(dst, 'wb').write(struct.pack('<Q', 10**6) + b[8:100]); sys.exit()
if edit == 'len-huge':       open(dst, 'wb').write(struct.pack('<Q', 2**63) + b[8:]); sys.exit()
if edit == 'not-json':       raw_header = b'{"a": [1, 2,, 3]}'
if edit == 'dtype-unknown':  h[names[0]]['dtype'] = 'Q7'
if edit == 'dtype-int':      h[first('backbone.embeddings')]['dtype'] = 'I32'
if edit == 'offsets-beyond': h[max(names, key=lambda k: h[k]['data_offsets'][1])]['data_offsets'] = [x + 4 for x in h[max(names, key=lambda k: h[k]['data_offsets'][1])]['data_offsets']]
if edit == 'offsets-huge':   h[names[0]]['data_offsets'] = [0, 2**63 - 1]
if edit == 'shape-overflow': h[names[0]]['shape'] = [2**40, 2**40, 2**40]
if edit == 'meta-not-string': h['__metadata__']['format'] = 7
if edit == 'overlap':
    t = sorted(names, key=lambda k: h[k]['data_offsets'][0])
    a, z = h[t[1]]['data_offsets']; h[t[1]]['data_offsets'] = [a - 4, z - 4]
if edit == 'config-huge':
    c = json.loads(h['__metadata__']['config']); c['d_model'] = 2**62; h['__metadata__']['config'] = json.dumps(c)
if edit == 'config-wide':
    c = json.loads(h['__metadata__']['config']); c['d_model'] = 8; c['d_inner'] = 16; c['dt_rank'] = 1
    h['__metadata__']['config'] = json.dumps(c)
if edit == 'extra-layer':    # a second layer's tensor that a 1-layer config has no place for
    k = first('backbone.layers.0.norm'); s = h[k]
    end = max(h[x]['data_offsets'][1] for x in names)
    h[k.replace('layers.0', 'layers.1')] = {'dtype': s['dtype'], 'shape': s['shape'], 'data_offsets': [end, end + s['data_offsets'][1] - s['data_offsets'][0]]}
    data += data[s['data_offsets'][0]:s['data_offsets'][1]]
if edit == 'other-arch':     # Transformer++ config over Mamba tensors
    c = json.loads(h['__metadata__']['config']); c['arch'] = 'transformer'; c['n_heads'] = 1
    h['__metadata__']['config'] = json.dumps(c); h['__metadata__']['model_type'] = 'transformer'
if raw_header is None: raw_header = json.dumps(h).encode()
open(dst, 'wb').write(struct.pack('<Q', len(raw_header)) + raw_header + data)
PY
st() { python3 "$T/st.py" "$C" "$T/$1.safetensors" "$1"; }
bad_ckpt() {   # EDIT PATTERN
    st "$1"
    expect_error "checkpoint $1" "$2" limit $MD info "$T/$1.safetensors"
}
bad_ckpt len-beyond "header length 1000000 exceeds the [0-9]+ bytes that follow"
bad_ckpt len-huge "header length 9223372036854775808 exceeds"
bad_ckpt not-json "the header is not valid JSON"
bad_ckpt dtype-unknown "has dtype 'Q7', which is not supported"
bad_ckpt dtype-int "tensor 'backbone.embeddings.weight' spans .* bytes but its shape and dtype need|has dtype I32, not a floating-point type"
bad_ckpt offsets-beyond "ends at byte [0-9]+ of a [0-9]+-byte data section"
bad_ckpt offsets-huge "has invalid data_offsets|spans [0-9]+ bytes but its shape and dtype need"
bad_ckpt shape-overflow "has an (invalid|impossibly large) shape"
bad_ckpt meta-not-string "metadata 'format' is not a string"
bad_ckpt overlap "overlaps the previous tensor"
bad_ckpt config-huge "d_model 4611686018427387904 and n_layer 1 must lie in"
bad_ckpt config-wide "tensor 'backbone.embeddings.weight' does not have the shape \[16, 8\] that its config implies"
bad_ckpt extra-layer "holds tensor 'backbone.layers.1.norm.weight', which a 4 x 1 mamba model does not have"
bad_ckpt other-arch "lacks tensor 'model.embed_tokens.weight'"
expect_error "eval of a checkpoint with a tensor past the end" "ends at byte" limit $MD eval -i "$T/offsets-beyond.safetensors" "$T/g.fa"
# a 300-byte Mamba and Llama whose empty tensors claim a width of 2^40 - 1 (once a hang)
R=$MD_TESTS/fuzz/regress/fuzz_checkpoint
expect_error "a Mamba of width 2^40-1" "d_model 1099511627775 is out of range" limit $MD info "$R/mamba-huge-width-empty-tensors.safetensors"
expect_error "a Llama of width 2^40-1" "d_model 1099511627775 is out of range" limit $MD info "$R/llama-huge-width-empty-tensors.safetensors"

# ---- genome names, contigs and indexes ----
name255=$(printf 'n%.0s' $(seq 255))
printf '>%s\nACGT\n' "$name255" > "$T/n255.fa"
expect_ok "a 255-byte contig name" limit $MD view --lengths "$T/n255.fa"
printf '>%sx desc\nACGT\n' "$name255" > "$T/n256.fa"
expect_error "a 256-byte contig name" "n256\.fa: line 1: a contig name of 256 bytes \(names hold at most 255\)" limit $MD view "$T/n256.fa"

# A .fai that claims a 10 Gbp contig, or bases past the file's end: the
# index is ignored with a warning and the file read whole (its true length).
cp "$T/g.fa" "$T/i.fa"
printf 'chr1\t10000000000\t6\t60\t61\n' > "$T/i.fa.fai"
expect_ok "a .fai claiming a 10 Gbp contig" limit $MD view --lengths "$T/i.fa"
grep -q "chr1	2400" "$T/out" && ok || bad "the 10 Gbp claim was believed: $(cat "$T/out")"
grep -q "ignoring its index .*contig 'chr1' of 10000000000 bp, above the limit" "$T/err" && ok || bad "no warning: $(cat "$T/err")"
printf 'chr1\t2000000\t6\t60\t61\n' > "$T/i.fa.fai"
expect_ok "a .fai claiming bases past the end" limit $MD view --lengths "$T/i.fa"
grep -q "chr1	2400" "$T/out" && grep -q "contig 'chr1' of 2000000 bp at byte 6, past the end of the file" "$T/err" && ok || \
    bad "a .fai past the end: $(cat "$T/out" "$T/err")"
# A .fai with the right names and lengths but another line layout (the
# FASTA rewrapped after indexing): loading it notices.
cp "$T/g.fa" "$T/w.fa"
expect_ok "index a FASTA" limit $MD view --lengths "$T/w.fa"
awk 'NR == 1 { print; next } { s = s $0 } END { for (i = 1; i <= length(s); i += 50) print substr(s, i, 50) }' \
    "$T/g.fa" > "$T/w.fa"
touch "$T/w.fa.fai"
expect_error "a .fai of another line layout" "w\.fa: record 'chr1' starts at byte 6 with lines of 50 bases, but its index .*w\.fa\.fai says byte 6 and 60" \
    limit $MD sample -L 16 -n 1 "$T/w.fa"
# a bgzip FASTA whose .gzi claims 2^61 entries (htslib would allocate them)
bgzip -c "$T/g.fa" > "$T/b.fa.gz"
expect_ok "index a bgzip FASTA" limit $MD view --lengths "$T/b.fa.gz"
printf '\000\000\000\000\000\000\000\040' > "$T/b.fa.gz.gzi"
touch "$T/b.fa.gz.fai"
expect_ok "a .gzi claiming 2^61 entries" limit $MD view --lengths "$T/b.fa.gz"
grep -q "chr1	2400" "$T/out" && grep -q "size does not match its entry count" "$T/err" && ok || bad "bad .gzi: $(cat "$T/out" "$T/err")"

# 2bit: a header claiming the largest contig 2bit can express (2^32 - 1 bp)
# in 40 bytes, an index pointing past the end, 2^31 sequences.
printf '\103\047\101\032\000\000\000\000\001\000\000\000\000\000\000\000\004chr1\031\000\000\000\377\377\377\377\000\000\000\000\000\000\000\000\000\000\000\000' > "$T/huge.2bit"
expect_error "a 2bit contig of 2^32-1 bp in 40 bytes" "huge\.2bit: truncated 2bit file: the record of 'chr1' .* ends past the end of the file" limit $MD view --lengths "$T/huge.2bit"
printf '\103\047\101\032\000\000\000\000\001\000\000\000\000\000\000\000\004chr1\000\000\000\100' > "$T/past.2bit"
expect_error "a 2bit index past the end" "past\.2bit: truncated 2bit file: the record of 'chr1' starts at byte 1073741824, but the file has 25 bytes" limit $MD view "$T/past.2bit"
printf '\103\047\101\032\000\000\000\000\000\000\000\200\000\000\000\000' > "$T/many.2bit"
expect_error "a 2bit header claiming 2^31 sequences" "many\.2bit: truncated or corrupt 2bit file: the header claims 2147483648 sequences" limit $MD view "$T/many.2bit"

# BED: a 256-byte chromosome name, and a 2 MB line
printf 'chr1\t0\t100\ttrain\n%sx\t0\t100\ttrain\n' "$name255" > "$T/name.bed"
expect_error "a BED chromosome name of 256 bytes" "name\.bed:2: a chromosome name of 256 bytes" limit $MD sample -L 16 -n 1 --bed "$T/name.bed" --split train "$T/g.fa"
{ printf 'chr1\t0\t100\t'; head -c 2000000 /dev/zero | tr '\0' 'x'; printf '\n'; } > "$T/long.bed"
expect_error "a 2 MB BED line" "long\.bed:1: a line longer than 1048576 bytes" limit $MD sample -L 16 -n 1 --bed "$T/long.bed" --split train "$T/g.fa"

finish
