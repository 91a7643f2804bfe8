#!/usr/bin/env bash
# One device-machine session: configure and build (CUDA on, bindings/tools/samples off), run the
# GPU tests, compute-sanitizer memcheck + racecheck on a small GPU test subset, then the benchmark
# and the dense baseline, and merge them into one table. Logs go to $OUT (or ./bench-out).
# usage: bench/run_gpu.sh [tests|sanitize|bench|bench75|dense|quick|iter|runner|breakdown|ncuk|ncu|ncusrc|sass] ...
#        (default: tests sanitize bench)
set -o pipefail
OUT=${OUT:-$PWD/bench-out}
LOGS=/tmp/starkv-logs   # build logs stay on the machine: $OUT returns at most 8 files
mkdir -p "$OUT" "$LOGS"
B=${STARKV_BUILD:-/tmp/starkv-build}  # STARKV_BUILD: another build dir (e.g. for a snapshot tree)
steps=${*:-tests sanitize bench}
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=ON -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  > "$LOGS/configure.txt" 2>&1 || { tail -30 "$LOGS/configure.txt"; exit 1; }
ninja -C $B starkv_gpu_tests decode_bench llama_runner > "$LOGS/build.txt" 2>&1 \
  || { grep -E "error|Error" -A3 "$LOGS/build.txt" | head -60; exit 1; }
