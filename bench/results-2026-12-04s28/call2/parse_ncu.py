import re,sys,glob,os
rows=[]
for f in sorted(glob.glob(sys.argv[1]+'/ncu_*.txt')):
    cfg=os.path.basename(f)[4:-4]
    cur=None; kernels=[]
    for line in open(f):
        m=re.match(r'^  (?:void )?(?:\(anonymous namespace\)::|unnamed>::)?([A-Za-z_0-9]+)(<[^>]*>)?',line)
        if m and '(' in line and not line.startswith('    '):
            cur={'name':m.group(1)+(m.group(2) or '')}; kernels.append(cur); continue
        m=re.match(r'^\s+(\S+)\s+(\S+)?\s+([0-9.,]+|\(!\) n/a)\s*$',line)
        if cur is not None and m:
            v=m.group(3).replace(',','')
            unit=m.group(2) or ''
            try: v=float(v)
            except: v=None
            if v is not None and unit=='Gbyte': v*=1000
            if v is not None and unit=='Kbyte': v/=1000
            if v is not None and unit=='ms': v*=1000
            if v is not None and unit=='Kbyte' and 'shared_mem' in m.group(1): v*=1000
            cur[m.group(1)]=v
    # one launch per kernel name: keep last occurrence (launch-count 3 covers the step's kernels)
    seen={}
    for k in kernels: seen[k['name']]=k
    for k in seen.values():
        st={n.split('stalled_')[1].split('_per')[0]:v for n,v in k.items() if 'stalled_' in n and v is not None and 'selected' not in n}
        top=sorted(st.items(),key=lambda x:-x[1])[:3]
        print(f"{cfg:22s} {k['name'][:42]:42s} {k.get('gpu__time_duration.sum',0):8.1f}us {k.get('smsp__inst_executed.sum',0)/1e6:7.1f}M {k.get('dram__bytes_read.sum',0):7.0f}MB iss {k.get('smsp__issue_active.avg.pct_of_peak_sustained_active',0):4.1f}% tc {k.get('sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active',0):4.1f}% warps {k.get('sm__warps_active.avg.pct_of_peak_sustained_active',0):4.1f}% regs {k.get('launch__registers_per_thread',0):.0f} smem {k.get('launch__shared_mem_per_block_dynamic',0):.0f} | "+' '.join(f"{a}={b:.2f}" for a,b in top))
