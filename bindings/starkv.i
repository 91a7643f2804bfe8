/* The one SWIG interface of starkv, shared by Python, Java and Go.
 *
 * It wraps two things:
 *   - from the public header include/starkv/starkv.h: the version and status helpers, the enums,
 *     and the plain params/info structs with their *_default() initializers;
 *   - the binding layer (starkv_binding.h): every call that takes a handle or a buffer, made safe
 *     for garbage-collected languages (reference-counted handles, closed handles refused, buffer
 *     sizes and dtypes checked against the profile, failures recorded per thread).
 * Calls that take raw pointers (the C functions themselves, layer data, factors, the dlopen
 * table) are not wrapped: the binding layer calls them with checked arguments.
 *
 * Per-language typemaps live beside this file (python/, java/, go/); each turns a recorded
 * failure into its language's idiom in one place and maps its arrays and buffers onto the
 * (data, nbytes, kind) triples of the binding layer. Thin hand-written layers on top give each
 * language its own API (packages starkv / org.starkv / starkv).
 *
 * Generate with, e.g.:
 *   swig -python -module native -I<repo>/include -I<repo>/bindings -o native_wrap.c starkv.i
 *   swig -java -package org.starkv -module StarkvNative -I... -o starkv_java_wrap.c starkv.i
 *   swig -go -cgo -intgosize 64 -module raw -I... -o raw_wrap.c starkv.i
 */
%module starkv

%{
#include <starkv/starkv.h>
#include <string.h>
%}
/* The binding layer goes into every generated wrapper, which is then self-contained. */
%insert("header") "starkv_binding.h"
%insert("header") "starkv_binding.c"

%include <stdint.i>

#if defined(SWIGPYTHON)
%include "python/starkv_python.i"
#elif defined(SWIGJAVA)
%include "java/starkv_java.i"
#elif defined(SWIGGO)
%include "go/starkv_go.i"
#else
#error "starkv.i: bindings exist for Python, Java and Go"
#endif

/* Every buffer argument of the binding layer is a (data, name_nbytes, name_kind) triple; the
 * language files above say what one language object becomes (typemaps on DATA/NBYTES/KIND).
 * Go keeps the three arguments (its layer fills them from a slice), so it has no such typemaps. */
