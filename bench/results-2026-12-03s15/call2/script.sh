#!/usr/bin/env bash
# Session 15 call 9 (main): which L2 sub-unit is busy? breakdown:lts__throughput of the Llama-2-like 75% fp16 fold and
# value kernels, of starkv's dense kernel (0%), and of the Llama-3-like 75% fp16 fold; memory tables of the fold.
set -o pipefail
B=/tmp/starkv-build; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1 && ninja -C $B -j16 decode_bench > $LOG/build.txt 2>&1 || { tail -30 $LOG/build.txt; exit 1; }
el built
DB=$B/bench/decode_bench
M="breakdown:lts__throughput.avg.pct_of_peak_sustained_elapsed,breakdown:dram__throughput.avg.pct_of_peak_sustained_elapsed,gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sectors.sum,lts__t_sectors_srcunit_tex.sum,lts__t_sectors_srcunit_ltcfabric.sum,lts__t_sectors_op_read.sum,lts__t_sectors_op_write.sum,lts__t_sectors_op_atom.sum,lts__t_sectors_op_red.sum,lts__t_requests_srcunit_tex.sum"
prof() { local name=$1 regex=$2 skip=$3 count=$4; shift 4
  timeout 120 ncu --clock-control none --kernel-name regex:"$regex" --launch-skip $skip --launch-count $count --metrics $M $DB "$@" --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_$name.txt 2>&1
  echo "== $name"; grep -E "^  [a-z_ ]*void|^  \S|lts__|dram__|gpu__time" $LOG/ncu_$name.txt | grep -v "^==" | cut -c1-120; }
prof l2fp16 "fold_scores|decode_values" 2 2 --shape llama2-7b --comp 75% --bits fp16 --batch 16
prof dense "dense" 1 1 --shape llama2-7b --comp 0% --bits fp16 --batch 16
prof l3fp16 "fold_scores|decode_values" 2 2 --shape llama3-8b --comp 75% --bits fp16 --batch 16
el ncu
timeout 150 ncu --clock-control none --kernel-name regex:"fold_scores" --launch-skip 1 --launch-count 1 --section MemoryWorkloadAnalysis_Tables --section WarpStateStats --section SchedulerStats $DB --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_fold_tables.txt 2>&1
grep -v "^==PROF" $LOG/ncu_fold_tables.txt | cut -c1-130 | head -120
el tables
