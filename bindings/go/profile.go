package starkv

import (
	"runtime"
	"strings"

	"github.com/starkv/starkv/bindings/go/internal/raw"
)

// LayerData is what one layer contributes to a profile build: weights and/or calibration data.
type LayerData struct {
	WK, WV       Tensor       // [G*D, d] (OutIn) or [d, G*D] (InOut)
	WQ           Tensor       // optional [H*D, d]
	WeightLayout WeightLayout // OutIn (the zero value) is the layout of HF checkpoints
	CalibHidden  Tensor       // optional [n, d]
	CalibK       Tensor       // optional [m, G, D] pre-RoPE keys
	CalibV       Tensor       // optional [m, G, D]
	CalibQ       Tensor       // optional [m, H, D] post-RoPE queries
}

// LayerFactors are factors computed elsewhere for one layer (float32). Head-wise: one rank per
// KV head, down matrices [D x r_g] concatenated; joint: one rank, [G*D x r]. Up matrices are
// [r x in_dim], or nil for the transpose of down. Set both decompositions: the zero value is
// HeadWise.
type LayerFactors struct {
	KeyDecomposition, ValueDecomposition Decomposition
	KeyRanks, ValueRanks                 []int32
	KeyDown, KeyUp                       []float32
	ValueDown, ValueUp                   []float32
}

// ProfileBuilder builds a Profile layer by layer.
type ProfileBuilder struct {
	handle
	ctx *Context
}

// NewProfileBuilder starts a build; ctx chooses where the linear algebra runs (nil: the CPU).
func NewProfileBuilder(ctx *Context, p ProfileParams) (*ProfileBuilder, error) {
	params := p.toRaw()
	defer raw.DeleteStarkv_profile_params(params)
	list := viewOf(p.UncompressedLayers)
	var h raw.Struct_SS_skv_handle
	var err error
	if ctx == nil {
		err = call(func() {
			h = raw.Skv_builder_create(nil, 1, params, list.ptr, list.nbytes, list.kind)
		})
	} else {
		err = ctx.do(func(c raw.Struct_SS_skv_handle) {
			h = raw.Skv_builder_create(c, 0, params, list.ptr, list.nbytes, list.kind)
		})
	}
	if err != nil {
		return nil, err
	}
	b := &ProfileBuilder{handle: newHandle(h), ctx: ctx}
	runtime.SetFinalizer(b, (*ProfileBuilder).finalize)
	return b, nil
}

// AddLayer decomposes one layer from its weights and/or calibration data.
func (b *ProfileBuilder) AddLayer(layer int, d LayerData) error {
	wk, wv, wq := viewOf(d.WK), viewOf(d.WV), viewOf(d.WQ)
	ch, ck, cv, cq := viewOf(d.CalibHidden), viewOf(d.CalibK), viewOf(d.CalibV), viewOf(d.CalibQ)
	return b.do(func(h raw.Struct_SS_skv_handle) {
		raw.Skv_builder_add_layer(h, int32(layer), int32(d.WeightLayout), dtypeAuto,
			wk.ptr, wk.nbytes, wk.kind, wv.ptr, wv.nbytes, wv.kind, wq.ptr, wq.nbytes, wq.kind,
			dtypeAuto, ch.ptr, ch.nbytes, ch.kind, ck.ptr, ck.nbytes, ck.kind,
			cv.ptr, cv.nbytes, cv.kind, cq.ptr, cq.nbytes, cq.kind)
	})
}

// SetLayerFactors uses factors computed elsewhere for a layer (its ranks are fixed).
func (b *ProfileBuilder) SetLayerFactors(layer int, f LayerFactors) error {
	kr, kd, ku := viewOf(f.KeyRanks), viewOf(f.KeyDown), viewOf(f.KeyUp)
	vr, vd, vu := viewOf(f.ValueRanks), viewOf(f.ValueDown), viewOf(f.ValueUp)
	return b.do(func(h raw.Struct_SS_skv_handle) {
		raw.Skv_builder_set_layer_factors(h, int32(layer), int32(f.KeyDecomposition),
			int32(f.ValueDecomposition), kr.ptr, kr.nbytes, kr.kind, kd.ptr, kd.nbytes, kd.kind,
			ku.ptr, ku.nbytes, ku.kind, vr.ptr, vr.nbytes, vr.kind, vd.ptr, vd.nbytes, vd.kind,
			vu.ptr, vu.nbytes, vu.kind)
	})
}

// Finish allocates ranks across the layers and returns the profile. A builder finishes once.
func (b *ProfileBuilder) Finish() (*Profile, error) {
	var h raw.Struct_SS_skv_handle
	if err := b.do(func(bh raw.Struct_SS_skv_handle) { h = raw.Skv_builder_finish(bh) }); err != nil {
		return nil, err
	}
	return newProfile(h), nil
}

