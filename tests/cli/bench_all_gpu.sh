# mambadna bench all --quick on a GPU (skipped without one): every group
# runs, every cell is measured, and the JSON record names the GPU, its
# driver and CUDA, and the revision built.
. "$MD_TESTS/clilib.sh"

if ! $MD version | grep -Eq '^gpus: +[1-9]'; then
    echo "skipped: no GPU"
    rm -rf "$T"
    exit 77
fi
expect_ok "quick suite" $MD bench all --quick -o "$T/g.json"
rev=$($MD version | awk '$1 == "git:" { print $2 }')
python3 - "$T/g.json" "$rev" <<'PY' && ok || bad "JSON record of the quick suite"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["git_revision"] == sys.argv[2]
assert d["gpu"]["name"] and d["gpu"]["copy_gbps"] > 100 and d["driver"] and d["cuda"], d
assert d["quick"] is True and d["goals_judged"] == 0
groups = {c["group"] for c in d["cells"]}
assert groups == {"scan", "mamba", "hyena", "transformer", "memory", "classify"}, groups
for c in d["cells"]:
    assert c["state"] == "measured" and c["value"] > 0, c
scan = [c for c in d["cells"] if c["group"] == "scan"][0]
m = scan["measurements"]
assert m["floor_multiple"] >= 1 and m["fwdbwd_ms"] == scan["value"], m
PY
grep -q "^# goals met: 0 of 0$" "$T/out" && ok || bad "quick: no goal judged"
finish
