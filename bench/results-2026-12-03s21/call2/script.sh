#!/usr/bin/env bash
# Session 21 call 2. Tree = main 871c8b7 + decode_bench's STARKV_EXPERIMENT_KEY_OUTLIERS (key groups' outlier
# count; call2/key_outliers_experiment.patch). What do the key groups' outlier/inlier boundary groups cost the
# quantized fold? Default 0.2 * rank (rank 26: 5, a group that straddles both blocks) against 8 (whole groups)
# and 0 (no outlier block). Two rounds; ncu of the fold in each; SASS of the narrow quantized wgmma fold.
set -o pipefail
B1=/tmp/b-new; LOG=/tmp/logs2; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs2.tgz .' EXIT
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
ninja -C $B1 -j16 decode_bench > $LOG/build1.txt 2>&1; echo "b1 rc=$?"
el built
run() { local m=$1; shift
  if [ $m = dflt ]; then unset STARKV_EXPERIMENT_KEY_OUTLIERS; else export STARKV_EXPERIMENT_KEY_OUTLIERS=${m#o}; fi
  timeout 60 $B1/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% 4/3 16" "llama2-7b 50% 4/3 16" "llama2-7b 75% 4/4 16" "llama3-8b 75% 4/3 16"; do for m in dflt o8 o0; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
T="gpu__time_duration.sum,smsp__inst_executed.sum,sm__inst_issued.avg.pct_of_peak_sustained_active,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum"
for m in dflt o8 o0; do left 400 || break
  if [ $m = dflt ]; then unset STARKV_EXPERIMENT_KEY_OUTLIERS; else export STARKV_EXPERIMENT_KEY_OUTLIERS=${m#o}; fi
  timeout 45 ncu --clock-control none --kernel-name regex:"fold_scores|decode_values" --launch-skip 2 --launch-count 2 --metrics "$T" \
    $B1/bench/decode_bench --shape llama2-7b --comp 75% --bits 4/3 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_$m.txt 2>&1
  echo "== $m"; grep -E "fold_scores|decode_values|gpu__time|sm__|smsp__|l1tex" $LOG/ncu_$m.txt | sed 's/(LayerView.*//' | cut -c1-110
done
el ncu
O=$(find $B1 -name "fold_scores_wgmma.cu.o" | head -1); echo "obj: $O"
cuobjdump -sass $O > $LOG/wgmma_fold.sass 2>&1; echo "sass rc=$? $(wc -l < $LOG/wgmma_fold.sass)"
gzip $LOG/wgmma_fold.sass
el done
