#!/usr/bin/env bash
# Session 23 call 5. main db42ee3 as committed (recon wgmma: conflict-free query and score rows, CS table in the readers'
# order at padded key rank <= 32, Ut unpadded): whole GPU suite, then the quick grid (b16 x 32K) and batch 1 / 64 at
# 75% with SDPA (flash, cuDNN) in the same call. (Trimmed to the device time left: the A/B and the sanitizers of these
# kernels are call 4's, v1 and v2.)
set -o pipefail
B=/tmp/b-main; LOG=/tmp/logs5; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs5.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null 2>&1
ninja -C $B -j16 decode_bench starkv_gpu_tests > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -20; exit 1; }
rm -f $LOG/build.txt
el built
timeout 100 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED|SKIPPED)|FAILED  \]" $LOG/tests.txt | head
cp $LOG/tests.txt $OUT/
el tests
timeout 100 $B/bench/decode_bench --quick --reps 10 --out $LOG/starkv_quick.jsonl > $LOG/quick.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do for bits in fp16 4/3; do
  timeout 30 $B/bench/decode_bench --shape $s --comp 75% --bits $bits --batch $b --context 32768 --reps 10 --out /tmp/x.jsonl >> $LOG/quick.txt 2>&1; cat /tmp/x.jsonl >> $LOG/starkv_quick.jsonl
done; done; done
cp $LOG/starkv_quick.jsonl $LOG/quick.txt $OUT/
el starkv
PYTHONUNBUFFERED=1 timeout 100 python3 bench/sdpa_baseline.py --quick --reps 10 --out $LOG/sdpa_quick.jsonl > $LOG/sdpa.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do
  timeout 30 python3 bench/sdpa_baseline.py --shape $s --batch $b --context 32768 --reps 10 --out /tmp/y.jsonl >> $LOG/sdpa.txt 2>&1; cat /tmp/y.jsonl >> $LOG/sdpa_quick.jsonl
done; done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > $LOG/gpu.txt
python3 bench/merge_results.py $LOG/starkv_quick.jsonl $LOG/sdpa_quick.jsonl --gpu $LOG/gpu.txt --md $LOG/table_quick.md --peak 4800 > $LOG/merge.txt 2>&1
el quick
grep "^|" $LOG/table_quick.md | head -40
