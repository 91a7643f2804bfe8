package starkv

import "github.com/starkv/starkv/bindings/go/internal/raw"

// ContextParams chooses a backend. The zero value is the CPU with one worker per core.
type ContextParams struct {
	Backend  Backend
	Device   int32   // CUDA device ordinal (CUDA only)
	Stream   uintptr // a cudaStream_t the caller owns; 0 = the default stream (CUDA only)
	NThreads int32   // CPU worker threads; 0 = one per core
}

// ProfileParams describe the model and how to compress it (see starkv_profile_params in
// include/starkv/starkv.h for every field). Start from DefaultProfileParams.
type ProfileParams struct {
	NLayers, NHeads, NKVHeads, HeadDim, HiddenDim int32

	RopeStyle               RopeStyle
	RopeDim                 int32
	RopeTheta               float32
	RopeScaling             RopeScaling
	RopeScalingFactor       float32
	RopeLowFreqFactor       float32
	RopeHighFreqFactor      float32
	RopeOriginalMaxPosition int32
	AttentionScale          float32

	TargetCompression     float32
	KeyCompression        float32
	ValueCompression      float32
	Allocator             RankAllocator
	KeyDecomposition      Decomposition
	ValueDecomposition    Decomposition
	MinKeyRank            int32
	KeyRankTile           int32
	ValueRankTile         int32
	UncompressedLayers    []int32 // kept at full rank and 16 bits
	TargetCountsAllLayers bool

	WhiteningLambda      float32
	MaxCalibrationTokens int32

	STMaxSteps      int32
	STSharpness     float32
	STLearningRate  float32
	STKeyPressure   float32
	STValuePressure float32
	STDistillTokens int32
	Seed            uint64

	InlierBits        int32
	OutlierBits       int32
	OutlierFraction   float32
	Hadamard          bool
	Pack3BitInNibbles bool
}

