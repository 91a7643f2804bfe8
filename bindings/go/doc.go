// Package starkv is the Go binding of starkv, a compressed KV cache for LLM inference (STAR-KV).
//
//	ctx, err := starkv.NewContext(starkv.ContextParams{})       // the CPU
//	defer ctx.Close()
//	p := starkv.DefaultProfileParams()
//	p.NLayers, p.NHeads, p.NKVHeads, p.HeadDim, p.HiddenDim = 2, 8, 2, 64, 256
//	b, err := starkv.NewProfileBuilder(ctx, p)
//	err = b.AddLayer(0, starkv.LayerData{WK: wk, WV: wv})      // []float32 [G*D, d]
//	profile, err := b.Finish()
//	pool, err := starkv.NewPool(ctx, profile, starkv.DefaultPoolParams())
//	seq, err := pool.NewSequence()
//	err = pool.Append(0, seqIDs, positions, keys, values)       // [n, G, D]
//	err = pool.Attend(0, []int32{seq}, nil, query, out)         // [1, H, D]
//
// Tensors are Go slices passed to the library in place (no copies): []float32, []uint16 or
// Float16 for float16 bit patterns, BFloat16 for bfloat16 bit patterns, and Device for device
// memory on a CUDA context. Their element type and length are checked against the profile before
// the library is called; a mismatch is an error, never a crash.
//
// Every call returns an error of type *Error on failure; errors.Is matches families such as
// ErrPoolFull, ErrSize, ErrDType, ErrClosed. Handles have Close methods (finalizers only release
// what a program forgot); a closed handle returns ErrClosed. A pool keeps its context and profile
// alive, a decode step its pool. A context and everything made from it are used by one goroutine
// at a time.
//
// Building: the generated layer (internal/raw) needs swig (go generate ./...), and cgo needs the
// starkv header and library: e.g. CGO_CFLAGS=-I<prefix>/include CGO_LDFLAGS=-L<prefix>/lib.
package starkv
