import gzip,collections,sys
def load(n):
    d=collections.Counter(); s=collections.Counter()
    for l in gzip.open(n,'rt'):
        p=l.rstrip('\n').split('\t')
        d[p[0]]+=float(p[1]); s[p[0]]+=float(p[2])
    return d,s
a,sa=load(sys.argv[1]); b,sb=load(sys.argv[2])
print(f"totals {sum(a.values())/1e6:.1f} {sum(b.values())/1e6:.1f}")
byfile=collections.Counter()
for k in set(a)|set(b): byfile[k.split(':')[0]]+=a[k]-b[k]
for f,v in byfile.most_common(): print(f"  {f:40s} {v/1e6:+8.2f}")
print("by line, largest increases (A, B, A-B; stalls A, B):")
for k in sorted(set(a)|set(b), key=lambda k:-(a[k]-b[k]))[:int(sys.argv[3]) if len(sys.argv)>3 else 40]:
    print(f"  {k:35s} {a[k]/1e6:7.2f} {b[k]/1e6:7.2f} {(a[k]-b[k])/1e6:+7.2f}   {sa[k]:6.0f} {sb[k]:6.0f}")
