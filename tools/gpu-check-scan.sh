#!/usr/bin/env bash
# Checks and times the CUDA selective scan ON THE GPU MACHINE.
#
# Here (no GPU needed):   MD_GPU_BUILD=build-cuda tools/gpu-bundle.sh
# There, from the repository root, with gpu-bundle/ carried along:
#   tools/gpu-check-scan.sh              all stages
#   STAGES="check bench" tools/gpu-check-scan.sh
#
# Stages, in this order:
#   check      tests/test_gpu_scan: every output and gradient against the CPU
#              op (f64) on fresh random inputs, poisoned outputs, saved vs
#              recomputed states, determinism, streaming state
#   bench      mambadna bench scan --shape all --dtype both (REPS runs, 10)
#   memcheck   compute-sanitizer memcheck on the small shapes
#   racecheck  compute-sanitizer racecheck on the small shapes
#   mutants    (not by default) gpu-bundle/bin/mutant* -- test_gpu_scan built
#              against deliberately broken kernels -- must FAIL (see
#              kernels/NOTES-scan.md for how they are made)
#   ncu        (not by default) Nsight Compute on one fwd+bwd of S1 (SHAPE),
#              per dtype: speed of light, occupancy, warp stalls, pipes
# Logs go to $OUT (./gpu-check-out when unset); a short summary is printed
# last. Exits non-zero when any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check-out}
stages=${STAGES:-check bench memcheck racecheck}
reps=${REPS:-10}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/gpu-bundle/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
bin=gpu-bundle/bin
[[ -x $bin/test_gpu_scan && -x $bin/mambadna ]] || { echo "[E::gpu-check-scan] no bundle: run tools/gpu-bundle.sh first" >&2; exit 2; }

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw,memory.used \
    --format=csv >"$out/gpu.txt" 2>&1
"$bin/mambadna" version >>"$out/gpu.txt" 2>&1

declare -A rc secs
run_stage() {   # name timeout command...
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    rc[$name]=$?
    secs[$name]=$((SECONDS - t0))
}

for s in $stages; do
    case $s in
    check) run_stage check 300 "$bin/test_gpu_scan" ;;
    bench) run_stage bench 200 "$bin/mambadna" bench scan --shape all --dtype both --reps "$reps" -o "$out/bench.tsv" ;;
    memcheck) run_stage memcheck 120 env MD_GPU_SCAN_QUICK=1 compute-sanitizer --tool memcheck --error-exitcode 9 \
        "$bin/test_gpu_scan" ;;
    racecheck) run_stage racecheck 120 env MD_GPU_SCAN_QUICK=1 compute-sanitizer --tool racecheck --error-exitcode 9 \
        "$bin/test_gpu_scan" ;;
    mutants)
        for m in "$bin"/mutant*; do
            n=$(basename "$m")
            run_stage "$n" 120 env MD_GPU_SCAN_QUICK=1 "$m"
        done ;;
    ncu)
        for d in ${NCU_DTYPES:-bf16 f32}; do
            run_stage ncu_$d 200 ncu --clock-control none --section SpeedOfLight --section Occupancy \
                --section WarpStateStats --section ComputeWorkloadAnalysis --section SchedulerStats \
                --section MemoryWorkloadAnalysis -k regex:'lane_fwd_kernel|summary_kernel|main_kernel|prop_' \
                --launch-count 10 "$bin/mambadna" bench scan --shape "${SHAPE:-S1}" --dtype $d --reps 1 -o /dev/null
        done ;;
    *) echo "[E::gpu-check-scan] unknown stage '$s'" >&2; exit 2 ;;
    esac
done

echo "== $(head -2 "$out/gpu.txt" | tail -1)"
fail=0
for s in $stages; do
    [[ $s == mutants ]] && { for m in "$bin"/mutant*; do n=$(basename "$m")
        echo "== $n: rc=${rc[$n]} ($([[ ${rc[$n]} == 1 ]] && echo caught || echo NOT CAUGHT))"
        grep -m 3 "^FAIL" "$out/$n.log" | cut -c1-160; done; continue; }
    [[ $s == ncu ]] && { for d in ${NCU_DTYPES:-bf16 f32}; do echo "== ncu_$d: rc=${rc[ncu_$d]} (${secs[ncu_$d]}s)"
        grep -E "Context 1|Duration|Issue Slots Busy|Executed Ipc Active|Achieved Occupancy|Registers Per|Memory Throughput" \
            "$out/ncu_$d.log" | sed 's/^ *//' | cut -c1-110 | head -n 80; done; continue; }
    echo "== $s: rc=${rc[$s]} (${secs[$s]}s)"
    [[ ${rc[$s]} == 0 ]] || fail=1
    case $s in
    check) grep -E "^FAIL|passed|skipped" "$out/check.log" | tail -n 12
           awk '{ if (length($0) > 200) print substr($0, 1, 200) "..."; else print }' "$out/check.log" | grep -v "^FAIL\|^ " | head -n 40 ;;
    memcheck | racecheck) grep -E "ERROR SUMMARY|RACECHECK SUMMARY|passed" "$out/$s.log" | tail -n 3 ;;
    bench) [[ -f $out/bench.tsv ]] && cat "$out/bench.tsv"; grep -E "^\[E|copy bandwidth" "$out/bench.log" ;;
    esac
done
exit $fail
