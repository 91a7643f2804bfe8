// Command basic is the whole starkv round trip from Go: build a profile from (random) projection
// weights, create a pool, append a sequence's keys and values, attend, snapshot the sequence and
// restore it. The same scenario and numbers as samples/c/basic.c (same generator and seeds, same
// output). Run from samples/go:  go run ./basic   (with swig-generated bindings, see
// bindings/go/doc.go, and CGO_CFLAGS/CGO_LDFLAGS pointing at starkv)
package main

import (
	"fmt"
	"math"
	"os"

	starkv "github.com/starkv/starkv/bindings/go"
)

const (
	layers  = 2
	heads   = 8
	kvHeads = 2
	headDim = 64
	hidden  = 256
	tokens  = 100
	kvWidth = kvHeads * headDim
	qWidth  = heads * headDim
)

// fill returns n reproducible values in [-scale, scale): the C sample's generator.
func fill(n int, seed uint32, scale float32) []float32 {
	x := make([]float32, n)
	state := seed
	for i := range x {
		state = state*1664525 + 1013904223
		x[i] = scale * (float32((state>>8)&0xffff)/32768.0 - 1.0)
	}
	return x
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func main() {
	ctx, err := starkv.NewContext(starkv.ContextParams{})
	check(err)
	defer ctx.Close()

	// 1. A profile: 75% low-rank compression, 4-bit outliers and 3-bit inliers.
	pp := starkv.DefaultProfileParams()
	pp.NLayers, pp.NHeads, pp.NKVHeads, pp.HeadDim, pp.HiddenDim = layers, heads, kvHeads, headDim, hidden
	pp.TargetCompression = 0.75
	pp.InlierBits, pp.OutlierBits = 3, 4
	builder, err := starkv.NewProfileBuilder(ctx, pp)
	check(err)
	for layer := 0; layer < layers; layer++ {
		// [G*D, d]: the layout of HF/Llama checkpoints
		check(builder.AddLayer(layer, starkv.LayerData{
			WK: fill(kvWidth*hidden, 11+uint32(layer), 0.05),
			WV: fill(kvWidth*hidden, 23+uint32(layer), 0.05),
		}))
	}
	profile, err := builder.Finish()
	check(err)
	builder.Close()
	info, err := profile.Info()
	check(err)
	fmt.Printf("profile: %d bytes/token vs %d dense fp16: compression %.1f%% (%.1fx)\n",
		info.BytesPerToken, info.DenseBytesPerToken, 100.0*info.Compression, info.CompressionFactor)

	// 2. A pool and one sequence of tokens tokens in every layer.
	poolParams := starkv.DefaultPoolParams()
	poolParams.CapacityTokens = 4096
	pool, err := starkv.NewPool(ctx, profile, poolParams)
	check(err)
	defer pool.Close()
	profile.Close() // the pool keeps its own reference
	seq, err := pool.NewSequence()
	check(err)
	seqIDs, positions := make([]int32, tokens), make([]int32, tokens)
	for t := range seqIDs {
		seqIDs[t], positions[t] = seq, int32(t)
	}
	for layer := 0; layer < layers; layer++ {
		check(pool.Append(layer, seqIDs, positions, fill(tokens*kvWidth, 101+uint32(layer), 1.0),
			fill(tokens*kvWidth, 202+uint32(layer), 1.0)))
	}

	// 3. Attend with a post-RoPE query in the last layer.
	query := fill(qWidth, 303, 1.0)
	kvLength := []int32{tokens}
	out := make([]float32, qWidth)
	check(pool.Attend(layers-1, []int32{seq}, kvLength, query, out))

	// 4. Snapshot the sequence, restore it as a new sequence, attend again: identical output.
	snapshot, err := pool.Export(seq)
	check(err)
	restored, err := pool.Import(snapshot)
	check(err)
	outRestored := make([]float32, qWidth)
	check(pool.Attend(layers-1, []int32{restored}, kvLength, query, outRestored))
	diff, norm := 0.0, 0.0
	for i := range out {
		diff += math.Abs(float64(out[i]) - float64(outRestored[i]))
		norm += math.Abs(float64(out[i]))
	}
	fmt.Printf("attention output: out[0..3] = %.6f %.6f %.6f %.6f, mean |out| = %.6f\n",
		out[0], out[1], out[2], out[3], norm/qWidth)
	fmt.Printf("snapshot: %d bytes for %d tokens; restored output differs by %.3g\n",
		len(snapshot), tokens, diff)
	if diff != 0 {
		os.Exit(1)
	}
}