// Close releases the builder.
func (b *ProfileBuilder) Close() error {
	runtime.SetFinalizer(b, nil)
	return b.close()
}

// Profile says how one model's keys and values are compressed: immutable, shareable across
// goroutines, saved as a versioned, checksummed file. Pools keep their profile alive.
type Profile struct {
	handle
}

func newProfile(h raw.Struct_SS_skv_handle) *Profile {
	p := &Profile{handle: newHandle(h)}
	runtime.SetFinalizer(p, (*Profile).finalize)
	return p
}

func checkPath(path string) error {
	if strings.IndexByte(path, 0) >= 0 {
		return fail(StatusInvalidArgument, "path contains a NUL byte")
	}
	return nil
}

// LoadProfile reads a .starkv profile file.
func LoadProfile(path string) (*Profile, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	var h raw.Struct_SS_skv_handle
	if err := call(func() { h = raw.Skv_profile_load(path) }); err != nil {
		return nil, err
	}
	return newProfile(h), nil
}

// LoadProfileBytes reads a profile from memory.
func LoadProfileBytes(data []byte) (*Profile, error) {
	v := bytesView(data)
	var h raw.Struct_SS_skv_handle
	if err := call(func() { h = raw.Skv_profile_load_from_buffer(v.ptr, v.nbytes, v.kind) }); err != nil {
		return nil, err
	}
	return newProfile(h), nil
}

// Save writes the profile file.
func (p *Profile) Save(path string) error {
	if err := checkPath(path); err != nil {
		return err
	}
	return p.do(func(h raw.Struct_SS_skv_handle) { raw.Skv_profile_save(h, path) })
}

// Bytes is the profile file's contents.
func (p *Profile) Bytes() ([]byte, error) {
	var out []byte
	err := p.do(func(h raw.Struct_SS_skv_handle) {
		size := raw.Skv_profile_save_size(h)
		if raw.Skv_error_status() != 0 {
			return
		}
		out = make([]byte, size)
		v := bytesView(out)
		n := raw.Skv_profile_save_to_buffer(h, v.ptr, v.nbytes, v.kind)
		if n >= 0 {
			out = out[:n]
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Info describes the profile.
func (p *Profile) Info() (ProfileInfo, error) {
	var info ProfileInfo
	err := p.do(func(h raw.Struct_SS_skv_handle) {
		r := raw.Skv_profile_info(h)
		info = profileInfoOf(r)
		raw.DeleteStarkv_profile_info(r)
	})
	return info, err
}

// LayerInfo describes one layer.
func (p *Profile) LayerInfo(layer int) (LayerInfo, error) {
	var info LayerInfo
	err := p.do(func(h raw.Struct_SS_skv_handle) {
		r := raw.Skv_profile_layer_info(h, int32(layer))
		info = layerInfoOf(r)
		raw.DeleteStarkv_layer_info(r)
	})
	return info, err
}

// Ranks are the ranks of a layer's key or value groups.
func (p *Profile) Ranks(layer int, kind TensorKind) ([]int32, error) {
	var ranks []int32
	err := p.do(func(h raw.Struct_SS_skv_handle) {
		n := raw.Skv_profile_group_count(h, int32(layer), int32(kind))
		if raw.Skv_error_status() != 0 {
			return
		}
		ranks = make([]int32, n+1) // +1: never an empty slice, whose address is nil
		v := viewOf(ranks)
		n = raw.Skv_profile_get_ranks(h, int32(layer), int32(kind), v.ptr, v.nbytes, v.kind)
		if n >= 0 {
			ranks = ranks[:n]
		}
	})
	if err != nil {
		return nil, err
	}
	return ranks, nil
}

// Projection is one group's DOWN [in_dim x rank] or UP [rank x in_dim] projection, float32, with
// the rotation folded in (in_dim = D head-wise, G*D joint).
func (p *Profile) Projection(layer int, kind TensorKind, group int, which Projection) ([]float32, error) {
	var out []float32
	err := p.do(func(h raw.Struct_SS_skv_handle) {
		n := raw.Skv_profile_projection_size(h, int32(layer), int32(kind), int32(group), int32(which))
		if raw.Skv_error_status() != 0 {
			return
		}
		out = make([]float32, n)
		v := sliceView(out, kindF32)
		raw.Skv_profile_get_projection(h, int32(layer), int32(kind), int32(group), int32(which),
			v.ptr, v.nbytes, v.kind)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LatentWidth is the latent channels per token of a layer: the row width of AppendLatents.
func (p *Profile) LatentWidth(layer int) (int, error) {
	var w int32
	err := p.do(func(h raw.Struct_SS_skv_handle) { w = raw.Skv_profile_latent_width(h, int32(layer)) })
	return int(w), err
}

// Close releases the caller's reference; pools built on the profile keep theirs.
func (p *Profile) Close() error {
	runtime.SetFinalizer(p, nil)
	return p.close()
}
