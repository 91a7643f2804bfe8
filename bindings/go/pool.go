package starkv

import (
	"runtime"

	"github.com/starkv/starkv/bindings/go/internal/raw"
)

// Pool holds pages of quantized latents and the sequences stored in them. It keeps its context
// and profile alive. Tensors are in the context's memory: slices on the CPU, Device on CUDA;
// keys and values [n, G, D], queries and outputs [n, H, D], latents [n, LatentWidth(layer)].
type Pool struct {
	handle
	ctx     *Context
	profile *Profile
	heads   int
	headDim int
}

// NewPool reserves a pool's memory for a profile on a context.
func NewPool(ctx *Context, profile *Profile, p PoolParams) (*Pool, error) {
	if ctx == nil || profile == nil {
		return nil, fail(StatusNullHandle, "NewPool needs a context and a profile")
	}
	params := p.toRaw()
	defer raw.DeleteStarkv_pool_params(params)
	var h raw.Struct_SS_skv_handle
	err := call(func() { h = raw.Skv_pool_create(ctx.raw, profile.raw, params) })
	runtime.KeepAlive(ctx)
	runtime.KeepAlive(profile)
	if err != nil {
		return nil, err
	}
	pool := &Pool{handle: newHandle(h), ctx: ctx, profile: profile}
	runtime.SetFinalizer(pool, (*Pool).finalize)
	info, err := profile.Info()
	if err != nil {
		pool.Close()
		return nil, err
	}
	pool.heads, pool.headDim = int(info.NHeads), int(info.HeadDim)
	return pool, nil
}

// Context is the pool's context.
func (p *Pool) Context() *Context { return p.ctx }

// Profile is the pool's profile.
func (p *Pool) Profile() *Profile { return p.profile }

// Usage reports capacity, tokens and bytes in use, pages and sequences.
func (p *Pool) Usage() (PoolUsage, error) {
	var u PoolUsage
	err := p.do(func(h raw.Struct_SS_skv_handle) {
		r := raw.Skv_pool_usage(h)
		u = poolUsageOf(r)
		raw.DeleteStarkv_pool_usage(r)
	})
	return u, err
}

// NewSequence creates an empty sequence and returns its id.
func (p *Pool) NewSequence() (int32, error) {
	var seq int32
	err := p.do(func(h raw.Struct_SS_skv_handle) { seq = raw.Skv_seq_create(h) })
	return seq, err
}

// Fork creates a sequence sharing all of parent's tokens (copy-on-write).
func (p *Pool) Fork(parent int32) (int32, error) {
	var seq int32
	err := p.do(func(h raw.Struct_SS_skv_handle) { seq = raw.Skv_seq_fork(h, parent) })
	return seq, err
}

// Release frees a sequence's pages (shared pages stay with the other sequences).
func (p *Pool) Release(seq int32) error {
	return p.do(func(h raw.Struct_SS_skv_handle) { raw.Skv_seq_release(h, seq) })
}

// Length is the tokens stored in every layer of the sequence.
func (p *Pool) Length(seq int32) (int, error) {
	var n int32
	err := p.do(func(h raw.Struct_SS_skv_handle) { n = raw.Skv_seq_length(h, seq) })
	return int(n), err
}

