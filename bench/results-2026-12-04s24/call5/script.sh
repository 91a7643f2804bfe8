#!/usr/bin/env bash
# Session 24 call 5. Trees: base = main adf34b5's kernels/ and src/cuda/; new = the working tree: the split merge picks
# its schedule by the plan's largest item count per query: one thread per channel over all splits below 32 (main's),
# 8 split lanes x 32 channels with block-reduced statistics and shared weights from 32 on (call 4: 4 lanes x 64 for every
# batch won b1 -22% but lost b16 +3% on its barriers). Then main's grid for the README with SDPA in the same call.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs5; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs5.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels $S0/src/cuda && tar xf .device/base_kernels_srccuda_adf34b5.tar -C $S0
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
( ninja -C $B0 -j6 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j10 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
wait
grep -E " error" -A3 $LOG/build*.txt | head -30
el built
timeout 150 $B1/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "new tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head -20
el tests
# Which merge schedule each split-path test runs (kernel instance names).
timeout 90 ncu --kernel-name regex:merge_split --metrics gpu__time_duration.sum $B1/tests/starkv_gpu_tests --gtest_filter='*LongContextSplits*:*LongSplit*:*CudaVsCpu16*' 2>&1 | grep -oE "merge_split_values_kernel<[0-9]+>|\[ RUN      \] [^ ]+" | uniq -c > $LOG/merge_instances_by_test.txt; cat $LOG/merge_instances_by_test.txt | head -20
el instances
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = new ] && bin=$B1/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context $5 --reps 20 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b 75% fp16 1 32768" "llama3-8b 75% 4/3 1 32768" "llama2-7b 75% fp16 1 32768" "llama2-7b 75% 4/3 1 32768" "llama3-8b 75% fp16 1 131072" "llama3-8b 75% fp16 1 4096" \
           "llama3-8b 75% fp16 16 32768" "llama2-7b 75% fp16 16 32768" "llama2-7b 75% 4/3 16 32768" "llama3-8b 75% fp16 64 32768"; do for m in base new; do run $m $c; done; done
done
cat $LOG/ab.txt
el ab
M="gpu__time_duration.sum,launch__grid_size"
for c in "llama3-8b 1" "llama2-7b 1" "llama2-7b 16"; do set -- $c; f=$LOG/ncu_new_${1}_b$2.txt
  timeout 120 ncu --clock-control none --kernel-name regex:"fold_scores|values_kernel" --launch-count 16 --metrics $M $B1/bench/decode_bench --shape $1 --comp 75% --bits fp16 --batch $2 --context 32768 --reps 1 --out /tmp/z.jsonl > $f 2>&1
  echo "== new $c"; grep -E "^  [a-zA-Z_:<>].*\(|gpu__time" $f | tail -8 | sed -e 's/(LayerView.*) (/ (/' -e 's/, Context.*//' | paste - - | awk '{print $1, $2, $NF}'
done 2>&1 | tee $LOG/ncu_summary.txt
el ncu
left 330 && timeout 120 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*LongContextSplits*:*LongSplit*:*SplitPath*:*CudaVsCpu16*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 400 && timeout 90 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*LongContextSplits*:*CudaVsCpu16*/0' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el sanitizers
B=$B1
left 470 && timeout 100 $B/bench/decode_bench --quick --reps 10 --out $LOG/starkv_quick.jsonl > $LOG/quick.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do for bits in fp16 4/3; do
  left 520 && timeout 30 $B/bench/decode_bench --shape $s --comp 75% --bits $bits --batch $b --context 32768 --reps 10 --out /tmp/x.jsonl >> $LOG/quick.txt 2>&1; cat /tmp/x.jsonl >> $LOG/starkv_quick.jsonl
done; done; done
el starkv
left 540 && PYTHONUNBUFFERED=1 timeout 60 python3 bench/sdpa_baseline.py --quick --reps 10 --out $LOG/sdpa_quick.jsonl > $LOG/sdpa.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do
  left 575 && timeout 30 python3 bench/sdpa_baseline.py --shape $s --batch $b --context 32768 --reps 10 --out /tmp/y.jsonl >> $LOG/sdpa.txt 2>&1; cat /tmp/y.jsonl >> $LOG/sdpa_quick.jsonl
done; done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > $LOG/gpu.txt
python3 bench/merge_results.py $LOG/starkv_quick.jsonl $LOG/sdpa_quick.jsonl --gpu $LOG/gpu.txt --md $LOG/table_quick.md --peak 4800 > $LOG/merge.txt 2>&1
el quick
grep "^|" $LOG/table_quick.md | head -40
