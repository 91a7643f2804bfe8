"""starkv failures as Python exceptions.

Every failed call raises a StarkvError carrying the status code (``.status``, a :class:`Status`)
and the library's message (``.message``, from ``starkv_last_error`` or the binding's own check).
Subclasses group the statuses into families, and also derive from the built-in exception a Python
programmer would expect (a size mismatch is a ValueError, a wrong dtype a TypeError, a failed file
operation an OSError), so ``except ValueError`` keeps working for generic code.

The native module raises these through :func:`_from_status`, the one place where a status becomes
an exception.
"""

from . import native as _native


class StarkvError(Exception):
    """A starkv call failed. ``status``: the :class:`Status`; ``message``: what went wrong."""

    def __init__(self, status, message):
        from . import Status  # the enum lives in the package; imported late to avoid a cycle

        try:
            status = Status(status)
        except ValueError:
            pass
        self.status = status
        self.message = message
        name = _native.starkv_status_string(int(status))
        super().__init__(f"{message} [{name}]" if message else name)


class InvalidArgumentError(StarkvError, ValueError):
    """An argument out of range: a bad layer, sequence, position, or a profile that does not fit."""


class SizeError(InvalidArgumentError):
    """A buffer of the wrong size for the call (checked before the library is called)."""


class DTypeError(StarkvError, TypeError):
    """A buffer whose element type the call does not accept."""


class StateError(StarkvError):
    """A call out of order (e.g. finishing a builder twice), or a cancelled one."""


class ClosedError(StateError):
    """The handle was closed: the object can no longer be used."""


class ResourceError(StarkvError):
    """Memory ran out."""


class PoolFullError(ResourceError):
    """The pool has no free pages for the tokens; nothing was written."""


class DataError(StarkvError):
    """A file or buffer that is not a valid starkv profile or snapshot."""


class CorruptDataError(DataError):
    """A file or buffer failed its checksum or structure checks."""


class StarkvIOError(StarkvError, OSError):
    """A file could not be opened, read or written."""


class BackendError(StarkvError):
    """The backend is unavailable, does not implement the request, or reported an error."""


class NumericalError(StarkvError, ArithmeticError):
    """A decomposition did not converge, or the input holds NaN/Inf."""


class InternalError(StarkvError):
    """A bug in starkv; please report it with the message."""


_CLASS_OF_STATUS = {
    _native.STARKV_ERR_INVALID_ARGUMENT: InvalidArgumentError,
    _native.STARKV_ERR_NULL_HANDLE: ClosedError,
    _native.STARKV_ERR_SIZE_MISMATCH: SizeError,
    _native.STARKV_ERR_DTYPE: DTypeError,
    _native.STARKV_ERR_OUT_OF_MEMORY: ResourceError,
    _native.STARKV_ERR_POOL_FULL: PoolFullError,
    _native.STARKV_ERR_UNKNOWN_SEQUENCE: InvalidArgumentError,
    _native.STARKV_ERR_POSITION: InvalidArgumentError,
    _native.STARKV_ERR_CORRUPT_DATA: CorruptDataError,
    _native.STARKV_ERR_FORMAT: DataError,
    _native.STARKV_ERR_VERSION: DataError,
    _native.STARKV_ERR_PROFILE_MISMATCH: InvalidArgumentError,
    _native.STARKV_ERR_IO: StarkvIOError,
    _native.STARKV_ERR_BUFFER_TOO_SMALL: SizeError,
    _native.STARKV_ERR_BACKEND_UNAVAILABLE: BackendError,
    _native.STARKV_ERR_UNSUPPORTED: BackendError,
    _native.STARKV_ERR_NUMERICAL: NumericalError,
    _native.STARKV_ERR_CANCELLED: StateError,
    _native.STARKV_ERR_INVALID_STATE: StateError,
    _native.STARKV_ERR_BACKEND: BackendError,
    _native.STARKV_ERR_INTERNAL: InternalError,
}


def error_class(status):
    """The exception class raised for a status code."""
    return _CLASS_OF_STATUS.get(int(status), StarkvError)


def _from_status(status, message):
    """The exception for a failed call (called by the native module)."""
    return error_class(status)(status, message)


def _fail(status, message):
    """Raises the exception for a failure the Python layer itself detected."""
    raise _from_status(status, message)
