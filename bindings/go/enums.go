package starkv

// Backend says where the work runs.
type Backend int32

const (
	CPU  Backend = 0 // the reference backend: fp32 loops, LAPACK
	CUDA Backend = 1 // fused kernels; tensors are device memory
)

// DType is the element type of a tensor.
type DType int32

const (
	DTypeF32  DType = 0
	DTypeF16  DType = 1 // IEEE half, as uint16 bit patterns
	DTypeBF16 DType = 2 // bfloat16, as uint16 bit patterns
)

// Decomposition says how a tensor's factor groups are formed.
type Decomposition int32

const (
	HeadWise Decomposition = 0 // one group per KV head (the default for keys)
	Joint    Decomposition = 1 // one group over all KV heads (the default for values)
)

// RankAllocator chooses the ranks of the factor groups.
type RankAllocator int32

const (
	SoftThreshold RankAllocator = 0 // learned thresholds (STAR-KV)
	StaticRank    RankAllocator = 1 // the same rank for every group
	GreedyRank    RankAllocator = 2 // greedy marginal utility (LU-KV style)
)

// RopeStyle is how keys carry positions.
type RopeStyle int32

const (
	RopeNeox RopeStyle = 0 // rotate halves (Llama/HF)
	RopeGPTJ RopeStyle = 1 // rotate interleaved pairs
	RopeNone RopeStyle = 2 // no position encoding
)

// RopeScaling is the RoPE frequency scaling.
type RopeScaling int32

const (
	RopeScalingNone   RopeScaling = 0
	RopeScalingLinear RopeScaling = 1
	RopeScalingLlama3 RopeScaling = 2
)

// WeightLayout is how a projection weight is stored.
type WeightLayout int32

const (
	OutIn WeightLayout = 0 // [n_kv_heads*head_dim, hidden_dim]: torch nn.Linear, HF files
	InOut WeightLayout = 1 // [hidden_dim, n_kv_heads*head_dim]
)

// TensorKind is keys or values.
type TensorKind int32

const (
	Keys   TensorKind = 0
	Values TensorKind = 1
)

// Projection is a factor group's down- or up-projection.
type Projection int32

const (
	Down Projection = 0 // [in_dim x rank]: latent = x · down
	Up   Projection = 1 // [rank x in_dim]: x̂ = latent · up
)