func boolInt(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// DefaultProfileParams are the library's defaults (the model fields are zero: set them).
func DefaultProfileParams() ProfileParams {
	r := raw.Starkv_profile_params_default()
	defer raw.DeleteStarkv_profile_params(r)
	return ProfileParams{
		NLayers: r.GetN_layers(), NHeads: r.GetN_heads(), NKVHeads: r.GetN_kv_heads(),
		HeadDim: r.GetHead_dim(), HiddenDim: r.GetHidden_dim(),
		RopeStyle: RopeStyle(r.GetRope_style()), RopeDim: r.GetRope_dim(),
		RopeTheta: r.GetRope_theta(), RopeScaling: RopeScaling(r.GetRope_scaling()),
		RopeScalingFactor: r.GetRope_scaling_factor(), RopeLowFreqFactor: r.GetRope_low_freq_factor(),
		RopeHighFreqFactor:      r.GetRope_high_freq_factor(),
		RopeOriginalMaxPosition: r.GetRope_original_max_position(),
		AttentionScale:          r.GetAttention_scale(),
		TargetCompression:       r.GetTarget_compression(), KeyCompression: r.GetKey_compression(),
		ValueCompression: r.GetValue_compression(), Allocator: RankAllocator(r.GetAllocator()),
		KeyDecomposition:   Decomposition(r.GetKey_decomposition()),
		ValueDecomposition: Decomposition(r.GetValue_decomposition()),
		MinKeyRank:         r.GetMin_key_rank(), KeyRankTile: r.GetKey_rank_tile(),
		ValueRankTile:         r.GetValue_rank_tile(),
		TargetCountsAllLayers: r.GetTarget_counts_all_layers() != 0,
		WhiteningLambda:       r.GetWhitening_lambda(), MaxCalibrationTokens: r.GetMax_calibration_tokens(),
		STMaxSteps: r.GetSt_max_steps(), STSharpness: r.GetSt_sharpness(),
		STLearningRate: r.GetSt_learning_rate(), STKeyPressure: r.GetSt_key_pressure(),
		STValuePressure: r.GetSt_value_pressure(), STDistillTokens: r.GetSt_distill_tokens(),
		Seed:       r.GetSeed(),
		InlierBits: r.GetInlier_bits(), OutlierBits: r.GetOutlier_bits(),
		OutlierFraction: r.GetOutlier_fraction(), Hadamard: r.GetHadamard() != 0,
		Pack3BitInNibbles: r.GetPack_3bit_in_nibbles() != 0,
	}
}

// toRaw fills a native struct; the caller deletes it.
func (p *ProfileParams) toRaw() raw.Starkv_profile_params {
	r := raw.Starkv_profile_params_default()
	r.SetN_layers(p.NLayers)
	r.SetN_heads(p.NHeads)
	r.SetN_kv_heads(p.NKVHeads)
	r.SetHead_dim(p.HeadDim)
	r.SetHidden_dim(p.HiddenDim)
	r.SetRope_style(raw.Enum_SS_starkv_rope_style(p.RopeStyle))
	r.SetRope_dim(p.RopeDim)
	r.SetRope_theta(p.RopeTheta)
	r.SetRope_scaling(raw.Enum_SS_starkv_rope_scaling(p.RopeScaling))
	r.SetRope_scaling_factor(p.RopeScalingFactor)
	r.SetRope_low_freq_factor(p.RopeLowFreqFactor)
	r.SetRope_high_freq_factor(p.RopeHighFreqFactor)
	r.SetRope_original_max_position(p.RopeOriginalMaxPosition)
	r.SetAttention_scale(p.AttentionScale)
	r.SetTarget_compression(p.TargetCompression)
	r.SetKey_compression(p.KeyCompression)
	r.SetValue_compression(p.ValueCompression)
	r.SetAllocator(raw.Enum_SS_starkv_rank_allocator(p.Allocator))
	r.SetKey_decomposition(raw.Enum_SS_starkv_decomposition(p.KeyDecomposition))
	r.SetValue_decomposition(raw.Enum_SS_starkv_decomposition(p.ValueDecomposition))
	r.SetMin_key_rank(p.MinKeyRank)
	r.SetKey_rank_tile(p.KeyRankTile)
	r.SetValue_rank_tile(p.ValueRankTile)
	r.SetTarget_counts_all_layers(boolInt(p.TargetCountsAllLayers))
	r.SetWhitening_lambda(p.WhiteningLambda)
	r.SetMax_calibration_tokens(p.MaxCalibrationTokens)
	r.SetSt_max_steps(p.STMaxSteps)
	r.SetSt_sharpness(p.STSharpness)
	r.SetSt_learning_rate(p.STLearningRate)
	r.SetSt_key_pressure(p.STKeyPressure)
	r.SetSt_value_pressure(p.STValuePressure)
	r.SetSt_distill_tokens(p.STDistillTokens)
	r.SetSeed(p.Seed)
	r.SetInlier_bits(p.InlierBits)
	r.SetOutlier_bits(p.OutlierBits)
	r.SetOutlier_fraction(p.OutlierFraction)
	r.SetHadamard(boolInt(p.Hadamard))
	r.SetPack_3bit_in_nibbles(boolInt(p.Pack3BitInNibbles))
	return r
}

// PoolParams size a pool. Start from DefaultPoolParams.
type PoolParams struct {
	PageTokens     int32 // tokens per page
	CapacityPages  int64 // pages to reserve; 0 = derive from CapacityTokens
	CapacityTokens int64 // used when CapacityPages is 0
	MaxSequences   int32 // live sequences at once
}

// DefaultPoolParams are the library's defaults.
func DefaultPoolParams() PoolParams {
	r := raw.Starkv_pool_params_default()
	defer raw.DeleteStarkv_pool_params(r)
	return PoolParams{PageTokens: r.GetPage_tokens(), CapacityPages: r.GetCapacity_pages(),
		CapacityTokens: r.GetCapacity_tokens(), MaxSequences: r.GetMax_sequences()}
}

func (p *PoolParams) toRaw() raw.Starkv_pool_params {
	r := raw.Starkv_pool_params_default()
	r.SetPage_tokens(p.PageTokens)
	r.SetCapacity_pages(p.CapacityPages)
	r.SetCapacity_tokens(p.CapacityTokens)
	r.SetMax_sequences(p.MaxSequences)
	return r
}

// ProfileInfo describes a profile: shape, bits, bytes per token, compression (DESIGN §2.4).
type ProfileInfo struct {
	NLayers, NHeads, NKVHeads, HeadDim int32
	InlierBits, OutlierBits            int32
	NUncompressedLayers                int32
	LatentChannelsPerToken             int64
	DenseChannelsPerToken              int64
	BytesPerToken                      int64
	DenseBytesPerToken                 int64
	LowRankCompression                 float64
	LowRankCompressionCompressedLayers float64
	Compression                        float64
	CompressionCompressedLayers        float64
	CompressionFactor                  float64
}

func profileInfoOf(r raw.Starkv_profile_info) ProfileInfo {
	return ProfileInfo{
		NLayers: r.GetN_layers(), NHeads: r.GetN_heads(), NKVHeads: r.GetN_kv_heads(),
		HeadDim: r.GetHead_dim(), InlierBits: r.GetInlier_bits(), OutlierBits: r.GetOutlier_bits(),
		NUncompressedLayers:                r.GetN_uncompressed_layers(),
		LatentChannelsPerToken:             r.GetLatent_channels_per_token(),
		DenseChannelsPerToken:              r.GetDense_channels_per_token(),
		BytesPerToken:                      r.GetBytes_per_token(),
		DenseBytesPerToken:                 r.GetDense_bytes_per_token(),
		LowRankCompression:                 r.GetLow_rank_compression(),
		LowRankCompressionCompressedLayers: r.GetLow_rank_compression_compressed_layers(),
		Compression:                        r.GetCompression(),
		CompressionCompressedLayers:        r.GetCompression_compressed_layers(),
		CompressionFactor:                  r.GetCompression_factor(),
	}
}

// LayerInfo describes one layer of a profile.
type LayerInfo struct {
	Compressed                   bool
	KeyDecomposition             Decomposition
	ValueDecomposition           Decomposition
	NKeyGroups, NValueGroups     int32
	KeyRankTotal, ValueRankTotal int32
	BytesPerToken                int64
}

func layerInfoOf(r raw.Starkv_layer_info) LayerInfo {
	return LayerInfo{
		Compressed: r.GetCompressed() != 0, KeyDecomposition: Decomposition(r.GetKey_decomposition()),
		ValueDecomposition: Decomposition(r.GetValue_decomposition()),
		NKeyGroups:         r.GetN_key_groups(), NValueGroups: r.GetN_value_groups(),
		KeyRankTotal: r.GetKey_rank_total(), ValueRankTotal: r.GetValue_rank_total(),
		BytesPerToken: r.GetBytes_per_token(),
	}
}

// PoolUsage is a pool's capacity and what is in use.
type PoolUsage struct {
	CapacityTokens, CapacityBytes int64
	UsedTokens, UsedBytes         int64
	StoredTokens                  int64
	TotalPages, FreePages         int64
	NSequences                    int32
	PageTokens                    int32
	BytesPerPage                  int64
}

func poolUsageOf(r raw.Starkv_pool_usage) PoolUsage {
	return PoolUsage{
		CapacityTokens: r.GetCapacity_tokens(), CapacityBytes: r.GetCapacity_bytes(),
		UsedTokens: r.GetUsed_tokens(), UsedBytes: r.GetUsed_bytes(),
		StoredTokens: r.GetStored_tokens(), TotalPages: r.GetTotal_pages(),
		FreePages: r.GetFree_pages(), NSequences: r.GetN_sequences(),
		PageTokens: r.GetPage_tokens(), BytesPerPage: r.GetBytes_per_page(),
	}
}
