"""starkv: a compressed KV cache for LLM inference (STAR-KV), from Python.

The objects mirror the C API (include/starkv/starkv.h)::

    import numpy as np, starkv

    with starkv.Context() as ctx:
        builder = starkv.ProfileBuilder(n_layers=2, n_heads=8, n_kv_heads=2, head_dim=64,
                                        hidden_dim=256, target_compression=0.75,
                                        inlier_bits=3, outlier_bits=4)
        for layer in range(2):
            builder.add_layer(layer, w_k=w_k[layer], w_v=w_v[layer])   # [G*D, d] float32
        with builder.finish() as profile, starkv.Pool(ctx, profile) as pool:
            seq = pool.create_sequence()
            pool.append(0, [seq] * n, range(n), keys, values)         # [n, G, D]
            out = pool.attend(0, seq, query)                           # [1, H, D]

Tensors are any buffer-protocol object (numpy arrays, array.array, memoryview ...): they are
passed to the library without a copy; dtype (float32, float16, or uint16 bit patterns with
``dtype="bf16"``) and element count are checked against the profile before the call. On a CUDA
context pass device memory: a :class:`DeviceArray` (pointer, shape, dtype) or any object with
``__cuda_array_interface__`` (CuPy, PyTorch, Numba).

Handles are closed by ``close()`` or a ``with`` block; garbage collection is only a safety net. A
closed handle raises :class:`ClosedError`. A pool keeps its context and profile alive, a decode
step its pool, whatever order they are closed in. Failures raise :class:`StarkvError` subclasses
(see :mod:`starkv.errors`).

A context and everything made from it are used by one thread at a time (the C library's rule).
"""

import array as _array
import enum as _enum
import os as _os
from collections import namedtuple as _namedtuple

from . import native as _native
from .errors import (  # noqa: F401  (re-exported)
    BackendError,
    ClosedError,
    CorruptDataError,
    DataError,
    DTypeError,
    InternalError,
    InvalidArgumentError,
    NumericalError,
    PoolFullError,
    ResourceError,
    SizeError,
    StarkvError,
    StarkvIOError,
    StateError,
    _fail,
    error_class,
)

__all__ = [
    "Backend", "DType", "Status", "Decomposition", "RankAllocator", "RopeStyle", "RopeScaling",
    "WeightLayout", "TensorKind", "Projection",
    "Context", "ProfileBuilder", "Profile", "Pool", "DecodeStep", "DeviceArray",
    "ProfileInfo", "LayerInfo", "PoolUsage",
    "version", "version_number", "abi_version", "abi_supported", "status_string", "dtype_size",
    "backend_available",
    "StarkvError", "InvalidArgumentError", "SizeError", "DTypeError", "StateError", "ClosedError",
    "ResourceError", "PoolFullError", "DataError", "CorruptDataError", "StarkvIOError",
    "BackendError", "NumericalError", "InternalError", "error_class",
]

__version__ = _native.starkv_version_string()

# ---- enums, taken from the native module's constants ---------------------------------------------


def _enum_from_constants(name, prefix, exclude=(), extra=None):
    members = {k[len(prefix):]: getattr(_native, k) for k in dir(_native)
               if k.startswith(prefix) and not any(k.startswith(e) for e in exclude)}
    members.update(extra or {})
    return _enum.IntEnum(name, sorted(members.items(), key=lambda kv: kv[1]), module=__name__)


Status = _enum_from_constants("Status", "STARKV_ERR_", extra={"OK": _native.STARKV_OK})
Backend = _enum_from_constants("Backend", "STARKV_BACKEND_")
DType = _enum_from_constants("DType", "STARKV_DTYPE_")
Decomposition = _enum_from_constants("Decomposition", "STARKV_DECOMP_")
RankAllocator = _enum_from_constants("RankAllocator", "STARKV_ALLOC_")
RopeStyle = _enum_from_constants("RopeStyle", "STARKV_ROPE_", exclude=("STARKV_ROPE_SCALING_",))
RopeScaling = _enum_from_constants("RopeScaling", "STARKV_ROPE_SCALING_")
WeightLayout = _enum_from_constants("WeightLayout", "STARKV_WEIGHT_")
TensorKind = _enum.IntEnum("TensorKind", {"KEYS": _native.STARKV_KEYS, "VALUES": _native.STARKV_VALUES},
                         module=__name__)
Projection = _enum.IntEnum("Projection", {"DOWN": _native.STARKV_DOWN, "UP": _native.STARKV_UP},
                           module=__name__)

