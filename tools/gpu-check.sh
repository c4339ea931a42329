#!/usr/bin/env bash
# Checks the CUDA backend ON THE GPU MACHINE: every op against the CPU
# backend, a whole training step against the CPU, a short pretrain run on
# the GPU beside the same run on the CPU, and `bench train`.
#
# Here (nvcc, no GPU needed):
#   tools/gpu-bundle.sh                  # -> gpu-bundle/ (git-ignored)
#   mkdir -p gpu-bundle/data && cp ../shared/data/human/hg38_chr2_1-2333275.fa.gz* gpu-bundle/data/
# There, from the repository root, with gpu-bundle carried along:
#   tools/gpu-check.sh                   all stages
#   STAGES="ops train" tools/gpu-check.sh
#
# Stages:
#   ops       tests/test_gpu_ops: every backend op vs the CPU backend (fp32), then
#             tests/test_gpu_bf16 and test_gpu_bf16_blocks: the bf16 table's bf16
#             storage ops (Mamba; Hyena and Transformer++) vs the CPU's fp32 ops
#   train     tests/test_gpu_train: loss, every gradient, one AdamW step vs the CPU
#   hyena     tests/test_gpu_hyena: the Hyena ops vs the CPU backend
#   scan      tests/test_gpu_scan (MD_GPU_SCAN_QUICK=1): the scan kernels alone
#   pretrain  STEPS (200) steps of the 1.4M preset at L = 1024, B = 8 on the hg38
#             chunk, -x cuda, with the same run on the CPU (-x cpu) in the
#             background from the start (cut at CPU_LIMIT seconds, 300); both
#             validate every 50 steps and write metrics TSVs
#   long      LONG_STEPS (2000) steps of the same model on the GPU, fp32 and
#             --precision bf16, validating every 200 steps: the bf16 curve
#             against the fp32 one (which tracks the CPU: stage pretrain)
#   bench     mambadna bench train for a few presets and lengths, fp32 and bf16
#   classify  tests/test_gpu_classify, then `classify -x cuda` throughput: a
#             1.4M Mamba classifier fine-tuned briefly on simulated apes,
#             READS (200000) simulated reads of 1 kb, one strand and both
#   apes      tools/great-apes.sh -p gpu -x cuda (its settings from the
#             environment, e.g. LENGTHS="10 12 14 16" BATCH=16) into $OUT/apes
#   memcheck  compute-sanitizer memcheck on test_gpu_ops (not by default)
#   ctx       long context (not by default): L = 2^20, B = 1, --recompute: 4
#             pretrain steps of 1.4M and 7M (7M also in bf16), and bench train
#             of the same, plus 1.4M without --recompute (~1 min, 90 GiB)
# Logs go to $OUT (./gpu-check-out when unset); a summary is printed last.
# Exits non-zero when a stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check-out}
stages=${STAGES:-ops train scan pretrain long bench}
steps=${STEPS:-200}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/gpu-bundle/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
bin=gpu-bundle/bin
genome=gpu-bundle/data/hg38_chr2_1-2333275.fa.gz
[[ -x $bin/test_gpu_ops && -x $bin/mambadna ]] || { echo "[E::gpu-check] no bundle: run tools/gpu-bundle.sh first" >&2; exit 2; }

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv >"$out/gpu.txt" 2>&1
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

train_args=(--preset 1.4M -L 1024 -B 8 --steps "$steps" --val-fraction 0.05 --val-every 50 --val-windows 64
            --log-every 10 --seed 7)
cpu_pid=
if [[ " $stages " == *" pretrain "* && -f $genome ]]; then
    # the CPU reference runs meanwhile on most of the cores
    timeout "${CPU_LIMIT:-300}" "$bin/mambadna" pretrain "${train_args[@]}" -x cpu -t 12 \
        --metrics "$out/pretrain_cpu.tsv" -o /tmp/md_cpu.safetensors "$genome" >"$out/pretrain_cpu.log" 2>&1 &
    cpu_pid=$!
fi

