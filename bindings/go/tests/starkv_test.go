// Package tests exercises the Go binding through its public API: every call, every error class,
// lifetimes, and the attention output against a dense reference.
//
// Tolerance: with identity factors at full rank and fp32 latents the cache holds keys and values
// exactly up to the fp32 rounding of the folded Hadamard rotation, and the CPU backend
// accumulates in fp32 over a few dozen tokens, so outputs agree with a float64 reference to 1e-5
// (outputs are O(1)). bfloat16 inputs are truncated to bfloat16 in the reference too.
package tests

import (
	"errors"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"unsafe"

	starkv "github.com/starkv/starkv/bindings/go"
)

const (
	L = 2
	H = 4
	G = 2
	D = 16
)

// ---- helpers ---------------------------------------------------------------------------------

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustFail(t *testing.T, err error, family error) *starkv.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("expected a %v error, got none", family)
	}
	if !errors.Is(err, family) {
		t.Fatalf("expected a %v error, got %v", family, err)
	}
	var e *starkv.Error
	if !errors.As(err, &e) {
		t.Fatalf("%v is not a *starkv.Error", err)
	}
	return e
}

func identity(n, copies int) []float32 {
	m := make([]float32, copies*n*n)
	for c := 0; c < copies; c++ {
		for i := 0; i < n; i++ {
			m[c*n*n+i*n+i] = 1
		}
	}
	return m
}

func identityFactors() starkv.LayerFactors {
	ranks := make([]int32, G)
	for i := range ranks {
		ranks[i] = D
	}
	return starkv.LayerFactors{
		KeyDecomposition: starkv.HeadWise, KeyRanks: ranks, KeyDown: identity(D, G),
		ValueDecomposition: starkv.Joint, ValueRanks: []int32{G * D}, ValueDown: identity(G*D, 1),
	}
}

func exactParams() starkv.ProfileParams {
	p := starkv.DefaultProfileParams()
	p.NLayers, p.NHeads, p.NKVHeads, p.HeadDim, p.HiddenDim = L, H, G, D, 0
	p.InlierBits = 32
	p.RopeStyle = starkv.RopeNone
	return p
}

// exactProfile: identity factors at full rank with fp32 latents.
func exactProfile(t *testing.T) *starkv.Profile {
	b, err := starkv.NewProfileBuilder(nil, exactParams())
	must(t, err)
	defer b.Close()
	for l := 0; l < L; l++ {
		must(t, b.SetLayerFactors(l, identityFactors()))
	}
	p, err := b.Finish()
	must(t, err)
	return p
}

func weightParams() starkv.ProfileParams {
	p := starkv.DefaultProfileParams()
	p.NLayers, p.NHeads, p.NKVHeads, p.HeadDim, p.HiddenDim = L, H, G, D, 32
	p.TargetCompression, p.MinKeyRank, p.InlierBits, p.OutlierBits = 0.5, 2, 4, 8
	return p
}

// weightProfile: the library's own SVD and rank allocation on random weights.
func weightProfile(t *testing.T, ctx *starkv.Context) *starkv.Profile {
	rng := rand.New(rand.NewSource(7))
	b, err := starkv.NewProfileBuilder(ctx, weightParams())
	must(t, err)
	defer b.Close()
	for l := 0; l < L; l++ {
		must(t, b.AddLayer(l, starkv.LayerData{WK: gaussian(rng, G*D*32), WV: gaussian(rng, G*D*32)}))
	}
	p, err := b.Finish()
	must(t, err)
	return p
}