_DTYPE_ALIASES = {"float32": DType.F32, "f4": DType.F32, "float": DType.F32,
                  "float16": DType.F16, "half": DType.F16, "f2": DType.F16,
                  "bfloat16": DType.BF16}


def _enum_value(cls, value, what):
    """An enum member from a member, an int, or a (case-insensitive) name."""
    if isinstance(value, cls):
        return value
    try:
        if isinstance(value, str):
            if cls is DType and value.lower() in _DTYPE_ALIASES:
                return _DTYPE_ALIASES[value.lower()]
            return cls[value.upper()]
        if cls is DType and hasattr(value, "name") and not isinstance(value, int):
            return _enum_value(cls, str(value.name), what)  # numpy.dtype
        return cls(int(value))
    except (KeyError, ValueError, TypeError):
        names = ", ".join(m.name.lower() for m in cls)
        _fail(Status.INVALID_ARGUMENT, f"{what}: {value!r} is not one of {names}")


def _dtype_arg(dtype, what="dtype"):
    return -1 if dtype is None else int(_enum_value(DType, dtype, what))


# ---- library -------------------------------------------------------------------------------------


def version():
    """The version of the loaded library, e.g. "0.1.0"."""
    return _native.starkv_version_string()


def version_number():
    """The version as a number (100 for 0.1.0)."""
    return _native.starkv_version_number()


def abi_version():
    """The ABI version of the loaded library."""
    return _native.starkv_abi_version()


def abi_supported(abi):
    """Whether the loaded library serves the dlopen function table of this ABI version."""
    return bool(_native.skv_abi_supported(int(abi)))


def status_string(status):
    """A short description of a status code ("pool full")."""
    return _native.starkv_status_string(int(status))


def dtype_size(dtype):
    """Bytes per element of a dtype."""
    return _native.starkv_dtype_size(int(_enum_value(DType, dtype, "dtype")))


def backend_available(backend):
    """Whether this build has the backend (and, for CUDA, a usable device)."""
    return bool(_native.starkv_backend_available(int(_enum_value(Backend, backend, "backend"))))


# ---- info structs as named tuples ----------------------------------------------------------------

_ENUM_FIELDS = {"key_decomposition": Decomposition, "value_decomposition": Decomposition,
                "compressed": bool}


def _fields_of(swig_class):
    return [name for name, attr in vars(swig_class).items()
            if isinstance(attr, property) and name not in ("struct_size", "thisown", "this")]


def _tuple_type(name, swig_class):
    return _namedtuple(name, _fields_of(swig_class))


ProfileInfo = _tuple_type("ProfileInfo", _native.starkv_profile_info)
LayerInfo = _tuple_type("LayerInfo", _native.starkv_layer_info)
PoolUsage = _tuple_type("PoolUsage", _native.starkv_pool_usage)


def _to_tuple(cls, struct):
    values = []
    for field in cls._fields:
        value = getattr(struct, field)
        if field in _ENUM_FIELDS:
            value = _ENUM_FIELDS[field](value)
        values.append(value)
    return cls(*values)


_PARAM_ENUMS = {
    "backend": Backend, "allocator": RankAllocator, "key_decomposition": Decomposition,
    "value_decomposition": Decomposition, "rope_style": RopeStyle, "rope_scaling": RopeScaling,
}


def _params(swig_default, params, fields, what):
    """A params struct: the given one (copied) or the defaults, with keyword fields set."""
    p = swig_default()
    if params is not None:
        if not isinstance(params, type(p)):
            _fail(Status.INVALID_ARGUMENT, f"{what}: params must come from {what}_defaults()")
        for field in _fields_of(type(p)):
            setattr(p, field, getattr(params, field))
    for field, value in fields.items():
        if field not in _fields_of(type(p)):
            _fail(Status.INVALID_ARGUMENT, f"{what}: unknown field {field!r}")
        if field in _PARAM_ENUMS:
            value = _enum_value(_PARAM_ENUMS[field], value, field)
        try:
            setattr(p, field, value)
        except (TypeError, OverflowError) as e:
            _fail(Status.INVALID_ARGUMENT, f"{what}.{field} = {value!r}: {e}")
    return p


def context_params_defaults():
    """A fresh starkv_context_params with the library's defaults (fields as attributes)."""
    return _native.starkv_context_params_default()


def profile_params_defaults():
    """A fresh starkv_profile_params with the library's defaults (fields as attributes)."""
    return _native.starkv_profile_params_default()