// Export snapshots a sequence (zstd-compressed, checksummed).
func (p *Pool) Export(seq int32) ([]byte, error) {
	var out []byte
	err := p.do(func(h raw.Struct_SS_skv_handle) {
		size := raw.Skv_seq_export_size(h, seq)
		if raw.Skv_error_status() != 0 {
			return
		}
		out = make([]byte, size)
		v := bytesView(out)
		n := raw.Skv_seq_export(h, seq, v.ptr, v.nbytes, v.kind)
		if n >= 0 {
			out = out[:n]
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Import restores a snapshot (from a pool with the same profile) as a new sequence.
func (p *Pool) Import(snapshot []byte) (int32, error) {
	v := bytesView(snapshot)
	var seq int32
	err := p.do(func(h raw.Struct_SS_skv_handle) { seq = raw.Skv_seq_import(h, v.ptr, v.nbytes, v.kind) })
	return seq, err
}

// Append stores new tokens' pre-RoPE keys and values, each [n, G, D], for one layer: token i
// belongs to seqIDs[i] at positions[i].
func (p *Pool) Append(layer int, seqIDs, positions []int32, keys, values Tensor) error {
	ids, pos, k, v := viewOf(seqIDs), viewOf(positions), viewOf(keys), viewOf(values)
	return p.do(func(h raw.Struct_SS_skv_handle) {
		raw.Skv_append(h, int32(layer), ids.ptr, ids.nbytes, ids.kind, pos.ptr, pos.nbytes,
			pos.kind, k.ptr, k.nbytes, k.kind, v.ptr, v.nbytes, v.kind, dtypeAuto)
	})
}

// AppendLatents stores latents computed with the profile's DOWN projections:
// [n, LatentWidth(layer)].
func (p *Pool) AppendLatents(layer int, seqIDs, positions []int32, latents Tensor) error {
	ids, pos, l := viewOf(seqIDs), viewOf(positions), viewOf(latents)
	return p.do(func(h raw.Struct_SS_skv_handle) {
		raw.Skv_append_latents(h, int32(layer), ids.ptr, ids.nbytes, ids.kind, pos.ptr,
			pos.nbytes, pos.kind, l.ptr, l.nbytes, l.kind, dtypeAuto)
	})
}

// Attend computes attention of post-RoPE queries [n, H, D] over the stored tokens of seqIDs (one
// per query; kvLengths, may be nil: the first kvLengths[i] tokens) into out [n, H, D].
func (p *Pool) Attend(layer int, seqIDs, kvLengths []int32, queries, out Tensor) error {
	ids, lens, q, o := viewOf(seqIDs), viewOf(kvLengths), viewOf(queries), viewOf(out)
	return p.do(func(h raw.Struct_SS_skv_handle) {
		raw.Skv_attend(h, int32(layer), ids.ptr, ids.nbytes, ids.kind, lens.ptr, lens.nbytes,
			lens.kind, q.ptr, q.nbytes, q.kind, dtypeAuto, o.ptr, o.nbytes, o.kind, dtypeAuto)
	})
}

// RowWidth is H*D: the elements of one query or output row.
func (p *Pool) RowWidth() int { return p.heads * p.headDim }

// NewDecodeStep creates a decode step on the pool: plan a batch once, run it per layer.
func (p *Pool) NewDecodeStep() (*DecodeStep, error) {
	var h raw.Struct_SS_skv_handle
	if err := p.do(func(ph raw.Struct_SS_skv_handle) { h = raw.Skv_step_create(ph) }); err != nil {
		return nil, err
	}
	s := &DecodeStep{handle: newHandle(h), pool: p}
	runtime.SetFinalizer(s, (*DecodeStep).finalize)
	return s, nil
}

// Close releases the pool (decode steps on it keep it alive until they are closed too).
func (p *Pool) Close() error {
	runtime.SetFinalizer(p, nil)
	return p.close()
}

// DecodeStep is a planned batch of queries. It keeps its pool alive.
type DecodeStep struct {
	handle
	pool *Pool
}

// Pool is the step's pool.
func (s *DecodeStep) Pool() *Pool { return s.pool }

// Plan plans queries over seqIDs (kvLengths nil: each sequence's length now).
func (s *DecodeStep) Plan(seqIDs, kvLengths []int32) error {
	ids, lens := viewOf(seqIDs), viewOf(kvLengths)
	return s.do(func(h raw.Struct_SS_skv_handle) {
		raw.Skv_step_plan(h, ids.ptr, ids.nbytes, ids.kind, lens.ptr, lens.nbytes, lens.kind)
	})
}

// Planned is the number of queries in the current plan (-1 before the first plan).
func (s *DecodeStep) Planned() (int, error) {
	var n int32
	err := s.do(func(h raw.Struct_SS_skv_handle) { n = raw.Skv_step_planned(h) })
	return int(n), err
}

// Run runs the plan for one layer: queries and out [Planned(), H, D].
func (s *DecodeStep) Run(layer int, queries, out Tensor) error {
	q, o := viewOf(queries), viewOf(out)
	return s.do(func(h raw.Struct_SS_skv_handle) {
		raw.Skv_step_run(h, int32(layer), q.ptr, q.nbytes, q.kind, dtypeAuto, o.ptr, o.nbytes,
			o.kind, dtypeAuto)
	})
}

// Close releases the step.
func (s *DecodeStep) Close() error {
	runtime.SetFinalizer(s, nil)
	return s.close()
}