func gaussian(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func repeat(n int, v int32) []int32 {
	a := make([]int32, n)
	for i := range a {
		a[i] = v
	}
	return a
}

func span(from, to int) []int32 {
	a := make([]int32, to-from)
	for i := range a {
		a[i] = int32(from + i)
	}
	return a
}

// dense is attention in float64: q [H*D] (post-RoPE), k and v [n*G*D] (no RoPE) -> [H*D].
func dense(q, k, v []float32, n int) []float64 {
	out := make([]float64, H*D)
	for h := 0; h < H; h++ {
		g := h / (H / G)
		s := make([]float64, n)
		maxS := math.Inf(-1)
		for t := 0; t < n; t++ {
			dot := 0.0
			for i := 0; i < D; i++ {
				dot += float64(q[h*D+i]) * float64(k[(t*G+g)*D+i])
			}
			s[t] = dot / math.Sqrt(D)
			maxS = math.Max(maxS, s[t])
		}
		sum := 0.0
		for t := range s {
			s[t] = math.Exp(s[t] - maxS)
			sum += s[t]
		}
		for t := 0; t < n; t++ {
			for i := 0; i < D; i++ {
				out[h*D+i] += s[t] / sum * float64(v[(t*G+g)*D+i])
			}
		}
	}
	return out
}

func assertClose(t *testing.T, want []float64, got []float32, tol float64) {
	t.Helper()
	for i := range want {
		if math.Abs(want[i]-float64(got[i])) > tol {
			t.Fatalf("element %d: want %g, got %g (tolerance %g)", i, want[i], got[i], tol)
		}
	}
}

type fixture struct {
	ctx     *starkv.Context
	profile *starkv.Profile
	pool    *starkv.Pool
}

func newFixture(t *testing.T) *fixture {
	ctx, err := starkv.NewContext(starkv.ContextParams{})
	must(t, err)
	profile := exactProfile(t)
	pp := starkv.DefaultPoolParams()
	pp.CapacityTokens, pp.PageTokens = 1024, 16
	pool, err := starkv.NewPool(ctx, profile, pp)
	must(t, err)
	f := &fixture{ctx, profile, pool}
	t.Cleanup(func() {
		f.pool.Close()
		f.profile.Close()
		f.ctx.Close()
	})
	return f
}

// store appends n random tokens to seq in every layer and returns its keys and values.
func store(t *testing.T, pool *starkv.Pool, seq int32, n int, rng *rand.Rand) ([]float32, []float32) {
	t.Helper()
	k, v := gaussian(rng, n*G*D), gaussian(rng, n*G*D)
	for l := 0; l < L; l++ {
		must(t, pool.Append(l, repeat(n, seq), span(0, n), k, v))
	}
	return k, v
}

func tempDir(t *testing.T) string {
	if base := os.Getenv("STARKV_TEST_TMP"); base != "" {
		must(t, os.MkdirAll(base, 0o755))
		dir, err := os.MkdirTemp(base, "go")
		must(t, err)
		t.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return t.TempDir()
}

// ---- library functions -------------------------------------------------------------------------

func TestLibraryFunctions(t *testing.T) {
	if starkv.Version() == "" || starkv.VersionNumber() == 0 {
		t.Fatalf("version %q / %d", starkv.Version(), starkv.VersionNumber())
	}
	if !starkv.ABISupported(starkv.ABIVersion()) || starkv.ABISupported(starkv.ABIVersion()+1000) {
		t.Fatal("ABISupported")
	}
	if starkv.DTypeSize(starkv.DTypeF32) != 4 || starkv.DTypeSize(starkv.DTypeBF16) != 2 {
		t.Fatal("DTypeSize")
	}
	if !starkv.BackendAvailable(starkv.CPU) {
		t.Fatal("no CPU backend")
	}
	if starkv.StatusPoolFull.String() != "pool full" {
		t.Fatalf("status string %q", starkv.StatusPoolFull.String())
	}
	if d := starkv.DefaultPoolParams(); d.PageTokens != 64 {
		t.Fatalf("pool defaults %+v", d)
	}
	if p := starkv.DefaultProfileParams(); p.MinKeyRank != 8 || !p.Hadamard {
		t.Fatalf("profile defaults %+v", p)
	}
}

func TestContext(t *testing.T) {
	ctx, err := starkv.NewContext(starkv.ContextParams{NThreads: 1})
	must(t, err)
	if ctx.Backend() != starkv.CPU {
		t.Fatal("backend")
	}
	must(t, ctx.SetStream(0))
	must(t, ctx.Synchronize())
	must(t, ctx.Close())
	must(t, ctx.Close()) // twice is harmless
	mustFail(t, ctx.Synchronize(), starkv.ErrClosed)
	if !starkv.BackendAvailable(starkv.CUDA) {
		_, err := starkv.NewContext(starkv.ContextParams{Backend: starkv.CUDA})
		e := mustFail(t, err, starkv.ErrBackend)
		if e.Status != starkv.StatusBackendUnavailable {
			t.Fatal(e)
		}
	}
	_, err = starkv.NewContext(starkv.ContextParams{NThreads: -1})
	mustFail(t, err, starkv.ErrInvalidArgument)
}

// ---- profiles ----------------------------------------------------------------------------------

func TestProfileFromWeights(t *testing.T) {
	ctx, err := starkv.NewContext(starkv.ContextParams{})
	must(t, err)
	defer ctx.Close()
	p := weightProfile(t, ctx)
	defer p.Close()
	info, err := p.Info()
	must(t, err)
	if info.NLayers != L || info.NHeads != H || info.InlierBits != 4 ||
		info.BytesPerToken >= info.DenseBytesPerToken {
		t.Fatalf("info %+v", info)
	}
	li, err := p.LayerInfo(0)
	must(t, err)
	if !li.Compressed || li.KeyDecomposition != starkv.HeadWise || li.ValueDecomposition != starkv.Joint {
		t.Fatalf("layer info %+v", li)
	}
	kr, err := p.Ranks(0, starkv.Keys)
	must(t, err)
	vr, err := p.Ranks(0, starkv.Values)
	must(t, err)
	w, err := p.LatentWidth(0)
	must(t, err)
	total := vr[0]
	for _, r := range kr {
		total += r
	}
	if len(kr) != G || len(vr) != 1 || int(total) != w {
		t.Fatalf("ranks %v %v width %d", kr, vr, w)
	}
	down, err := p.Projection(0, starkv.Keys, 1, starkv.Down)
	must(t, err)
	if len(down) != D*int(kr[1]) {
		t.Fatalf("projection of %d elements", len(down))
	}
	_, err = p.Projection(0, starkv.Keys, G, starkv.Down)
	mustFail(t, err, starkv.ErrInvalidArgument)
	_, err = p.LatentWidth(L)
	mustFail(t, err, starkv.ErrInvalidArgument)
}

func TestBuilderInputsOfEveryKind(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	p := weightParams()
	p.STMaxSteps = 20
	p.UncompressedLayers = []int32{1}
	b, err := starkv.NewProfileBuilder(nil, p)
	must(t, err)
	defer b.Close()
	wk, wv := gaussian(rng, G*D*32), gaussian(rng, G*D*32)
	bk, bv := make(starkv.BFloat16, len(wk)), make(starkv.BFloat16, len(wv))
	for i := range wk {
		bk[i] = uint16(math.Float32bits(wk[i]) >> 16)
		bv[i] = uint16(math.Float32bits(wv[i]) >> 16)
	}
	must(t, b.AddLayer(0, starkv.LayerData{WK: bk, WV: bv, WeightLayout: starkv.OutIn,
		CalibHidden: make(starkv.BFloat16, 40*32)}))
	must(t, b.AddLayer(1, starkv.LayerData{WK: wk, WV: wv, WQ: gaussian(rng, H*D*32),
		CalibK: gaussian(rng, 40*G*D), CalibV: gaussian(rng, 40*G*D), CalibQ: gaussian(rng, 40*H*D)}))
	prof, err := b.Finish()
	must(t, err)
	defer prof.Close()
	info, err := prof.Info()
	must(t, err)
	if info.NUncompressedLayers != 1 {
		t.Fatalf("%+v", info)
	}
}

func TestBuilderErrors(t *testing.T) {
	b, err := starkv.NewProfileBuilder(nil, weightParams())
	must(t, err)
	defer b.Close()
	good := make([]float32, G*D*32)
	mustFail(t, b.AddLayer(0, starkv.LayerData{WK: good[1:], WV: good}), starkv.ErrSize)
	mustFail(t, b.AddLayer(0, starkv.LayerData{WK: make([]float64, 10), WV: good}), starkv.ErrDType)
	mustFail(t, b.AddLayer(0, starkv.LayerData{WK: good, WV: make(starkv.Float16, len(good))}), starkv.ErrDType)
	mustFail(t, b.AddLayer(0, starkv.LayerData{CalibK: make([]float32, 4*G*D), CalibV: make([]float32, 5*G*D)}), starkv.ErrSize)
	f := identityFactors()
	f.KeyRanks = []int32{D}
	mustFail(t, b.SetLayerFactors(0, f), starkv.ErrSize)
	f = identityFactors()
	f.KeyDown = f.KeyDown[1:]
	mustFail(t, b.SetLayerFactors(0, f), starkv.ErrSize)
	_, err = b.Finish() // no layer was added
	if err == nil {
		t.Fatal("finish without layers")
	}
	b2, err := starkv.NewProfileBuilder(nil, exactParams())
	must(t, err)
	defer b2.Close()
	for l := 0; l < L; l++ {
		must(t, b2.SetLayerFactors(l, identityFactors()))
	}
	p, err := b2.Finish()
	must(t, err)
	p.Close()
	_, err = b2.Finish()
	mustFail(t, err, starkv.ErrState)
}

func TestProfileFiles(t *testing.T) {
	dir := tempDir(t)
	p := weightProfile(t, nil)
	defer p.Close()
	path := filepath.Join(dir, "p.starkv")
	must(t, p.Save(path))
	data, err := p.Bytes()
	must(t, err)
	onDisk, err := os.ReadFile(path)
	must(t, err)
	if string(data) != string(onDisk) {
		t.Fatal("Bytes differs from the saved file")
	}
	loaded, err := starkv.LoadProfile(path)
	must(t, err)
	defer loaded.Close()
	fromBytes, err := starkv.LoadProfileBytes(data)
	must(t, err)
	defer fromBytes.Close()
	a, _ := loaded.Info()
	b, _ := fromBytes.Info()
	c, _ := p.Info()
	if a != c || b != c {
		t.Fatalf("%+v %+v %+v", a, b, c)
	}
	// corrupt and foreign files
	data[len(data)/2] ^= 0xff
	corrupt := filepath.Join(dir, "corrupt.starkv")
	must(t, os.WriteFile(corrupt, data, 0o644))
	_, err = starkv.LoadProfile(corrupt)
	mustFail(t, err, starkv.ErrCorruptData)
	_, err = starkv.LoadProfileBytes(data)
	mustFail(t, err, starkv.ErrCorruptData)
	_, err = starkv.LoadProfileBytes([]byte("not a profile"))
	mustFail(t, err, starkv.ErrData)
	_, err = starkv.LoadProfileBytes(nil)
	mustFail(t, err, starkv.ErrInvalidArgument)
	_, err = starkv.LoadProfile(filepath.Join(dir, "missing.starkv"))
	mustFail(t, err, starkv.ErrIO)
	mustFail(t, p.Save("bad\x00name"), starkv.ErrInvalidArgument)
}

// ---- attention ---------------------------------------------------------------------------------

func TestExactAttentionMatchesDenseReference(t *testing.T) {
	f := newFixture(t)
	rng := rand.New(rand.NewSource(11))
	n := 29
	seq, err := f.pool.NewSequence()
	must(t, err)
	k, v := store(t, f.pool, seq, n, rng)
	length, err := f.pool.Length(seq)
	must(t, err)
	if length != n {
		t.Fatalf("length %d", length)
	}
	q := gaussian(rng, H*D)
	out := make([]float32, H*D)
	for l := 0; l < L; l++ {
		must(t, f.pool.Attend(l, []int32{seq}, nil, q, out))
		assertClose(t, dense(q, k, v, n), out, 1e-5)
	}
	must(t, f.pool.Attend(0, []int32{seq}, []int32{7}, q, out))
	assertClose(t, dense(q, k, v, 7), out, 1e-5)
	if f.pool.RowWidth() != H*D {
		t.Fatal("RowWidth")
	}
}

func TestDecodeStepAndHalfPrecision(t *testing.T) {
	f := newFixture(t)
	rng := rand.New(rand.NewSource(13))
	lengths := []int{5, 17, 33}
	seqs := make([]int32, 3)
	keys, values := make([][]float32, 3), make([][]float32, 3)
	for i, n := range lengths {
		var err error
		seqs[i], err = f.pool.NewSequence()
		must(t, err)
		keys[i], values[i] = store(t, f.pool, seqs[i], n, rng)
	}
	q := gaussian(rng, 3*H*D)
	step, err := f.pool.NewDecodeStep()
	must(t, err)
	defer step.Close()
	if step.Pool() != f.pool {
		t.Fatal("step.Pool")
	}
	planned, err := step.Planned()
	must(t, err)
	if planned != -1 {
		t.Fatal("planned before plan")
	}
	mustFail(t, step.Run(0, q, make([]float32, 3*H*D)), starkv.ErrState)
	must(t, step.Plan(seqs, nil))
	out := make([]float32, 3*H*D)
	for l := 0; l < L; l++ {
		must(t, step.Run(l, q, out))
		for i := range seqs {
			assertClose(t, dense(q[i*H*D:], keys[i], values[i], lengths[i]), out[i*H*D:(i+1)*H*D], 1e-5)
		}
	}
	// bfloat16 queries (truncated) and a bfloat16 output
	qb := make(starkv.BFloat16, len(q))
	qt := make([]float32, len(q))
	for i := range q {
		qb[i] = uint16(math.Float32bits(q[i]) >> 16)
		qt[i] = math.Float32frombits(uint32(qb[i]) << 16)
	}
	outB := make(starkv.BFloat16, len(q))
	must(t, step.Run(0, qb, outB))
	for i := range seqs {
		want := dense(qt[i*H*D:], keys[i], values[i], lengths[i])
		for j := range want {
			got := float64(math.Float32frombits(uint32(outB[i*H*D+j]) << 16))
			if math.Abs(got-want[j]) > 2e-2 {
				t.Fatalf("bf16 output %d: %g vs %g", j, got, want[j])
			}
		}
	}
	must(t, step.Plan(seqs[2:], []int32{4}))
	must(t, step.Run(1, q[:H*D], out[:H*D]))
	assertClose(t, dense(q, keys[2], values[2], 4), out[:H*D], 1e-5)
	mustFail(t, step.Run(0, q, out), starkv.ErrSize)
}

func TestAppendLatentsAndUint16(t *testing.T) {
	f := newFixture(t)
	rng := rand.New(rand.NewSource(14))
	n := 6
	k, v := gaussian(rng, n*G*D), gaussian(rng, n*G*D)
	width, err := f.profile.LatentWidth(0)
	must(t, err)
	latents := make([]float32, n*width)
	for tok := 0; tok < n; tok++ {
		col := 0
		for g := 0; g < G; g++ {
			down, err := f.profile.Projection(0, starkv.Keys, g, starkv.Down)
			must(t, err)
			for c := 0; c < D; c, col = c+1, col+1 {
				for i := 0; i < D; i++ {
					latents[tok*width+col] += k[(tok*G+g)*D+i] * down[i*D+c]
				}
			}
		}
		down, err := f.profile.Projection(0, starkv.Values, 0, starkv.Down)
		must(t, err)
		for c := 0; c < G*D; c, col = c+1, col+1 {
			for i := 0; i < G*D; i++ {
				latents[tok*width+col] += v[tok*G*D+i] * down[i*G*D+c]
			}
		}
	}
	seq, err := f.pool.NewSequence()
	must(t, err)
	must(t, f.pool.AppendLatents(0, repeat(n, seq), span(0, n), latents))
	q := gaussian(rng, H*D)
	out := make([]float32, H*D)
	must(t, f.pool.Attend(0, []int32{seq}, nil, q, out))
	assertClose(t, dense(q, k, v, n), out, 1e-5)
	mustFail(t, f.pool.AppendLatents(0, []int32{seq}, []int32{int32(n)}, latents[:width-1]), starkv.ErrSize)

	// a plain []uint16 is float16: zeros and ones are exact
	ones := make([]uint16, n*G*D)
	for i := range ones {
		ones[i] = 0x3c00 // 1.0
	}
	seq2, err := f.pool.NewSequence()
	must(t, err)
	must(t, f.pool.Append(0, repeat(n, seq2), span(0, n), make(starkv.Float16, n*G*D), ones))
	out16 := make([]uint16, H*D)
	must(t, f.pool.Attend(0, []int32{seq2}, nil, q, out16))
	for i, x := range out16 {
		if x != 0x3c00 {
			t.Fatalf("out16[%d] = %#x, want 1.0", i, x)
		}
	}
}

func TestSequencesForkReleaseSnapshot(t *testing.T) {
	f := newFixture(t)
	rng := rand.New(rand.NewSource(15))
	n := 20
	seq, err := f.pool.NewSequence()
	must(t, err)
	k, v := store(t, f.pool, seq, n, rng)
	child, err := f.pool.Fork(seq)
	must(t, err)
	q := gaussian(rng, H*D)
	a, b := make([]float32, H*D), make([]float32, H*D)
	must(t, f.pool.Attend(1, []int32{seq}, nil, q, a))
	must(t, f.pool.Attend(1, []int32{child}, nil, q, b))
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("fork differs")
		}
	}
	usage, err := f.pool.Usage()
	must(t, err)
	if usage.NSequences != 2 || usage.PageTokens != 16 {
		t.Fatalf("%+v", usage)
	}
	snapshot, err := f.pool.Export(seq)
	must(t, err)
	must(t, f.pool.Release(seq))
	must(t, f.pool.Release(child))
	restored, err := f.pool.Import(snapshot)
	must(t, err)
	must(t, f.pool.Attend(1, []int32{restored}, nil, q, a))
	assertClose(t, dense(q, k, v, n), a, 1e-5)

	other, err := starkv.NewPool(f.ctx, f.profile, starkv.DefaultPoolParams())
	must(t, err)
	defer other.Close()
	if other.Context() != f.ctx || other.Profile() != f.profile {
		t.Fatal("accessors")
	}
	s, err := other.Import(snapshot)
	must(t, err)
	if l, _ := other.Length(s); l != n {
		t.Fatalf("imported length %d", l)
	}
	bad := append([]byte(nil), snapshot...)
	bad[len(bad)-3] ^= 0x5a
	_, err = f.pool.Import(bad)
	mustFail(t, err, starkv.ErrCorruptData)
	_, err = f.pool.Import([]byte{1, 2, 3})
	mustFail(t, err, starkv.ErrData)
	foreign := weightProfile(t, f.ctx)
	defer foreign.Close()
	foreignPool, err := starkv.NewPool(f.ctx, foreign, starkv.DefaultPoolParams())
	must(t, err)
	defer foreignPool.Close()
	_, err = foreignPool.Import(snapshot)
	mustFail(t, err, starkv.ErrInvalidArgument)
}