def pool_params_defaults():
    """A fresh starkv_pool_params with the library's defaults (fields as attributes)."""
    return _native.starkv_pool_params_default()


# ---- buffers -------------------------------------------------------------------------------------


class DeviceArray:
    """Device memory for a CUDA context: a pointer (an int), a shape and a dtype.

    starkv neither owns nor checks the pointer beyond its size; keep the memory alive for the call.
    """

    __slots__ = ("ptr", "shape", "dtype")

    def __init__(self, ptr, shape, dtype):
        self.ptr = int(ptr)
        self.shape = tuple(int(s) for s in (shape if hasattr(shape, "__len__") else (shape,)))
        self.dtype = _enum_value(DType, dtype, "DeviceArray dtype")
        if self.ptr <= 0 or any(s < 0 for s in self.shape):
            _fail(Status.INVALID_ARGUMENT, "DeviceArray: a non-null pointer and a valid shape")

    @property
    def size(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def _starkv_device_view(self):
        return (self.ptr, self.size * dtype_size(self.dtype), int(self.dtype))

    @classmethod
    def from_cuda_array(cls, obj):
        """A view of an object with __cuda_array_interface__ (CuPy, PyTorch, Numba)."""
        iface = obj.__cuda_array_interface__
        typestr = iface["typestr"]
        dtype = {"<f4": DType.F32, "<f2": DType.F16, "<u2": DType.F16,
                 "<i2": DType.F16}.get(typestr)
        if dtype is None:
            _fail(Status.DTYPE, f"device array of type {typestr!r}: starkv takes float32, "
                                "float16 (or 16-bit bit patterns)")
        shape = iface["shape"]
        strides = iface.get("strides")
        if strides is not None:
            expected, step = [], dtype_size(dtype)
            for s in reversed(shape):
                expected.append(step)
                step *= s
            if tuple(reversed(expected)) != tuple(strides):
                _fail(Status.INVALID_ARGUMENT, "device array must be C-contiguous")
        return cls(iface["data"][0], shape, dtype)

    def __repr__(self):
        return f"DeviceArray(0x{self.ptr:x}, {self.shape}, {self.dtype.name})"


def _tensor(obj):
    """What the native module takes for a tensor argument."""
    if hasattr(obj, "__cuda_array_interface__") and not isinstance(obj, DeviceArray):
        return DeviceArray.from_cuda_array(obj)
    return obj


def _is_int32_buffer(obj):
    try:
        m = memoryview(obj)
    except TypeError:
        return False
    return m.format in ("i", "<i", "=i", "@i") and m.itemsize == 4 and m.c_contiguous


def _indices(obj, what):
    """An int32 buffer of ids/positions/lengths from an int, a sequence or an int buffer."""
    if obj is None:
        return None
    if isinstance(obj, int):
        return _array.array("i", [obj])
    if _is_int32_buffer(obj):
        return obj
    try:
        return _array.array("i", obj if not hasattr(obj, "tolist") else obj.tolist())
    except (TypeError, OverflowError, ValueError) as e:
        _fail(Status.INVALID_ARGUMENT, f"{what}: expected int32 values ({e})")


def _empty(like, shape, dtype):
    """An output buffer: a numpy array when the input was one, else an array.array."""
    n = 1
    for s in shape:
        n *= s
    try:
        import numpy as np
    except ImportError:
        np = None
    if np is not None and isinstance(like, np.ndarray):
        return np.empty(shape, dtype={DType.F32: np.float32, DType.F16: np.float16,
                                      DType.BF16: np.uint16}[dtype])
    return _array.array("f" if dtype == DType.F32 else "H", bytes(n * dtype_size(dtype)))


def _dtype_of(obj):
    """The dtype a tensor argument holds (for allocating a matching output)."""
    if isinstance(obj, DeviceArray):
        return obj.dtype
    try:
        fmt = memoryview(obj).format.lstrip("@=<")
    except TypeError:
        return DType.F32
    return DType.F16 if fmt in ("e", "H", "h") else DType.F32


def _path(path):
    path = _os.fspath(path)
    if isinstance(path, bytes):
        path = _os.fsdecode(path)
    if "\0" in path:
        _fail(Status.INVALID_ARGUMENT, "path contains a NUL character")
    return path


# ---- handles -------------------------------------------------------------------------------------


class _Handle:
    """A native handle: closed by close() or a with block; the garbage collector is a safety net."""

    __slots__ = ("_raw", "__weakref__")

    def __init__(self, raw):
        self._raw = raw

    def close(self):
        """Releases the handle now. Closing twice is harmless; using it afterwards raises."""
        raw, self._raw = self._raw, None
        if raw is not None:
            _native.skv_close(raw)

    @property
    def closed(self):
        return self._raw is None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self, _finalize=_native.skv_finalize):
        raw = getattr(self, "_raw", None)
        if raw is not None:
            self._raw = None
            _finalize(raw)

    def __repr__(self):
        return f"<starkv.{type(self).__name__}{' (closed)' if self._raw is None else ''}>"


