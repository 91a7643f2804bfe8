package starkv

import (
	"runtime"

	"github.com/starkv/starkv/bindings/go/internal/raw"
)

// Version is the loaded library's version, e.g. "0.1.0".
func Version() string { return raw.Starkv_version_string() }

// VersionNumber is the version as a number (100 for 0.1.0).
func VersionNumber() uint32 { return raw.Starkv_version_number() }

// ABIVersion is the loaded library's ABI version.
func ABIVersion() uint32 { return raw.Starkv_abi_version() }

// ABISupported says whether the library serves the dlopen function table of this ABI version.
func ABISupported(abi uint32) bool { return raw.Skv_abi_supported(abi) != 0 }

// DTypeSize is the bytes per element of a dtype (0 for an unknown one).
func DTypeSize(d DType) int { return int(raw.Starkv_dtype_size(raw.Enum_SS_starkv_dtype(d))) }

// BackendAvailable says whether this build has the backend (and, for CUDA, a usable device).
func BackendAvailable(b Backend) bool {
	return raw.Starkv_backend_available(raw.Enum_SS_starkv_backend(b)) != 0
}

// Context is where the work runs. Close it when done; a pool made from it keeps it alive.
type Context struct {
	handle
	backend Backend
}

// NewContext creates a context; ContextParams{} is the CPU.
func NewContext(p ContextParams) (*Context, error) {
	params := raw.Starkv_context_params_default()
	defer raw.DeleteStarkv_context_params(params)
	params.SetBackend(raw.Enum_SS_starkv_backend(p.Backend))
	params.SetDevice(p.Device)
	params.SetN_threads(p.NThreads)
	var h raw.Struct_SS_skv_handle
	if err := call(func() { h = raw.Skv_context_create(params, int64(p.Stream)) }); err != nil {
		return nil, err
	}
	c := &Context{handle: newHandle(h), backend: p.Backend}
	runtime.SetFinalizer(c, (*Context).finalize)
	return c, nil
}

// Backend is the backend the context was created for.
func (c *Context) Backend() Backend { return c.backend }

// SetStream sends work issued afterwards to this CUDA stream; the caller keeps owning it.
func (c *Context) SetStream(stream uintptr) error {
	return c.do(func(h raw.Struct_SS_skv_handle) { raw.Skv_context_set_stream(h, int64(stream)) })
}

// Synchronize waits until the context's work has finished (a no-op on the CPU).
func (c *Context) Synchronize() error {
	return c.do(func(h raw.Struct_SS_skv_handle) { raw.Skv_context_synchronize(h) })
}

// Close releases the context (pools made from it keep it alive until they are closed too).
func (c *Context) Close() error {
	runtime.SetFinalizer(c, nil)
	return c.close()
}
