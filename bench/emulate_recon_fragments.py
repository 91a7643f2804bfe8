#!/usr/bin/env python3
# Emulates the recon job of fold_scores_kernel<kRecon> lane by lane (fragment layouts of
# mma.m16n8k16 and ldmatrix.x4 per the PTX ISA) and compares with q . RoPE(L Ut).
import numpy as np
rng = np.random.default_rng(1)
D, rank, rkp_max, qpk, TT, mt, gl = 128, 26, 32, 4, 64, 2, 1
rkp = 32; UTS = rkp_max + 8; DS = D + 8; kHeads = 8
ngc = 2; nh = ngc * qpk
# smem images (float16 values kept as float64 of fp16-rounded numbers)
f16 = lambda x: np.float16(x).astype(np.float64)
Ut = np.zeros((ngc, D, UTS)); Ut[:, :, :rank] = f16(rng.standard_normal((ngc, D, rank)))
Q = np.zeros((kHeads + 1, DS)); Q[:nh, :D] = f16(rng.standard_normal((nh, D)))
theta = rng.uniform(0, 6.28, (TT, D // 2))
CS = np.zeros((TT, DS)); CS[:, 0:D:2] = f16(np.cos(theta)); CS[:, 1:D:2] = f16(np.sin(theta))
L = np.zeros((TT, 48)); L[:, :rank] = f16(rng.standard_normal((TT, rank))); L[:, rank:] = f16(rng.standard_normal((TT, 48 - rank)))  # finite junk past rank
def ldmatrix_x4(addr_of_lane, mem):  # addr_of_lane(l) -> (array, row, col); returns r[lane][m] = (lo, hi)
    out = np.zeros((32, 4, 2))
    for m in range(4):
        rows = [addr_of_lane(8 * m + r) for r in range(8)]
        for lane in range(32):
            arr, row, col = rows[lane // 4]
            out[lane, m] = arr[row, col + 2 * (lane % 4): col + 2 * (lane % 4) + 2]
    return out
def mma(c, a, b0, b1):  # c[lane][4], a[lane][4][2], b[lane][2]; A 16x16, B 16x8
    A = np.zeros((16, 16)); B = np.zeros((16, 8))
    for lane in range(32):
        g, t = lane // 4, lane % 4
        A[g, 2*t:2*t+2] = a[lane][0]; A[g+8, 2*t:2*t+2] = a[lane][1]
        A[g, 8+2*t:8+2*t+2] = a[lane][2]; A[g+8, 8+2*t:8+2*t+2] = a[lane][3]
        B[2*t:2*t+2, g] = b0[lane]; B[8+2*t:8+2*t+2, g] = b1[lane]
    C = A @ B
    for lane in range(32):
        g, t = lane // 4, lane % 4
        c[lane] += [C[g, 2*t], C[g, 2*t+1], C[g+8, 2*t], C[g+8, 2*t+1]]
sacc = np.zeros((32, 4))
for dg in range(D // 32):
    kacc = np.zeros((4, 32, 4))
    for kk in range(0, rkp, 16):
        a = np.zeros((32, 4, 2))
        for lane in range(32):
            g, t = lane // 4, lane % 4
            lo, hi = mt * 16 + g, mt * 16 + g + 8
            a[lane] = [L[lo, kk+2*t:kk+2*t+2], L[hi, kk+2*t:kk+2*t+2], L[lo, kk+8+2*t:kk+10+2*t], L[hi, kk+8+2*t:kk+10+2*t]]
        for np_ in range(2):
            b = ldmatrix_x4(lambda l: (Ut[gl], dg*32 + np_*16 + (l >> 4)*8 + (l & 7), kk + ((l >> 3) & 1)*8), None)
            mma(kacc[2*np_], a, b[:, 0], b[:, 1]); mma(kacc[2*np_+1], a, b[:, 2], b[:, 3])
    for nt in range(4):
        for lane in range(32):
            g, t = lane // 4, lane % 4
            p2 = 2 * (dg*16 + nt*4) + 2*t
            c_lo, s_lo = CS[mt*16+g, p2], CS[mt*16+g, p2+1]; c_hi, s_hi = CS[mt*16+g+8, p2], CS[mt*16+g+8, p2+1]
            k0, k1, k2, k3 = kacc[nt][lane]
            kacc[nt][lane] = [k0*c_lo - k1*s_lo, k0*s_lo + k1*c_lo, k2*c_hi - k3*s_hi, k2*s_hi + k3*c_hi]
    bq = ldmatrix_x4(lambda l: (Q, (gl*qpk + (l & 7)) if (l & 7) < qpk else kHeads, (l >> 3)*8 + dg*32), None)
    for j in range(2):
        ka = np.zeros((32, 4, 2))
        for lane in range(32):
            ka[lane] = [kacc[2*j][lane][0:2], kacc[2*j][lane][2:4], kacc[2*j+1][lane][0:2], kacc[2*j+1][lane][2:4]]
        mma(sacc, f16(ka), bq[:, 2*j], bq[:, 2*j+1])
# reference: keys K[t][d] = sum_r L[t][r] Ut[gl][d][r] (r < rank), rotate pairs, dot with q
S = np.full((TT, kHeads), np.nan)
for lane in range(32):
    g, t = lane // 4, lane % 4
    for e in range(2):
        hl = 2*t + e
        if hl < qpk:
            S[mt*16+g, gl*qpk+hl] = sacc[lane][e]; S[mt*16+g+8, gl*qpk+hl] = sacc[lane][2+e]
K = L[:, :rank] @ Ut[gl][:, :rank].T
c, s = CS[:, 0:D:2], CS[:, 1:D:2]
Kr = np.empty_like(K); Kr[:, 0::2] = K[:, 0::2]*c - K[:, 1::2]*s; Kr[:, 1::2] = K[:, 0::2]*s + K[:, 1::2]*c
ref = Kr @ Q[:nh, :D].T
toks = slice(mt*16, mt*16+16); hs = slice(gl*qpk, gl*qpk+qpk)
err = np.abs(S[toks, hs] - ref[toks, hs]).max() / np.abs(ref[toks, hs]).max()
print("max rel error (fp16 rotated keys):", err, "; unwritten heads stay NaN:", np.isnan(S[toks, :gl*qpk]).all())