func TestPoolFullWritesNothing(t *testing.T) {
	f := newFixture(t)
	pp := starkv.DefaultPoolParams()
	pp.CapacityTokens, pp.PageTokens = 32, 16
	small, err := starkv.NewPool(f.ctx, f.profile, pp)
	must(t, err)
	defer small.Close()
	seq, err := small.NewSequence()
	must(t, err)
	k, v := store(t, small, seq, 20, rand.New(rand.NewSource(16)))
	e := mustFail(t, small.Append(0, repeat(20, seq), span(20, 40), k, v), starkv.ErrPoolFull)
	if e.Status != starkv.StatusPoolFull || !errors.Is(e, starkv.ErrOutOfMemory) {
		t.Fatal(e)
	}
	if n, _ := small.Length(seq); n != 20 {
		t.Fatalf("length %d after a failed append", n)
	}
}

func TestArgumentErrors(t *testing.T) {
	f := newFixture(t)
	rng := rand.New(rand.NewSource(17))
	seq, err := f.pool.NewSequence()
	must(t, err)
	k, v := store(t, f.pool, seq, 4, rng)
	q := gaussian(rng, H*D)
	out := make([]float32, H*D)
	ids, pos := repeat(4, seq), span(4, 8)
	mustFail(t, f.pool.Append(0, ids, pos, k[:3*G*D], v), starkv.ErrSize)
	mustFail(t, f.pool.Append(0, ids, pos[:3], k, v), starkv.ErrSize)
	mustFail(t, f.pool.Append(0, ids, pos, make([]float64, 4*G*D), v), starkv.ErrDType)
	mustFail(t, f.pool.Append(0, ids, pos, k, make(starkv.Float16, 4*G*D)), starkv.ErrDType)
	mustFail(t, f.pool.Append(0, ids, pos, make([]int32, 4*G*D), v), starkv.ErrDType)
	mustFail(t, f.pool.Append(0, ids, pos, "keys", v), starkv.ErrDType)
	mustFail(t, f.pool.Append(0, ids, pos, nil, v), starkv.ErrInvalidArgument)
	mustFail(t, f.pool.Append(L, ids, pos, k, v), starkv.ErrInvalidArgument)
	mustFail(t, f.pool.Append(0, ids, span(10, 14), k, v), starkv.ErrInvalidArgument)
	mustFail(t, f.pool.Append(0, repeat(4, 4242), span(0, 4), k, v), starkv.ErrInvalidArgument)
	_, err = f.pool.Length(4242)
	mustFail(t, err, starkv.ErrInvalidArgument)
	mustFail(t, f.pool.Attend(0, []int32{seq}, []int32{100}, q, out), starkv.ErrInvalidArgument)
	mustFail(t, f.pool.Attend(0, []int32{seq}, nil, q, out[1:]), starkv.ErrSize)
	mustFail(t, f.pool.Attend(0, []int32{seq}, []int32{1, 2}, q, out), starkv.ErrSize)
	mustFail(t, f.pool.Attend(0, nil, nil, q, out), starkv.ErrInvalidArgument)
	// device memory on a CPU context is refused before the library sees it
	host := make([]float32, H*D)
	dev := starkv.Device{Ptr: unsafe.Pointer(&host[0]), Len: H * D, DType: starkv.DTypeF32}
	mustFail(t, f.pool.Attend(0, []int32{seq}, nil, dev, dev), starkv.ErrInvalidArgument)
	mustFail(t, f.pool.Attend(0, []int32{seq}, nil, starkv.Device{Len: -1}, out), starkv.ErrDType)
	if n, _ := f.pool.Length(seq); n != 4 {
		t.Fatalf("length %d: a failed call wrote", n)
	}
}