def _raw_of(obj, cls, what):
    if not isinstance(obj, cls):
        _fail(Status.INVALID_ARGUMENT, f"{what} must be a starkv.{cls.__name__}, "
                                       f"not {type(obj).__name__}")
    return obj._raw


class Context(_Handle):
    """Where the work runs: ``Context()`` (the CPU) or ``Context("cuda", device=0, stream=s)``.

    stream: a cudaStream_t as an int, or an object with ``cuda_stream``/``ptr`` (PyTorch, CuPy).
    """

    __slots__ = ()

    def __init__(self, backend=Backend.CPU, *, device=0, stream=None, n_threads=0):
        p = _params(_native.starkv_context_params_default, None,
                    {"backend": backend, "device": device, "n_threads": n_threads},
                    "context_params")
        super().__init__(_native.skv_context_create(p, _stream(stream)))

    @property
    def backend(self):
        return Backend(_native.skv_context_backend(self._raw))

    def set_stream(self, stream):
        """Work issued afterwards goes to this CUDA stream (the caller keeps owning it)."""
        _native.skv_context_set_stream(self._raw, _stream(stream))

    def synchronize(self):
        """Waits until the context's work has finished (a no-op on the CPU)."""
        _native.skv_context_synchronize(self._raw)


def _stream(stream):
    if stream is None:
        return 0
    for attr in ("cuda_stream", "ptr"):
        if hasattr(stream, attr):
            stream = getattr(stream, attr)
            break
    return int(stream)


class ProfileBuilder(_Handle):
    """Builds a profile layer by layer, from weights and/or calibration data, or from factors.

    Fields of starkv_profile_params are keyword arguments (``n_layers=32, n_heads=32, ...``);
    enum fields take members or names (``allocator="greedy"``). ``params`` may give a full
    struct from :func:`profile_params_defaults` instead. context: where the linear algebra runs
    (None: the CPU).
    """

    __slots__ = ("context", "n_kv_heads", "n_heads", "head_dim", "hidden_dim")

    def __init__(self, params=None, *, context=None, uncompressed_layers=None, **fields):
        p = _params(_native.starkv_profile_params_default, params, fields, "profile_params")
        ctx_raw = None if context is None else _raw_of(context, Context, "context")
        raw = _native.skv_builder_create(ctx_raw, 1 if context is None else 0, p,
                                         _indices(uncompressed_layers, "uncompressed_layers"))
        super().__init__(raw)
        self.context = context
        self.n_heads, self.n_kv_heads, self.head_dim, self.hidden_dim = (
            p.n_heads, p.n_kv_heads, p.head_dim, p.hidden_dim)

    def add_layer(self, layer, w_k=None, w_v=None, *, w_q=None, weight_dtype=None,
                  weight_layout=WeightLayout.OUT_IN, calib_hidden=None, calib_k=None,
                  calib_v=None, calib_q=None, calib_dtype=None):
        """Decomposes one layer. Weights [G*D, d] (OUT_IN, as in HF checkpoints) or [d, G*D];
        w_q [H*D, d]; calib_hidden [n, d]; calib_k/calib_v [m, G, D]; calib_q [m, H, D]."""
        _native.skv_builder_add_layer(
            self._raw, int(layer), int(_enum_value(WeightLayout, weight_layout, "weight_layout")),
            _dtype_arg(weight_dtype, "weight_dtype"), w_k, w_v, w_q,
            _dtype_arg(calib_dtype, "calib_dtype"), calib_hidden, calib_k, calib_v, calib_q)

    def set_layer_factors(self, layer, key_ranks, key_down, value_ranks, value_down, *,
                          key_up=None, value_up=None,
                          key_decomposition=Decomposition.HEADWISE,
                          value_decomposition=Decomposition.JOINT):
        """Uses factors computed elsewhere (float32). Head-wise: one rank per KV head, down
        matrices [D x r_g] concatenated; joint: one rank, [G*D x r]. Up matrices [r x in_dim],
        or None for the transpose of down."""
        _native.skv_builder_set_layer_factors(
            self._raw, int(layer),
            int(_enum_value(Decomposition, key_decomposition, "key_decomposition")),
            int(_enum_value(Decomposition, value_decomposition, "value_decomposition")),
            _indices(key_ranks, "key_ranks"), key_down, key_up,
            _indices(value_ranks, "value_ranks"), value_down, value_up)

    def finish(self):
        """Allocates ranks and returns the :class:`Profile`. A builder finishes once."""
        return Profile(_native.skv_builder_finish(self._raw))