BENCH=$B/bench/decode_bench
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv | tee "$LOGS/gpu.txt"
for s in $steps; do
  case $s in
    tests) $B/tests/starkv_gpu_tests 2>&1 | tee "$OUT/gpu_tests.txt" | grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED|tests ran|Failure|error" | head -60 ;;
    sanitize)
      compute-sanitizer --tool memcheck --error-exitcode 1 $B/tests/starkv_gpu_tests \
        --gtest_filter='*CudaFoldWgmma*/0:*CudaFoldWgmma*/3:*CudaFoldSmallTile*/0:*CudaFoldSmallTile*/3:*CudaQuantized*/0:*CudaQuantized*/2:CudaBackend.Snapshots*:CudaBackend.Fork*:*CudaVsCpu16*/1:CudaBackend.DecodeStepPlans*:CudaBackend.QuantizedAppend*:*CudaSplitPath*/*:CudaBackend.ManyHeads*:*CudaDenseVsCpu*/1:*CudaDenseVsCpu*/3:CudaDenseLayers.DecodeStep*:*CudaWideRecon*/0:*CudaWideRecon*/2:*CudaDecodeSizedAppend*/1:*CudaDecodeSizedAppend*/4' \
        > "$OUT/memcheck.txt" 2>&1; echo "memcheck rc=$?"; tail -5 "$OUT/memcheck.txt"
      compute-sanitizer --tool racecheck --error-exitcode 1 $B/tests/starkv_gpu_tests \
        --gtest_filter='*CudaFoldWgmma*/1:*CudaFoldWgmma*/4:*CudaFoldSmallTile*:*CudaQuantized*/2:*CudaVsCpu16*/3:*CudaSplitPath*/*:*CudaDenseVsCpu*/1:*CudaDenseVsCpu*/3:*CudaWideRecon*/1:*CudaDecodeSizedAppend*/2' \
        > "$OUT/racecheck.txt" 2>&1; echo "racecheck rc=$?"; tail -5 "$OUT/racecheck.txt" ;;
    bench)
      $BENCH --out "$OUT/starkv_results.jsonl" 2>&1 | tee "$LOGS/bench.txt"
      PYTHONUNBUFFERED=1 python3 bench/sdpa_baseline.py --out "$OUT/sdpa_results.jsonl" 2>&1 | tee "$LOGS/sdpa.txt"
      python3 bench/merge_results.py "$OUT/starkv_results.jsonl" "$OUT/sdpa_results.jsonl" --gpu "$LOGS/gpu.txt" --md "$OUT/table.md" --peak ${PEAK_GBS:-4800} ;;
    bench75)  # the table of RESULTS.md (2026-12-01): 75% low-rank, fp16 and 4/3, all batches/contexts
      : > "$OUT/starkv_results.jsonl"
      for bits in fp16 4/3; do
        $BENCH --comp 75% --bits $bits --reps 20 --out /tmp/b75.jsonl 2>&1 | grep -v append; cat /tmp/b75.jsonl >> "$OUT/starkv_results.jsonl"
      done
      PYTHONUNBUFFERED=1 python3 bench/sdpa_baseline.py --reps 20 --out "$OUT/sdpa_results.jsonl" 2>&1 | tail -3
      python3 bench/merge_results.py "$OUT/starkv_results.jsonl" "$OUT/sdpa_results.jsonl" --gpu "$LOGS/gpu.txt" --md "$OUT/table.md" --peak ${PEAK_GBS:-4800} ;;
    dense)  # uncompressed layers ("0%"): the dense kernels, the low-rank ones (STARKV_NO_DENSE=1), SDPA
      : > "$OUT/starkv_results.jsonl"; : > "$OUT/sdpa_results.jsonl"
      for cfg in "llama3-8b 16 32768" "smollm2-135m 32 8192"; do set -- $cfg
        $BENCH --shape $1 --comp 0% --batch $2 --context $3 --reps 20 --out /tmp/d.jsonl 2>&1 | grep -v "^#"; cat /tmp/d.jsonl >> "$OUT/starkv_results.jsonl"
        STARKV_NO_DENSE=1 $BENCH --shape $1 --comp 0% --batch $2 --context $3 --reps 10 --out /tmp/d.jsonl 2>&1 | grep -v "^#" | sed 's/^/no-dense: /'; cat /tmp/d.jsonl >> "$OUT/starkv_results.jsonl"
        PYTHONUNBUFFERED=1 python3 bench/sdpa_baseline.py --shape $1 --batch $2 --context $3 --reps 20 --out /tmp/s.jsonl 2>&1 | tail -2; cat /tmp/s.jsonl >> "$OUT/sdpa_results.jsonl"
      done
      python3 bench/merge_results.py "$OUT/starkv_results.jsonl" "$OUT/sdpa_results.jsonl" --gpu "$LOGS/gpu.txt" --md "$OUT/table.md" --peak ${PEAK_GBS:-4800} ;;
    breakdown)  # per-kernel time of one decode step (no clock control), b16/32K 75%, 4 configurations
      for cfg in "llama2-7b fp16" "llama3-8b fp16" "llama2-7b 4/3" "llama3-8b 4/3"; do set -- $cfg
        ncu --clock-control none --kernel-name regex:"fold|decode_values|combine|decode_attention|dense" \
          --launch-skip 3 --launch-count 3 --metrics gpu__time_duration.sum \
          $BENCH --quick --reps 1 --shape $1 --comp 75% --bits $2 --out /tmp/n.jsonl 2>/dev/null |
          grep -E "^  [a-zA-Z_].*\(|gpu__time_duration" | paste - - |
          sed -E 's/^.*::([A-Za-z_0-9]+)(<[^>]*>)?\(.*gpu__time_duration.sum +([a-z]+) +([0-9.,]+).*/\1\2 \4 \3/' |
          sed "s|^|$1 $2: |"
      done ;;
    ncuk)  # per-kernel duration and limits of one decode step (score, value, combine kernels)
      for cfg in "llama2-7b fp16" "llama3-8b 4/3"; do set -- $cfg
        ncu --clock-control none --kernel-name regex:"fold|decode_values|combine|decode_attention" --launch-skip 3 --launch-count 3 \
          --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
          --metrics smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio,smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio,smsp__average_warps_issue_stalled_short_scoreboard_per_issue_active.ratio,smsp__average_warps_issue_stalled_math_pipe_throttle_per_issue_active.ratio,smsp__average_warps_issue_stalled_mio_throttle_per_issue_active.ratio,smsp__average_warps_issue_stalled_wait_per_issue_active.ratio,smsp__average_warps_issue_stalled_lg_throttle_per_issue_active.ratio,smsp__average_warps_issue_stalled_dispatch_stall_per_issue_active.ratio,smsp__average_warps_issue_stalled_not_selected_per_issue_active.ratio,smsp__inst_executed.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active \
          $BENCH --quick --reps 1 --shape $1 --comp 75% --bits $2 --out /tmp/ncu.jsonl > "$OUT/ncuk_${1}_${2/\//-}.txt" 2>&1; echo "ncu rc=$?"
        grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|Compute \(SM\) Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy|Grid Size|Dynamic Shared|Issue Slots|No Eligible|Stall|stalled|inst_executed|hmma|issue_active|Warp Cycles Per Issued" "$OUT/ncuk_${1}_${2/\//-}.txt" | head -90
      done ;;
    ncu)
      ncu --kernel-name regex:decode_attention --launch-skip 3 --launch-count 1 \
        --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \
        --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
        $BENCH --quick --reps 1 --shape llama3-8b --comp 75% --bits 4/3 --out /tmp/ncu.jsonl \
        > "$OUT/ncu.txt" 2>&1; echo "ncu rc=$?"
      grep -E "Duration|Throughput|Registers|Achieved Occupancy|Theoretical Occupancy|Stall|Warp Cycles|Block Limit|Issue Slots|Executed Ipc|Dynamic Shared" "$OUT/ncu.txt" | head -60 ;;
    ncusrc)
      ncu --kernel-name regex:decode_attention --launch-skip 3 --launch-count 1 \
        --section SourceCounters --section WarpStateStats --section InstructionStats --print-details all \
        $BENCH --quick --reps 1 --shape llama3-8b --comp 75% --bits 4/3 --out /tmp/ncu.jsonl \
        > "$OUT/ncu_details.txt" 2>&1; echo "ncu details rc=$?"
      ncu --kernel-name regex:decode_attention --launch-skip 3 --launch-count 1 \
        --section SourceCounters --page source --print-source sass --csv \
        $BENCH --quick --reps 1 --shape llama3-8b --comp 75% --bits 4/3 --out /tmp/ncu.jsonl \
        > "$OUT/ncu_sass.csv" 2>&1; echo "ncu sass rc=$?"; ls -la "$OUT" ;;
    sass)  # disassembly of the attention kernels (this machine has cuobjdump; the dev box does not)
      for f in decode_attention fold_scores split_values; do cuobjdump -sass $B/CMakeFiles/starkv_objects.dir/kernels/$f.cu.o > "$OUT/$f.sass" 2>&1; echo "$f sass rc=$? $(wc -c < "$OUT/$f.sass") bytes"; done ;;
    iter)  # development loop: the GPU tests, then b16/32K at 75% (fp16, 4/3), new path and old
      $B/tests/starkv_gpu_tests --gtest_filter="${ITER_FILTER:--CudaProfileBuilding.*}" 2>&1 | tee "$OUT/gpu_tests.txt" | grep -E "^\[  (PASSED|FAILED) |^\[  FAILED|tests ran|Failure|rel_error|Which is|error" | head -60
      for bits in fp16 4/3; do
        $BENCH --quick --comp 75% --bits $bits --reps 15 --out /tmp/it.jsonl 2>&1 | grep -v "^#" | tee -a "$OUT/iter.txt"
        [ -n "$ITER_OLD" ] && STARKV_NO_FOLD=1 $BENCH --quick --comp 75% --bits $bits --reps 10 --out /tmp/it_old.jsonl 2>&1 | grep -v "^#" | sed 's/^/old: /' | tee -a "$OUT/iter.txt"
      done
      [ -n "$ITER_SDPA" ] && PYTHONUNBUFFERED=1 python3 bench/sdpa_baseline.py --quick --out "$OUT/sdpa_quick.jsonl" 2>&1 | tee -a "$OUT/iter.txt" ;;
    runner)  # the model runner on CUDA: GPU vs CPU logits, then end-to-end decode throughput.
      # SmolLM2's shape with random weights (this machine has no checkpoint) and the real SmolLM2
      # profiles from PROFILES (default .device/profiles, carried here by the caller).
      R=$B/samples/model_demo/llama_runner M=samples/model_demo/synthetic/smollm2-135m P=${PROFILES:-.device/profiles}
      $R compare --synthetic-weights 7 --model-dir $M --max-tokens 256 --kv dense 2>&1 | tail -1 | tee -a "$OUT/runner.txt"
      for p in r75-fp16-soft-calib r75-3_4-bit-soft-calib; do
        $R compare --synthetic-weights 7 --model-dir $M --max-tokens 256 --kv starkv:$P/$p.starkv --max-rel-rms 1 2>&1 | tail -1 | tee -a "$OUT/runner.txt"
      done
      SYNTHETIC=7 CONTEXT=${CONTEXT:-8192} BUDGET_GIB=${BUDGET_GIB:-16} scripts/gpu_throughput.sh $R $M "$OUT/throughput" \
        $P/r75-fp16-soft-calib.starkv $P/r75-3_4-bit-soft-calib.starkv 2>&1 | grep -E "^(==|result|memory|throughput|\|)" ;;
    quick)
      $BENCH --quick --out "$OUT/starkv_results.jsonl" 2>&1 | tee "$LOGS/bench.txt"
      PYTHONUNBUFFERED=1 python3 bench/sdpa_baseline.py --quick --out "$OUT/sdpa_results.jsonl" 2>&1 | tee "$LOGS/sdpa.txt"
      python3 bench/merge_results.py "$OUT/starkv_results.jsonl" "$OUT/sdpa_results.jsonl" --gpu "$LOGS/gpu.txt" --md "$OUT/table.md" --peak ${PEAK_GBS:-4800} ;;
  esac
done
