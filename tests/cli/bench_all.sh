# mambadna bench all on the CPU (its GPU groups: bench_all_gpu.sh): -x cpu
# --quick runs issue #3's CPU figure through the whole path (table, JSON
# record with date, git revision and command, the time budget), and each
# misuse gives one clear error before any work.
. "$MD_TESTS/clilib.sh"

expect_ok "help" $MD bench all -h
for o in --only --quick --time-budget --json; do
    grep -q -- "$o" "$T/out" && ok || bad "help lists $o"
done
expect_ok "listed under bench -h" $MD bench -h
grep -q "^  all " "$T/out" && ok || bad "bench -h lists all"

expect_ok "cpu quick run" $MD bench all -x cpu -t 1 --quick -o "$T/b.json"
grep -q "^# git_revision: " "$T/out" && grep -q "^# --quick" "$T/out" && ok || bad "table head: $(head -n 8 "$T/out")"
[ "$(grep -c '^cpu ' "$T/out")" -eq 2 ] && ok || bad "two cpu rows: $(cat "$T/out")"
grep -q "^# goals met: 0 of 0$" "$T/out" && ok || bad "a quick run judges no goal: $(tail -n 1 "$T/out")"
# the record: what the table shows, plus when, where and from which revision
rev=$($MD version | awk '$1 == "git:" { print $2 }')
if command -v python3 >/dev/null; then
    python3 - "$T/b.json" "$rev" "$MD" <<'PY' && ok || bad "JSON record"
import json, re, sys
d = json.load(open(sys.argv[1]))
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", d["date"]), d["date"]
assert d["git_revision"] == sys.argv[2], (d["git_revision"], sys.argv[2])
assert d["mambadna"]["command"].startswith(sys.argv[3] + " bench all -x cpu"), d["mambadna"]
assert d["quick"] is True and d["goals_judged"] == 0
cells = d["cells"]
assert [c["group"] for c in cells] == ["cpu", "cpu"], cells
for c in cells:
    assert c["state"] == "measured" and c["value"] > 0 and c["status"] == "not judged", c
    assert abs(c["ratio"] - c["value"] / c["reference"]) < 1e-6 * c["ratio"], c
    assert c["settings"]["L"] == 64 and c["settings"]["threads"] == 1, c
assert cells[0]["reference"] == 2000 and cells[0]["goal_ratio"] == 1
assert cells[1]["reference"] == cells[1]["measurements"]["blas_bound_tokens_per_s"]
PY
fi

expect_ok "json to stdout" $MD bench all -x cpu -t 1 --quick --json
if command -v python3 >/dev/null; then
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert len(d["cells"]) == 2' "$T/out" \
        && ok || bad "--json prints the record: $(head -c 300 "$T/out")"
fi

# a spent budget: the cell is recorded as skipped, and counted as not met
expect_ok "time budget" $MD bench all -x cpu -t 1 --time-budget 1e-9 -o "$T/s.json"
grep -E -q "^cpu +1.4M L=1024 B=4 .* skipped .*NOT MET .*time budget" "$T/out" && ok || bad "skipped row: $(cat "$T/out")"
grep -q '"state": "skipped"' "$T/s.json" && ok || bad "skipped in the record"

expect_error "no GPU" "bench all: (no GPU is visible|this mambadna was built without CUDA).*-x cpu" \
    env CUDA_VISIBLE_DEVICES= $MD bench all --quick
expect_error "unknown group" "--only: unknown group 'foo'" $MD bench all -x cpu --only cpu,foo
expect_error "GPU group on the CPU" "--only: group 'scan' runs on a GPU" $MD bench all -x cpu --only cpu,scan
expect_error "bad budget" "time-budget" $MD bench all -x cpu --time-budget -1
expect_error "stray argument" "takes no arguments" $MD bench all -x cpu foo
expect_error "unwritable record" "no/such/dir" $MD bench all -x cpu -t 1 --quick -o "$T/no/such/dir/b.json"
no_file "no record left" "$T/no/such/dir/b.json"
finish