class Profile(_Handle):
    """How one model's keys and values are compressed: immutable, shareable, saved as a file."""

    __slots__ = ()

    def __init__(self, raw):
        super().__init__(raw)

    @classmethod
    def load(cls, path):
        """Reads a .starkv profile file."""
        return cls(_native.skv_profile_load(_path(path)))

    @classmethod
    def from_bytes(cls, data):
        """Reads a profile from any bytes-like object."""
        return cls(_native.skv_profile_load_from_buffer(data))

    def save(self, path):
        _native.skv_profile_save(self._raw, _path(path))

    def to_bytes(self):
        """The profile file's contents."""
        buf = bytearray(_native.skv_profile_save_size(self._raw))
        n = _native.skv_profile_save_to_buffer(self._raw, buf)
        return bytes(buf[:n])

    @property
    def info(self):
        """A :class:`ProfileInfo`: shape, bits, bytes per token, compression."""
        return _to_tuple(ProfileInfo, _native.skv_profile_info(self._raw))

    def layer_info(self, layer):
        return _to_tuple(LayerInfo, _native.skv_profile_layer_info(self._raw, int(layer)))

    @property
    def n_layers(self):
        return self.info.n_layers

    @property
    def n_heads(self):
        return self.info.n_heads

    @property
    def n_kv_heads(self):
        return self.info.n_kv_heads

    @property
    def head_dim(self):
        return self.info.head_dim

    def ranks(self, layer, kind):
        """The ranks of a layer's key or value groups, as a list."""
        kind = int(_enum_value(TensorKind, kind, "kind"))
        n = _native.skv_profile_group_count(self._raw, int(layer), kind)
        out = _array.array("i", bytes(4 * max(n, 1)))
        n = _native.skv_profile_get_ranks(self._raw, int(layer), kind, out)
        return out.tolist()[:n]

    def projection(self, layer, kind, group, which, out=None):
        """One group's DOWN [in_dim x rank] or UP [rank x in_dim] projection as float32, rotation
        folded in. Returns ``out`` (any writable float32 buffer of the right size) or a new
        array.array('f')."""
        kind = int(_enum_value(TensorKind, kind, "kind"))
        which = int(_enum_value(Projection, which, "which"))
        if out is None:
            n = _native.skv_profile_projection_size(self._raw, int(layer), kind, int(group), which)
            out = _array.array("f", bytes(4 * n))
        _native.skv_profile_get_projection(self._raw, int(layer), kind, int(group), which, out)
        return out

    def latent_width(self, layer):
        """Latent channels per token of a layer: the row width append_latents expects."""
        return _native.skv_profile_latent_width(self._raw, int(layer))


