package starkv

import (
	"runtime"

	"github.com/starkv/starkv/bindings/go/internal/raw"
)

// handle is a native starkv handle; nil once closed (the binding layer then reports ErrClosed).
type handle struct {
	raw raw.Struct_SS_skv_handle
}

// do runs one native call with the handle and returns its failure. The handle (and so the object
// it is embedded in) stays reachable until the call returns, so a finalizer cannot release it.
func (h *handle) do(f func(raw.Struct_SS_skv_handle)) error {
	err := call(func() { f(h.raw) })
	runtime.KeepAlive(h)
	return err
}

// close releases the handle now; closing twice is harmless.
func (h *handle) close() error {
	if h.raw != nil {
		r := h.raw
		h.raw = nil
		raw.Skv_close(r)
	}
	return nil
}

// finalize is the garbage collector's safety net: the binding layer defers the release to the
// thread that next uses the handle's context.
func (h *handle) finalize() {
	if h.raw != nil {
		r := h.raw
		h.raw = nil
		raw.Skv_finalize(r)
	}
}

func newHandle(r raw.Struct_SS_skv_handle) handle {
	if r != nil && r.Swigcptr() == 0 {
		r = nil
	}
	return handle{raw: r}
}
