#!/usr/bin/env bash
# wip/s10-recon-wgmma: K = L Ut on warpgroup MMAs for GQA layers with fp16 keys (not yet run on a
# GPU). Device machine, repository root, OUT set: GPU tests (CudaWideRecon and CudaLongSplit's
# head_dim-128 GQA cases reach the new instances), sanitizers over them, the kernel that runs, and
# the A/B against STARKV_NO_RECON_WGMMA=1 (the mma.sync recon).
set -o pipefail
B=/tmp/starkv-build; LOG=$OUT; mkdir -p $LOG
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1 || exit 1
ninja -C $B -j16 starkv_gpu_tests decode_bench > $LOG/build.txt 2>&1 || { grep -A3 error $LOG/build.txt | head -40; exit 1; }
timeout 150 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|^\[  FAILED" $LOG/tests.txt
F='*CudaWideRecon*:*CudaLongSplit*:*CudaSplitPath*'
timeout 200 compute-sanitizer --tool memcheck $B/tests/starkv_gpu_tests --gtest_filter="$F" > $LOG/memcheck.txt 2>&1; tail -1 $LOG/memcheck.txt
timeout 200 compute-sanitizer --tool racecheck $B/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*' > $LOG/racecheck.txt 2>&1; tail -1 $LOG/racecheck.txt
ncu --kernel-name regex:fold_scores --launch-count 1 --metrics gpu__time_duration.sum,smsp__inst_executed.sum \
  $B/bench/decode_bench --quick --reps 1 --shape llama3-8b --comp 75% --bits fp16 --out /tmp/n.jsonl 2>/dev/null | grep -E "fold_scores|gpu__time|inst_exec" | tee $LOG/kernels.txt
for r in 1 2; do for c in 75% 60% 50%; do for m in wgmma mmasync; do
  env $([ $m = mmasync ] && echo STARKV_NO_RECON_WGMMA=1) $B/bench/decode_bench --shape llama3-8b --comp $c --bits fp16 \
    --batch 16 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | sed "s|^|$m: |"
done; done; done | tee $LOG/ab.txt