class Pool(_Handle):
    """Pages of quantized latents and the sequences stored in them.

    Keeps its context and profile alive. Fields of starkv_pool_params are keyword arguments
    (page_tokens, capacity_tokens, capacity_pages, max_sequences).
    """

    __slots__ = ("context", "profile", "_row_shape")

    def __init__(self, context, profile, params=None, **fields):
        p = _params(_native.starkv_pool_params_default, params, fields, "pool_params")
        raw = _native.skv_pool_create(_raw_of(context, Context, "context"),
                                      _raw_of(profile, Profile, "profile"), p)
        super().__init__(raw)
        self.context = context
        self.profile = profile
        info = profile.info
        self._row_shape = (info.n_heads, info.head_dim)

    def usage(self):
        """A :class:`PoolUsage`: capacity, tokens and bytes in use, pages, sequences."""
        return _to_tuple(PoolUsage, _native.skv_pool_usage(self._raw))

    def create_sequence(self):
        """A new, empty sequence; returns its id."""
        return _native.skv_seq_create(self._raw)

    def fork(self, parent):
        """A new sequence sharing all of parent's tokens (copy-on-write)."""
        return _native.skv_seq_fork(self._raw, int(parent))

    def release(self, seq):
        """Frees a sequence's pages (shared pages stay with the other sequences)."""
        _native.skv_seq_release(self._raw, int(seq))

    def length(self, seq):
        """Tokens stored in every layer of the sequence."""
        return _native.skv_seq_length(self._raw, int(seq))

    def export_sequence(self, seq):
        """A snapshot of the sequence (zstd-compressed, checksummed) as bytes."""
        buf = bytearray(_native.skv_seq_export_size(self._raw, int(seq)))
        n = _native.skv_seq_export(self._raw, int(seq), buf)
        return bytes(buf[:n])

    def import_sequence(self, data):
        """Restores a snapshot (from a pool with the same profile) as a new sequence."""
        return _native.skv_seq_import(self._raw, data)

    def append(self, layer, seq_ids, positions, keys, values, dtype=None):
        """Stores new tokens' pre-RoPE keys and values, each [n, G, D], for one layer. Token i
        belongs to seq_ids[i] at positions[i] (ints, sequences, or int32 buffers)."""
        _native.skv_append(self._raw, int(layer), _indices(seq_ids, "seq_ids"),
                           _indices(positions, "positions"), _tensor(keys), _tensor(values),
                           _dtype_arg(dtype))

    def append_latents(self, layer, seq_ids, positions, latents, dtype=None):
        """Stores latents an engine computed with the DOWN projections: [n, latent_width]."""
        _native.skv_append_latents(self._raw, int(layer), _indices(seq_ids, "seq_ids"),
                                   _indices(positions, "positions"), _tensor(latents),
                                   _dtype_arg(dtype))

    def attend(self, layer, seq_ids, queries, out=None, *, kv_lengths=None, dtype=None,
               out_dtype=None):
        """Attention of post-RoPE queries [n, H, D] over the stored tokens of seq_ids (one per
        query; kv_lengths: attend to the first kv_lengths[i] tokens). Writes and returns out
        [n, H, D] (allocated when None: host memory only)."""
        ids = _indices(seq_ids, "seq_ids")
        queries = _tensor(queries)
        if out is None:
            out = self._new_output(queries, len(ids), dtype, out_dtype)
        _native.skv_attend(self._raw, int(layer), ids, _indices(kv_lengths, "kv_lengths"),
                           queries, _dtype_arg(dtype), _tensor(out),
                           _dtype_arg(out_dtype, "out_dtype"))
        return out

    def decode_step(self):
        """A :class:`DecodeStep` on this pool: plan a batch once, run it per layer."""
        return DecodeStep(self)

    def _new_output(self, queries, n, dtype, out_dtype):
        if isinstance(queries, DeviceArray):
            _fail(Status.INVALID_ARGUMENT, "out is required for device queries")
        if out_dtype is not None:
            kind = _enum_value(DType, out_dtype, "out_dtype")
        elif dtype is not None:
            kind = _enum_value(DType, dtype, "dtype")
        else:
            kind = _dtype_of(queries)
        return _empty(queries, (n,) + self._row_shape, kind)


class DecodeStep(_Handle):
    """A planned batch of queries (plan once per step, run per layer). Keeps its pool alive."""

    __slots__ = ("pool",)

    def __init__(self, pool):
        super().__init__(_native.skv_step_create(_raw_of(pool, Pool, "pool")))
        self.pool = pool

    def plan(self, seq_ids, kv_lengths=None):
        """Plans queries over seq_ids (kv_lengths None: each sequence's length now)."""
        _native.skv_step_plan(self._raw, _indices(seq_ids, "seq_ids"),
                              _indices(kv_lengths, "kv_lengths"))

    @property
    def n_queries(self):
        """Queries in the current plan (-1 before the first plan)."""
        return _native.skv_step_planned(self._raw)

    def run(self, layer, queries, out=None, *, dtype=None, out_dtype=None):
        """Runs the plan for one layer: queries and out [n_queries, H, D]. Returns out."""
        queries = _tensor(queries)
        if out is None:
            n = self.n_queries
            if n < 0:
                _fail(Status.INVALID_STATE, "run before plan: plan the decode step first")
            out = self.pool._new_output(queries, n, dtype, out_dtype)
        _native.skv_step_run(self._raw, int(layer), queries, _dtype_arg(dtype), _tensor(out),
                             _dtype_arg(out_dtype, "out_dtype"))
        return out
