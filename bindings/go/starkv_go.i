/* Go typemaps for bindings/starkv.i (package raw, under the hand-written package starkv).
 *
 * - Failures: Go has no exceptions. The %exception block only resets this thread's record before
 *   each call; the hand-written layer runs every call with its goroutine locked to its OS thread
 *   and turns the record into an error value in one place (call() in errors.go).
 * - Buffers: each (data, nbytes, kind) triple stays three Go arguments; data is an
 *   unsafe.Pointer, so cgo keeps the Go slice behind it alive and in place for the call. The
 *   layer computes nbytes and kind from the slice type (tensor.go).
 * - int32_t/uint32_t are int32/uint32 in Go.
 */

%insert(cgo_comment_typedefs) %{
#cgo LDFLAGS: -lstarkv
typedef const void* skv_in;
typedef void* skv_out;
%}

%typemap(gotype) int32_t, const int32_t& "int32"
%typemap(gotype) uint32_t, const uint32_t& "uint32"

%typemap(gotype) skv_in, skv_out "unsafe.Pointer"
%typemap(imtype) skv_in, skv_out "unsafe.Pointer"
%typemap(in) skv_in, skv_out %{ $1 = ($1_ltype)$input; %}

/* Applied to the binding layer's calls only (starkv.i expands it before starkv_binding.h). */
%define SKV_EXCEPTION_HANDLER
%exception {
  skv_error_reset();
  $action
}
%enddef
