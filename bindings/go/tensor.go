package starkv

import "unsafe"

// Float16 holds IEEE half values as bit patterns (a plain []uint16 means the same).
type Float16 []uint16

// BFloat16 holds bfloat16 values as bit patterns.
type BFloat16 []uint16

// Device is device memory on a CUDA context: a pointer, its length in elements, its dtype.
// starkv checks the length against the call but cannot check the pointer itself.
type Device struct {
	Ptr   unsafe.Pointer
	Len   int
	DType DType
}

// Tensor arguments (keys, values, queries, outputs, weights, calibration data, latents) take
// []float32, []uint16, Float16, BFloat16 or Device. Anything else is reported as ErrDType.
type Tensor = any

// The element kinds of bindings/starkv_binding.h.
const (
	kindF32    = 0
	kindF16    = 1
	kindBF16   = 2
	kindU16    = 3
	kindBytes  = 4
	kindI32    = 5
	kindOther  = 6
	kindNone   = 7
	kindDevice = 0x100
)

const dtypeAuto = -1

// view is a tensor as the binding layer takes it: address, size in bytes, element kind.
type view struct {
	ptr    unsafe.Pointer
	nbytes int64
	kind   int32
}

func sliceView[T any](s []T, kind int32) view {
	var zero T
	if len(s) == 0 {
		return view{nil, 0, kind}
	}
	return view{unsafe.Pointer(&s[0]), int64(len(s)) * int64(unsafe.Sizeof(zero)), kind}
}

func viewOf(t any) view {
	switch x := t.(type) {
	case nil:
		return view{nil, 0, kindNone}
	case []float32:
		if x == nil {
			return view{nil, 0, kindNone}
		}
		return sliceView(x, kindF32)
	case []uint16:
		if x == nil {
			return view{nil, 0, kindNone}
		}
		return sliceView(x, kindU16)
	case Float16:
		return sliceView([]uint16(x), kindF16)
	case BFloat16:
		return sliceView([]uint16(x), kindBF16)
	case []byte:
		return sliceView(x, kindBytes)
	case []int32:
		if x == nil {
			return view{nil, 0, kindNone}
		}
		return sliceView(x, kindI32)
	case Device:
		size := int64(2)
		if x.DType == DTypeF32 {
			size = 4
		}
		if x.Len < 0 || x.DType < DTypeF32 || x.DType > DTypeBF16 {
			return view{nil, 0, kindOther}
		}
		return view{x.Ptr, int64(x.Len) * size, int32(x.DType) | kindDevice}
	case *Device:
		if x == nil {
			return view{nil, 0, kindNone}
		}
		return viewOf(*x)
	default:
		return view{nil, 0, kindOther}
	}
}

// bytesView is a byte buffer argument (profiles, snapshots).
func bytesView(b []byte) view {
	if b == nil {
		return view{nil, 0, kindNone}
	}
	return sliceView(b, kindBytes)
}
