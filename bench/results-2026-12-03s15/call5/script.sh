#!/usr/bin/env bash
# Session 15 call 5: main + the paired fold as it is committed (default on; STARKV_NO_PAIRED_FOLD=1 off): GPU tests
# both ways, memcheck/racecheck of the fold suites, A/B paired vs not (one binary), which fold instance runs at b1/b16/b64,
# then the quick grid with SDPA in the same call (README table).
set -o pipefail
B=/tmp/starkv-build; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1 && ninja -C $B -j16 decode_bench starkv_gpu_tests > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -40; exit 1; }
el built
timeout 100 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head -8
STARKV_NO_PAIRED_FOLD=1 timeout 100 $B/tests/starkv_gpu_tests > $LOG/tests_nopaired.txt 2>&1; echo "tests nopaired rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_nopaired.txt | head -8
F='*CudaFoldWgmma*:*CudaFoldSmallTile*'
timeout 60 compute-sanitizer --tool memcheck $B/tests/starkv_gpu_tests --gtest_filter="$F" > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
timeout 90 compute-sanitizer --tool racecheck $B/tests/starkv_gpu_tests --gtest_filter="$F" > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el tests
run() { local m=$1 env=X=0; shift; [ $m = nopaired ] && env=STARKV_NO_PAIRED_FOLD=1
  env $env timeout 60 $B/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama2-7b 75% fp16 64" "llama2-7b 75% fp16 1"; do for m in nopaired paired; do run $m $c; done; done; done
cat $LOG/ab.txt
for b in 1 16 64; do timeout 40 ncu --kernel-name regex:fold_scores --launch-count 1 --metrics launch__block_size,launch__grid_size $B/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch $b --context 32768 --reps 1 --out /tmp/z.jsonl 2>&1 | grep -E "fold_scores_kernel|launch__" | sed 's/(LayerView.*//' | sed "s/^/b$b /"; done | tee $LOG/fold_instances.txt
el ab
timeout 120 $B/bench/decode_bench --quick --reps 10 --out $LOG/starkv_quick.jsonl > $LOG/quick.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do for bits in fp16 4/3; do
  timeout 30 $B/bench/decode_bench --shape $s --comp 75% --bits $bits --batch $b --context 32768 --reps 10 --out /tmp/x.jsonl >> $LOG/quick.txt 2>&1; cat /tmp/x.jsonl >> $LOG/starkv_quick.jsonl
done; done; done
el starkv
PYTHONUNBUFFERED=1 timeout 120 python3 bench/sdpa_baseline.py --quick --reps 10 --out $LOG/sdpa_quick.jsonl > $LOG/sdpa.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do
  timeout 30 python3 bench/sdpa_baseline.py --shape $s --batch $b --context 32768 --reps 10 --out /tmp/y.jsonl >> $LOG/sdpa.txt 2>&1; cat /tmp/y.jsonl >> $LOG/sdpa_quick.jsonl
done; done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > $LOG/gpu.txt
python3 bench/merge_results.py $LOG/starkv_quick.jsonl $LOG/sdpa_quick.jsonl --gpu $LOG/gpu.txt --md $LOG/table_quick.md --peak 4800 > $LOG/merge.txt 2>&1
el quick
grep "^|" $LOG/table_quick.md | head -40
