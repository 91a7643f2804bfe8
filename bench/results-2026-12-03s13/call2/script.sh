#!/usr/bin/env bash
# Session 13, call 2: main f52bb6c (one-LOP3 dequant alone): whole GPU suite, sanitizers, ncu source
# counters of the Llama-2-like 4/3 fold and value kernels.
set -o pipefail
B=/tmp/starkv-build; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp .device/c42.sh $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1
ninja -C $B -j16 starkv_gpu_tests decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
el built
timeout 200 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED" $LOG/tests.txt | head -20
el tests
for k in fold_scores decode_values; do
ncu --kernel-name regex:$k --launch-skip 3 --launch-count 1 --section SourceCounters --section WarpStateStats --section InstructionStats --page source --print-source sass --csv \
  $B/bench/decode_bench --shape llama2-7b --comp 75% --bits 4/3 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl > $OUT/${k}_sass.csv 2>$LOG/ncu_$k.err
echo "$k rc=$? $(wc -c < $OUT/${k}_sass.csv)"
python3 bench/ncu_sass_profile.py $OUT/${k}_sass.csv --top 25 > $LOG/${k}_opcodes.txt 2>&1; head -4 $LOG/${k}_opcodes.txt
done
el ncu
compute-sanitizer --tool memcheck --error-exitcode 1 $B/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*:*CudaQuantized*:*CudaSplitPath*:*CudaLongSplit*/2:*CudaFoldWgmma*:*CudaFoldSmallTile*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -1 $LOG/memcheck.txt
compute-sanitizer --tool racecheck --error-exitcode 1 $B/tests/starkv_gpu_tests --gtest_filter='*CudaQuantized*/1:*CudaQuantized*/2:*CudaSplitPath*:*CudaLongSplit*/2:*CudaWideRecon*:*CudaFoldWgmma*/1:*CudaFoldSmallTile*' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -1 $LOG/racecheck.txt
el sanitizers