// ---- lifetimes ---------------------------------------------------------------------------------

func TestClosedHandles(t *testing.T) {
	f := newFixture(t)
	b, err := starkv.NewProfileBuilder(nil, exactParams())
	must(t, err)
	p := exactProfile(t)
	pool, err := starkv.NewPool(f.ctx, p, starkv.DefaultPoolParams())
	must(t, err)
	step, err := pool.NewDecodeStep()
	must(t, err)
	ctx, err := starkv.NewContext(starkv.ContextParams{})
	must(t, err)
	for _, c := range []interface{ Close() error }{step, pool, p, b, ctx} {
		must(t, c.Close())
		must(t, c.Close())
	}
	_, err = b.Finish()
	mustFail(t, err, starkv.ErrClosed)
	mustFail(t, b.SetLayerFactors(0, identityFactors()), starkv.ErrClosed)
	_, err = p.Info()
	mustFail(t, err, starkv.ErrClosed)
	_, err = p.Bytes()
	mustFail(t, err, starkv.ErrClosed)
	_, err = pool.NewSequence()
	mustFail(t, err, starkv.ErrClosed)
	mustFail(t, pool.Attend(0, []int32{0}, nil, make([]float32, H*D), make([]float32, H*D)), starkv.ErrClosed)
	mustFail(t, step.Plan([]int32{0}, nil), starkv.ErrClosed)
	_, err = starkv.NewPool(f.ctx, p, starkv.DefaultPoolParams())
	mustFail(t, err, starkv.ErrClosed)
	_, err = starkv.NewPool(ctx, f.profile, starkv.DefaultPoolParams())
	mustFail(t, err, starkv.ErrClosed)
	_, err = starkv.NewProfileBuilder(ctx, weightParams())
	mustFail(t, err, starkv.ErrClosed)
	_, err = starkv.NewPool(nil, f.profile, starkv.DefaultPoolParams())
	mustFail(t, err, starkv.ErrClosed)
	e := mustFail(t, ctx.Synchronize(), starkv.ErrState)
	if e.Status != starkv.StatusNullHandle {
		t.Fatal(e)
	}
}