#if !defined(SWIGGO)
%define SKV_BUFFER_IN(name)
%apply (skv_in DATA, int64_t NBYTES, int32_t KIND) { (skv_in name, int64_t name##_nbytes, int32_t name##_kind) };
%enddef
%define SKV_BUFFER_OUT(name)
%apply (skv_out DATA, int64_t NBYTES, int32_t KIND) { (skv_out name, int64_t name##_nbytes, int32_t name##_kind) };
%enddef
SKV_BUFFER_IN(uncompressed)
SKV_BUFFER_IN(w_k)
SKV_BUFFER_IN(w_v)
SKV_BUFFER_IN(w_q)
SKV_BUFFER_IN(calib_hidden)
SKV_BUFFER_IN(calib_k)
SKV_BUFFER_IN(calib_v)
SKV_BUFFER_IN(calib_q)
SKV_BUFFER_IN(key_ranks)
SKV_BUFFER_IN(key_down)
SKV_BUFFER_IN(key_up)
SKV_BUFFER_IN(value_ranks)
SKV_BUFFER_IN(value_down)
SKV_BUFFER_IN(value_up)
SKV_BUFFER_IN(data)
SKV_BUFFER_IN(seq_ids)
SKV_BUFFER_IN(positions)
SKV_BUFFER_IN(keys)
SKV_BUFFER_IN(values)
SKV_BUFFER_IN(latents)
SKV_BUFFER_IN(kv_lengths)
SKV_BUFFER_IN(queries)
SKV_BUFFER_OUT(out)
#endif

/* ---- what is taken from the public header --------------------------------------------------- */

#define STARKV_API

/* Raw-pointer calls: reached only through the binding layer. */
%ignore starkv_context_create;
%ignore starkv_context_destroy;
%ignore starkv_context_set_stream;
%ignore starkv_context_synchronize;
%ignore starkv_layer_data;
%ignore starkv_layer_data_default;
%ignore starkv_layer_factors;
%ignore starkv_layer_factors_default;
%ignore starkv_profile_builder_create;
%ignore starkv_profile_builder_destroy;
%ignore starkv_profile_builder_add_layer;
%ignore starkv_profile_builder_set_layer_factors;
%ignore starkv_profile_builder_finish;
%ignore starkv_profile_destroy;
%ignore starkv_profile_save;
%ignore starkv_profile_load;
%ignore starkv_profile_save_to_buffer;
%ignore starkv_profile_load_from_buffer;
%ignore starkv_profile_get_info;
%ignore starkv_profile_get_layer_info;
%ignore starkv_profile_get_ranks;
%ignore starkv_profile_get_projection;
%ignore starkv_profile_latent_width;
%ignore starkv_cache_pool_create;
%ignore starkv_cache_pool_destroy;
%ignore starkv_cache_pool_get_usage;
%ignore starkv_seq_create;
%ignore starkv_seq_fork;
%ignore starkv_seq_release;
%ignore starkv_seq_length;
%ignore starkv_seq_export;
%ignore starkv_seq_import;
%ignore starkv_append;
%ignore starkv_append_latents;
%ignore starkv_decode_step_create;
%ignore starkv_decode_step_destroy;
%ignore starkv_decode_step_plan;
%ignore starkv_decode_step_run;
%ignore starkv_attend;
%ignore starkv_api;
%ignore starkv_get_api; /* see skv_abi_supported */
%ignore starkv_progress_fn;

/* Params fields that hold pointers: the binding layer takes them as arguments instead. */
%ignore starkv_context_params::stream;
%ignore starkv_profile_params::uncompressed_layers;
%ignore starkv_profile_params::n_uncompressed_layers;
%ignore starkv_profile_params::progress;
%ignore starkv_profile_params::progress_user;
/* struct_size is set by the *_default() initializers and must not change. */
%immutable starkv_context_params::struct_size;
%immutable starkv_profile_params::struct_size;
%immutable starkv_pool_params::struct_size;
%immutable starkv_pool_usage::struct_size;
%immutable starkv_profile_info::struct_size;
%immutable starkv_layer_info::struct_size;

/* Constructing a params or info struct gives the library's defaults (struct_size set), the
 * same as its *_default() function. */
%define SKV_DEFAULT_CONSTRUCTOR(TYPE)
%extend TYPE {
  TYPE() {
    TYPE* p = (TYPE*)malloc(sizeof(TYPE));
    if (p != NULL) *p = TYPE##_default();
    return p;
  }
}
%enddef
SKV_DEFAULT_CONSTRUCTOR(starkv_context_params)
SKV_DEFAULT_CONSTRUCTOR(starkv_profile_params)
SKV_DEFAULT_CONSTRUCTOR(starkv_pool_params)
SKV_DEFAULT_CONSTRUCTOR(starkv_pool_usage)
SKV_DEFAULT_CONSTRUCTOR(starkv_profile_info)
SKV_DEFAULT_CONSTRUCTOR(starkv_layer_info)

%include "starkv/starkv.h"

/* ---- the binding layer ---------------------------------------------------------------------- */

%ignore skv_view;
/* Each call of the binding layer records its failure; the language's handler (defined in its
 * typemap file) resets the record before the call and turns a failure into its idiom after it.
 * The record itself is read and written outside that handler. */
SKV_EXCEPTION_HANDLER
%noexception skv_error_reset;
%noexception skv_error_status;
%noexception skv_error_message;
%noexception skv_error_set;
%include "starkv_binding.h"
%exception; /* nothing else records failures (default destructors are emitted after this file) */
