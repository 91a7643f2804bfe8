/* Python typemaps for bindings/starkv.i.
 *
 * - Failures: the %exception block below is the one place where a recorded failure becomes a
 *   Python exception (the class comes from starkv.errors._from_status).
 * - Buffers: a (skv_in|skv_out, int64_t, int32_t) triple is one Python argument: None (absent),
 *   any buffer-protocol object (numpy arrays, array.array, bytes, bytearray, memoryview: held,
 *   never copied, C-contiguous required, writable for outputs), or a starkv.DeviceArray (a device
 *   pointer with its byte size and dtype).
 * - Integers passed as int64_t stream handles accept any Python int that fits a pointer.
 */

%{
/* Raises the exception for this thread's recorded failure. */
static void skv_py_raise(void) {
  const char* message = skv_error_message();
  PyObject* text = PyUnicode_DecodeUTF8(message, (Py_ssize_t)strlen(message), "replace");
  PyObject* errors = PyImport_ImportModule("starkv.errors");
  PyObject* exc = NULL;
  if (errors != NULL && text != NULL) {
    exc = PyObject_CallMethod(errors, "_from_status", "iO", (int)skv_error_status(), text);
  }
  if (exc != NULL) {
    PyErr_SetObject((PyObject*)Py_TYPE(exc), exc);
  } else if (!PyErr_Occurred() || errors == NULL) {
    /* the raw module used on its own, outside the starkv package */
    PyErr_Clear();
    PyErr_Format(PyExc_RuntimeError, "starkv status %d: %s", (int)skv_error_status(), message);
  }
  Py_XDECREF(exc);
  Py_XDECREF(errors);
  Py_XDECREF(text);
}

/* The element kind of a buffer-protocol format ("<f", "e", "H", ...). */
static int32_t skv_py_kind(const char* format, Py_ssize_t itemsize) {
  if (format == NULL) format = "B";
  if (*format == '@' || *format == '=' || *format == '<') {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    if (*format == '<') return SKV_KIND_OTHER;
#endif
    ++format;
  } else if (*format == '>' || *format == '!') {
    return SKV_KIND_OTHER; /* byte-swapped data: not what the library reads */
  }
  if (format[0] == '\0' || format[1] != '\0') return SKV_KIND_OTHER;
  switch (format[0]) {
    case 'f': return itemsize == 4 ? SKV_KIND_F32 : SKV_KIND_OTHER;
    case 'e': return itemsize == 2 ? SKV_KIND_F16 : SKV_KIND_OTHER;
    case 'H':
    case 'h': return itemsize == 2 ? SKV_KIND_U16 : SKV_KIND_OTHER;
    case 'B':
    case 'b':
    case 'c': return SKV_KIND_BYTES;
    case 'i':
    case 'l': return itemsize == 4 ? SKV_KIND_I32 : SKV_KIND_OTHER;
    default: return SKV_KIND_OTHER;
  }
}

/* Fills a (data, nbytes, kind) triple from a Python object; 0 with a recorded failure if the
 * object is not a buffer the call can take. A held Py_buffer is released by the caller. */
static int skv_py_view(PyObject* obj, int writable, const char* what, Py_buffer* view, int* held,
                       const void** data, int64_t* nbytes, int32_t* kind) {
  char message[256];
  PyObject* device;
  *data = NULL;
  *nbytes = 0;
  *kind = SKV_KIND_NONE;
  *held = 0;
  if (obj == Py_None) return 1;
  if (PyObject_CheckBuffer(obj)) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) != 0) {
      PyErr_Clear();
      if (writable && PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) == 0) {
        PyBuffer_Release(view);
        snprintf(message, sizeof message, "%s is read-only; pass a writable buffer", what);
      } else {
        PyErr_Clear();
        snprintf(message, sizeof message,
                 "%s must be C-contiguous (e.g. numpy.ascontiguousarray)", what);
      }
      skv_error_set(STARKV_ERR_INVALID_ARGUMENT, message);
      return 0;
    }
    *held = 1;
    *data = view->buf;
    *nbytes = (int64_t)view->len;
    *kind = skv_py_kind(view->format, view->itemsize);
    return 1;
  }
  device = PyObject_GetAttrString(obj, "_starkv_device_view");
  if (device != NULL) {
    void* pointer = NULL;
    long long size = -1, dtype = -1;
    if (PyTuple_Check(device) && PyTuple_GET_SIZE(device) == 3) {
      pointer = PyLong_AsVoidPtr(PyTuple_GET_ITEM(device, 0));
      size = PyLong_AsLongLong(PyTuple_GET_ITEM(device, 1));
      dtype = PyLong_AsLongLong(PyTuple_GET_ITEM(device, 2));
    }
    Py_DECREF(device);
    if (PyErr_Occurred() || size < 0 || dtype < 0 || dtype > STARKV_DTYPE_BF16) {
      PyErr_Clear();
      snprintf(message, sizeof message, "%s: a malformed device array", what);
      skv_error_set(STARKV_ERR_INVALID_ARGUMENT, message);
      return 0;
    }
    *data = pointer;
    *nbytes = (int64_t)size;
    *kind = (int32_t)dtype | SKV_DEVICE;
    return 1;
  }
  PyErr_Clear();
  snprintf(message, sizeof message,
           "%s must be a buffer (numpy array, array.array, bytes, memoryview) or a "
           "starkv.DeviceArray, not %.80s",
           what, Py_TYPE(obj)->tp_name);
  skv_error_set(STARKV_ERR_DTYPE, message);
  return 0;
}
%}

/* Applied to the binding layer's calls only (starkv.i expands it before starkv_binding.h). */
%define SKV_EXCEPTION_HANDLER
%exception {
  skv_error_reset();
  $action
  if (skv_error_status() != STARKV_OK) {
    skv_py_raise();
    SWIG_fail;
  }
}
%enddef

%typemap(in) (skv_in DATA, int64_t NBYTES, int32_t KIND) (Py_buffer view, int held = 0) {
  if (!skv_py_view($input, 0, "$1_name", &view, &held, (const void**)&$1, &$2, &$3)) {
    skv_py_raise();
    SWIG_fail;
  }
}
%typemap(freearg) (skv_in DATA, int64_t NBYTES, int32_t KIND) {
  if (held$argnum) PyBuffer_Release(&view$argnum);
}

%typemap(in) (skv_out DATA, int64_t NBYTES, int32_t KIND) (Py_buffer view, int held = 0) {
  if (!skv_py_view($input, 1, "$1_name", &view, &held, (const void**)&$1, &$2, &$3)) {
    skv_py_raise();
    SWIG_fail;
  }
}
%typemap(freearg) (skv_out DATA, int64_t NBYTES, int32_t KIND) {
  if (held$argnum) PyBuffer_Release(&view$argnum);
}

/* Overload dispatch is not used; these keep SWIG from warning about missing typecheck rules. */
%typemap(typecheck, precedence=SWIG_TYPECHECK_POINTER) (skv_in DATA, int64_t NBYTES, int32_t KIND),
    (skv_out DATA, int64_t NBYTES, int32_t KIND) "$1 = 1;"