for s in $stages; do
    case $s in
    ops) run_stage ops 200 sh -c "$bin/test_gpu_ops && $bin/test_gpu_bf16 && $bin/test_gpu_bf16_blocks" ;;
    train) run_stage train 300 env OMP_NUM_THREADS=4 "$bin/test_gpu_train" ;;
    hyena) run_stage hyena 200 "$bin/test_gpu_hyena" ;;
    scan) run_stage scan 200 env MD_GPU_SCAN_QUICK=1 "$bin/test_gpu_scan" ;;
    pretrain)
        if [[ ! -f $genome ]]; then echo "no $genome" >"$out/pretrain.log"; rc[pretrain]=2; secs[pretrain]=0; continue; fi
        run_stage pretrain 300 "$bin/mambadna" pretrain "${train_args[@]}" -x cuda -t 2 \
            --metrics "$out/pretrain_gpu.tsv" -o /tmp/md_gpu.safetensors "$genome"
        [[ ${rc[pretrain]} == 0 ]] && run_stage eval 120 "$bin/mambadna" eval -i /tmp/md_gpu.safetensors -x cuda \
            --val-fraction 0.05 "$genome" ;;
    long)
        if [[ ! -f $genome ]]; then echo "no $genome" >"$out/long.log"; rc[long]=2; secs[long]=0; continue; fi
        t0=$SECONDS
        for p in fp32 bf16; do
            timeout 200 "$bin/mambadna" pretrain --preset 1.4M -L 1024 -B 8 --steps "${LONG_STEPS:-2000}" \
                --val-fraction 0.05 --val-every 200 --val-windows 256 --log-every 100 --seed 7 -x cuda -t 2 \
                --precision $p --metrics "$out/long_$p.tsv" -o /tmp/md_long_$p.safetensors "$genome" >"$out/long_$p.log" 2>&1
            rc[long]=$?
            [[ ${rc[long]} == 0 ]] || break
        done
        secs[long]=$((SECONDS - t0)) ;;
    bench)
        : >"$out/bench_train.tsv"
        t0=$SECONDS
        for cfg in "1.4M 1024 8 8192" "1.4M 1024 64 65536" "1.4M 16384 4 65536" "7M 1024 8 8192" "7M 4096 16 65536"; do
            set -- $cfg
            for p in fp32 bf16; do
                timeout 120 "$bin/mambadna" bench train -x cuda --precision $p --preset "$1" -L "$2" -B "$3" \
                    --tokens-per-step "$4" --steps 10 --warmup 2 >>"$out/bench_train.tsv" 2>>"$out/bench.log"
                rc[bench]=$?
                [[ ${rc[bench]} == 0 ]] || break 2
            done
        done
        secs[bench]=$((SECONDS - t0)) ;;
    classify)
        t0=$SECONDS
        g=/tmp/md_cls_genomes
        (
            "$bin/test_gpu_classify" &&
            "$bin/mambadna" simulate genomes -q -f 2bit --chroms 3 -l 1M --div-scale 3 -o "$g" &&
            "$bin/mambadna" finetune -x cuda --from-scratch --preset 1.4M -L 1024 -B 64 --epochs 1 \
                --steps-per-epoch 50 --val-contigs chr2 --test-contigs chr3 -o /tmp/md_cls.safetensors \
                human="$g/human.2bit" chimpanzee="$g/chimpanzee.2bit" bonobo="$g/bonobo.2bit" \
                gorilla="$g/gorilla.2bit" orangutan="$g/orangutan.2bit" &&
            "$bin/mambadna" simulate reads -q -n "${READS:-200000}" -l 1000 -o /tmp/md_reads.fa "$g"/*.2bit &&
            for strands in "" --both-strands; do
                "$bin/mambadna" classify -x cuda $strands -i /tmp/md_cls.safetensors --summary /tmp/md_sum.tsv \
                    -o /tmp/md_cls.tsv /tmp/md_reads.fa || exit 1
                cat /tmp/md_sum.tsv
            done &&
            "$bin/mambadna" classify -x cpu -t 16 --both-strands -i /tmp/md_cls.safetensors -o /tmp/md_cls_cpu.tsv \
                <(head -n 8000 /tmp/md_reads.fa) &&
            # the CPU's reference arithmetic is fp32: compare with the GPU's fp32 (bf16 is the GPU's default)
            "$bin/mambadna" classify -x cuda --precision fp32 --both-strands -i /tmp/md_cls.safetensors \
                -o /tmp/md_cls_f32.tsv <(head -n 8000 /tmp/md_reads.fa) &&
            paste <(grep -v '^#' /tmp/md_cls_cpu.tsv) <(grep -v '^#' /tmp/md_cls_f32.tsv) | awk -F '\t' '
                NR > 1 { n++; same += ($3 == $(3 + NF / 2)); d = $4 - $(4 + NF / 2); if (d < 0) d = -d; if (d > w) w = d }
                END { printf("GPU and CPU agree on %d of %d labels; largest probability difference %.2g\n", same, n, w) }'
        ) >"$out/classify.log" 2>&1
        rc[classify]=$?
        secs[classify]=$((SECONDS - t0)) ;;
    apes)
        run_stage apes "${APES_LIMIT:-500}" tools/great-apes.sh -p gpu -x cuda -t 16 -b "$bin/mambadna" -o "$out/apes" ;;
    memcheck) run_stage memcheck 300 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/test_gpu_ops" ;;
    ctx)
        if [[ ! -f $genome ]]; then echo "no $genome" >"$out/ctx.log"; rc[ctx]=2; secs[ctx]=0; continue; fi
        : >"$out/ctx.log"
        : >"$out/ctx_bench.tsv"
        t0=$SECONDS
        rc[ctx]=0
        for cfg in "1.4M fp32" "7M fp32" "7M bf16"; do
            set -- $cfg
            timeout 150 "$bin/mambadna" pretrain -x cuda --preset "$1" --precision "$2" -L 1048576 -B 1 --recompute \
                --steps 4 --log-every 1 --val-fraction 0.5 --val-every 4 --val-windows 1 \
                -o /tmp/md_ctx.safetensors "$genome" >>"$out/ctx.log" 2>&1 || rc[ctx]=1
        done
        for cfg in "1.4M fp32 --recompute" "1.4M fp32" "7M fp32 --recompute" "7M bf16 --recompute"; do
            set -- $cfg
            timeout 120 "$bin/mambadna" bench train -x cuda --preset "$1" --precision "$2" -L 1048576 -B 1 ${3:-} \
                --steps 3 --warmup 1 >>"$out/ctx_bench.tsv" 2>>"$out/ctx.log" || rc[ctx]=1
        done
        secs[ctx]=$((SECONDS - t0)) ;;
    *) echo "[E::gpu-check] unknown stage '$s'" >&2; exit 2 ;;
    esac
done
if [[ -n $cpu_pid ]]; then wait "$cpu_pid"; rc[pretrain_cpu]=$?; fi

echo "== $(sed -n 2p "$out/gpu.txt")"
fail=0
for s in $stages; do
    echo "== $s: rc=${rc[$s]:-?} (${secs[$s]:-?}s)"
    [[ ${rc[$s]:-1} == 0 ]] || fail=1
    case $s in
    ops) grep -E "^FAIL" "$out/ops.log" | head -n 8 | cut -c1-200; sed -n '/^op /,$p' "$out/ops.log" ;;
    train) grep -E "^FAIL" "$out/train.log" | head -n 8 | cut -c1-200; grep -vE "^  |^FAIL" "$out/train.log" | cut -c1-400 ;;
    hyena) grep -E "^FAIL" "$out/hyena.log" | head -n 8 | cut -c1-200; sed -n '/^op /,$p' "$out/hyena.log" ;;
    scan) grep -E "^FAIL|passed" "$out/scan.log" | tail -n 4 ;;
    classify) grep -E "FAIL|passed|reads/s|E::|agree|accuracy|Real time" "$out/classify.log" | cut -c1-250 | tail -n 20 ;;
    apes) grep -E "great-apes|E::" "$out/apes.log" | tail -n 20; cat "$out/apes/table.md" 2>/dev/null ;;
    pretrain)
        echo "-- GPU (rc ${rc[pretrain]:-?}), CPU (rc ${rc[pretrain_cpu]:-?}, cut at ${CPU_LIMIT:-300}s): step, loss, val"
        for d in gpu cpu; do
            [[ -f $out/pretrain_$d.tsv ]] && { echo "[$d]"; grep -v '^#' "$out/pretrain_$d.tsv" | awk 'NR == 1 || NR % 4 == 2' | cut -f1-8 | head -n 14; }
        done
        grep -E "^\[E|device|tokens/s|done|val" "$out/pretrain.log" | tail -n 6 | cut -c1-200
        [[ -f $out/eval.log ]] && { echo "-- eval rc=${rc[eval]:-?}"; tail -n 4 "$out/eval.log" | cut -c1-200; } ;;
    long)
        echo "-- validation loss every 200 steps: step, fp32, bf16"
        paste <(awk -F'\t' '!/^#/ && $1 != "step" && $8 != "NA" {print $1 "\t" $8}' "$out/long_fp32.tsv" 2>/dev/null) \
              <(awk -F'\t' '!/^#/ && $1 != "step" && $8 != "NA" {print $8}' "$out/long_bf16.tsv" 2>/dev/null)
        grep -h -E "^\[E|tokens/s, ETA 0s" "$out"/long_*.log | tail -n 4 | cut -c1-200 ;;
    bench) cat "$out/bench_train.tsv" | awk 'NR == 1 || !/^preset/'; grep -E "^\[E" "$out/bench.log" | head -n 3 ;;
    memcheck) grep -E "ERROR SUMMARY|passed" "$out/memcheck.log" | tail -n 2 ;;
    ctx)
        grep -E "^\[E|log_plan|step [0-9]+/|validation" "$out/ctx.log" | cut -c1-300
        awk 'NR == 1 || !/^preset/' "$out/ctx_bench.tsv" ;;
    esac
done
tar czf "$out.tgz" -C "$out" . && mv "$out.tgz" "$out/all.tgz"
exit $fail