func TestPoolKeepsProfileAndContextAlive(t *testing.T) {
	ctx, err := starkv.NewContext(starkv.ContextParams{})
	must(t, err)
	p := exactProfile(t)
	pool, err := starkv.NewPool(ctx, p, starkv.DefaultPoolParams())
	must(t, err)
	must(t, p.Close())
	must(t, ctx.Close())
	seq, err := pool.NewSequence()
	must(t, err)
	store(t, pool, seq, 3, rand.New(rand.NewSource(18)))
	step, err := pool.NewDecodeStep()
	must(t, err)
	must(t, pool.Close())
	must(t, step.Plan([]int32{seq}, nil)) // the step holds the pool
	must(t, step.Run(0, make([]float32, H*D), make([]float32, H*D)))
	must(t, step.Close())
}

func TestFinalizersAreASafetyNet(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 20; i++ {
		p, err := starkv.NewPool(f.ctx, f.profile, starkv.DefaultPoolParams())
		must(t, err)
		_, err = p.NewDecodeStep()
		must(t, err)
	}
	for i := 0; i < 5; i++ {
		runtime.GC()
		_, err := f.pool.Usage() // runs the releases the finalizers deferred to this context
		must(t, err)
	}
	seq, err := f.pool.NewSequence()
	must(t, err)
	store(t, f.pool, seq, 2, rand.New(rand.NewSource(19)))
}

