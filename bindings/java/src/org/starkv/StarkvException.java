package org.starkv;

/**
 * A starkv call failed: {@link #getStatus()} says how, the message says what (the library's
 * {@code starkv_last_error} text or the binding's own check). Unchecked. Nested subclasses group
 * the statuses into families, e.g. {@code catch (StarkvException.PoolFull e)}.
 */
public class StarkvException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final Status status;
  private final String detail;

  StarkvException(Status status, String detail) {
    super(detail + " [" + status.name().toLowerCase().replace('_', ' ') + "]");
    this.status = status;
    this.detail = detail;
  }

  /** The status code of the failed call. */
  public Status getStatus() {
    return status;
  }

  /** The message without the status name. */
  public String getDetail() {
    return detail;
  }

  /** The exception for a status: the one place the JNI layer builds exceptions from. */
  static StarkvException of(int code, String detail) {
    Status status;
    try {
      status = Status.swigToEnum(code);
    } catch (IllegalArgumentException e) {
      return new Internal(Status.INTERNAL, "unknown status " + code + ": " + detail);
    }
    switch (status) {
      case INVALID_ARGUMENT:
      case UNKNOWN_SEQUENCE:
      case POSITION:
      case PROFILE_MISMATCH:
        return new InvalidArgument(status, detail);
      case SIZE_MISMATCH:
      case BUFFER_TOO_SMALL:
        return new SizeMismatch(status, detail);
      case DTYPE:
        return new WrongDType(status, detail);
      case NULL_HANDLE:
        return new Closed(status, detail);
      case INVALID_STATE:
      case CANCELLED:
        return new InvalidState(status, detail);
      case OUT_OF_MEMORY:
        return new OutOfResources(status, detail);
      case POOL_FULL:
        return new PoolFull(status, detail);
      case CORRUPT_DATA:
        return new CorruptData(status, detail);
      case FORMAT:
      case VERSION:
        return new BadData(status, detail);
      case IO:
        return new IOFailure(status, detail);
      case NUMERICAL:
        return new Numerical(status, detail);
      case BACKEND_UNAVAILABLE:
      case UNSUPPORTED:
      case BACKEND:
        return new BackendFailure(status, detail);
      default:
        return new Internal(status, detail);
    }
  }

  /** An argument out of range: a layer, sequence, position, or a profile that does not fit. */
  public static class InvalidArgument extends StarkvException {
    private static final long serialVersionUID = 1L;

    InvalidArgument(Status status, String detail) {
      super(status, detail);
    }
  }

  /** A buffer of the wrong size for the call (checked before the library is called). */
  public static class SizeMismatch extends InvalidArgument {
    private static final long serialVersionUID = 1L;

    SizeMismatch(Status status, String detail) {
      super(status, detail);
    }
  }

  /** A buffer whose element type the call does not accept. */
  public static class WrongDType extends StarkvException {
    private static final long serialVersionUID = 1L;

    WrongDType(Status status, String detail) {
      super(status, detail);
    }
  }

  /** A call out of order (e.g. finishing a builder twice), or a cancelled one. */
  public static class InvalidState extends StarkvException {
    private static final long serialVersionUID = 1L;

    InvalidState(Status status, String detail) {
      super(status, detail);
    }
  }

  /** The handle was closed. */
  public static class Closed extends InvalidState {
    private static final long serialVersionUID = 1L;

    Closed(Status status, String detail) {
      super(status, detail);
    }
  }

  /** Memory ran out. */
  public static class OutOfResources extends StarkvException {
    private static final long serialVersionUID = 1L;

    OutOfResources(Status status, String detail) {
      super(status, detail);
    }
  }

  /** The pool has no free pages for the tokens; nothing was written. */
  public static class PoolFull extends OutOfResources {
    private static final long serialVersionUID = 1L;

    PoolFull(Status status, String detail) {
      super(status, detail);
    }
  }

  /** Not a valid starkv profile or snapshot (wrong kind of file, newer format version). */
  public static class BadData extends StarkvException {
    private static final long serialVersionUID = 1L;

    BadData(Status status, String detail) {
      super(status, detail);
    }
  }

  /** A file or buffer that failed its checksum or structure checks. */
  public static class CorruptData extends BadData {
    private static final long serialVersionUID = 1L;

    CorruptData(Status status, String detail) {
      super(status, detail);
    }
  }

  /** A file could not be opened, read or written. */
  public static class IOFailure extends StarkvException {
    private static final long serialVersionUID = 1L;

    IOFailure(Status status, String detail) {
      super(status, detail);
    }
  }

  /** The backend is unavailable, does not implement the request, or reported an error. */
  public static class BackendFailure extends StarkvException {
    private static final long serialVersionUID = 1L;

    BackendFailure(Status status, String detail) {
      super(status, detail);
    }
  }

  /** A decomposition did not converge, or the input holds NaN/Inf. */
  public static class Numerical extends StarkvException {
    private static final long serialVersionUID = 1L;

    Numerical(Status status, String detail) {
      super(status, detail);
    }
  }

  /** A bug in starkv; please report it with the message. */
  public static class Internal extends StarkvException {
    private static final long serialVersionUID = 1L;

    Internal(Status status, String detail) {
      super(status, detail);
    }
  }
}