func TestGoroutinesWithTheirOwnContexts(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(100 + i)))
			ctx, err := starkv.NewContext(starkv.ContextParams{NThreads: 1})
			if err != nil {
				errs <- err
				return
			}
			defer ctx.Close()
			b, err := starkv.NewProfileBuilder(nil, exactParams())
			if err != nil {
				errs <- err
				return
			}
			defer b.Close()
			for l := 0; l < L; l++ {
				if err := b.SetLayerFactors(l, identityFactors()); err != nil {
					errs <- err
					return
				}
			}
			p, err := b.Finish()
			if err != nil {
				errs <- err
				return
			}
			defer p.Close()
			pool, err := starkv.NewPool(ctx, p, starkv.DefaultPoolParams())
			if err != nil {
				errs <- err
				return
			}
			defer pool.Close()
			seq, _ := pool.NewSequence()
			k, v := gaussian(rng, 8*G*D), gaussian(rng, 8*G*D)
			for l := 0; l < L; l++ {
				if err := pool.Append(l, repeat(8, seq), span(0, 8), k, v); err != nil {
					errs <- err
					return
				}
			}
			for round := 0; round < 20; round++ {
				// failures on one goroutine must never leak into another's results
				if err := pool.Attend(0, []int32{seq}, nil, make([]float32, 3), make([]float32, H*D)); !errors.Is(err, starkv.ErrSize) {
					errs <- err
					return
				}
				if err := pool.Attend(0, []int32{seq}, nil, gaussian(rng, H*D), make([]float32, H*D)); err != nil {
					errs <- err
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
