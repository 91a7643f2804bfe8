/* Java typemaps for bindings/starkv.i (package org.starkv).
 *
 * - Failures: the %exception block below is the one place where a recorded failure becomes a
 *   Java exception: StarkvException.of(status, message), an unchecked exception whose subclass
 *   names the status family.
 * - Buffers: a (skv_in|skv_out, int64_t, int32_t) triple is one java.lang.Object: null (absent),
 *   a primitive array (float[], short[] for 16-bit values, byte[], int[]) or a direct NIO buffer
 *   (FloatBuffer, ShortBuffer, ByteBuffer, IntBuffer; native byte order; position..limit is what
 *   is passed). Nothing is copied: arrays are pinned with GetPrimitiveArrayCritical for the call,
 *   direct buffers are used in place. Arrays are inspected in the "in" phase and pinned in the
 *   "check" phase, so no JNI call happens while one is pinned; the %exception block unpins them
 *   all before it throws.
 * - Handles (skv_handle*) are Java longs, held by the hand-written classes (NativeHandle).
 * - Struct and enum names lose their starkv_ prefix (ProfileParams, DType.F32, Status.POOL_FULL);
 *   struct fields are lowerCamelCase (setNLayers).
 */

%include "enums.swg"
%javaconst(1);

%pragma(java) moduleclassmodifiers="final class"
%pragma(java) jniclassclassmodifiers="final class"
%pragma(java) jniclasscode=%{
  static {
    NativeLoader.load();
  }
%}

/* ---- names ---------------------------------------------------------------------------------- */

%rename(ContextParams) starkv_context_params;
%rename(ProfileParams) starkv_profile_params;
%rename(PoolParams) starkv_pool_params;
%rename(PoolUsage) starkv_pool_usage;
%rename(ProfileInfo) starkv_profile_info;
%rename(LayerInfo) starkv_layer_info;
%rename(Status) starkv_status;
%rename(DType) starkv_dtype;
%rename(Backend) starkv_backend;
%rename(Decomposition) starkv_decomposition;
%rename(RankAllocator) starkv_rank_allocator;
%rename(RopeStyle) starkv_rope_style;
%rename(RopeScaling) starkv_rope_scaling;
%rename(WeightLayout) starkv_weight_layout;
%rename(TensorKind) starkv_tensor_kind;
%rename(Projection) starkv_projection;
%rename("%(regex:/^STARKV_(ERR_|BACKEND_|DTYPE_|DECOMP_|ALLOC_|ROPE_SCALING_|ROPE_|WEIGHT_)?(.*)$/\\2/)s",
        %$isenumitem) "";
%rename("%(lowercamelcase)s", %$ismember, %$isvariable) "";
/* RopeStyle.NONE and RopeScaling.NONE live in different Java enums */
%warnfilter(SWIGWARN_PARSE_REDEFINED) STARKV_ROPE_SCALING_NONE;
/* Kinds are computed in C for Java; the enums are not needed on the Java side. */
%ignore skv_kind;
%ignore skv_handle_kinds;

/* Each params struct gets a static defaults() beside its constructor (which also gives the
 * defaults, see starkv.i). */
%define SKV_JAVA_DEFAULTS(CTYPE, JTYPE)
%typemap(javacode) struct CTYPE %{
  /** A struct filled with the library's defaults. */
  public static JTYPE defaults() {
    return new JTYPE();
  }
%}
%enddef
SKV_JAVA_DEFAULTS(starkv_context_params, ContextParams)
SKV_JAVA_DEFAULTS(starkv_profile_params, ProfileParams)
SKV_JAVA_DEFAULTS(starkv_pool_params, PoolParams)

/* ---- failures ------------------------------------------------------------------------------- */

%{
#include <jni.h>

/* Arrays pinned for the current call on this thread (GetPrimitiveArrayCritical). */
typedef struct skv_java_pin {
  jarray array;
  void* elements;
  jint mode; /* 0: copy back (outputs, a no-op when not copied); JNI_ABORT: inputs */
} skv_java_pin;
static __thread skv_java_pin skv_java_pins[16];
static __thread int skv_java_n_pins;

static void skv_java_unpin_all(JNIEnv* env) {
  while (skv_java_n_pins > 0) {
    skv_java_pin* p = &skv_java_pins[--skv_java_n_pins];
    (*env)->ReleasePrimitiveArrayCritical(env, p->array, p->elements, p->mode);
  }
}

/* Throws StarkvException.of(status, message) for this thread's recorded failure. */
static void skv_java_throw(JNIEnv* env) {
  char message[1024];
  const char* text = skv_error_message();
  jclass cls;
  jmethodID of;
  jstring jmessage;
  jobject exception;
  size_t i;
  /* NewStringUTF wants modified UTF-8: keep ASCII, mark anything else (e.g. path bytes) */
  for (i = 0; text[i] != '\0' && i + 1 < sizeof message; ++i) {
    message[i] = ((unsigned char)text[i] < 0x80) ? text[i] : '?';
  }
  message[i] = '\0';
  if ((*env)->ExceptionCheck(env)) return;
  cls = (*env)->FindClass(env, "org/starkv/StarkvException");
  if (cls == NULL) return;
  of = (*env)->GetStaticMethodID(env, cls, "of",
                                 "(ILjava/lang/String;)Lorg/starkv/StarkvException;");
  jmessage = of ? (*env)->NewStringUTF(env, message) : NULL;
  exception = jmessage ? (*env)->CallStaticObjectMethod(env, cls, of, (jint)skv_error_status(),
                                                        jmessage)
                       : NULL;
  /* if building the exception threw (e.g. OutOfMemoryError), that one stays pending */
  if (exception != NULL && !(*env)->ExceptionCheck(env)) {
    (*env)->Throw(env, (jthrowable)exception);
  }
}

/* A Java object seen as a buffer, before pinning. */
typedef struct skv_jview {
  jarray array;        /* a primitive array to pin in the check phase, or NULL */
  const void* address; /* a direct buffer's address at its position */
  int64_t nbytes;
  int32_t kind;
  int writable;
} skv_jview;

static int skv_java_is(JNIEnv* env, jobject obj, const char* class_name) {
  jclass cls = (*env)->FindClass(env, class_name);
  int result;
  if (cls == NULL) {
    (*env)->ExceptionClear(env);
    return 0;
  }
  result = (*env)->IsInstanceOf(env, obj, cls) == JNI_TRUE;
  (*env)->DeleteLocalRef(env, cls);
  return result;
}

static jint skv_java_int_method(JNIEnv* env, jobject obj, const char* name) {
  jclass cls = (*env)->GetObjectClass(env, obj);
  jmethodID m = (*env)->GetMethodID(env, cls, name, "()I");
  jint value = -1;
  if (m != NULL) {
    value = (*env)->CallIntMethod(env, obj, m);
  }
  if ((*env)->ExceptionCheck(env)) {
    (*env)->ExceptionClear(env);
    value = -1;
  }
  (*env)->DeleteLocalRef(env, cls);
  return value;
}

static int skv_java_bool_method(JNIEnv* env, jobject obj, const char* name) {
  jclass cls = (*env)->GetObjectClass(env, obj);
  jmethodID m = (*env)->GetMethodID(env, cls, name, "()Z");
  int value = 0;
  if (m != NULL) {
    value = (*env)->CallBooleanMethod(env, obj, m) == JNI_TRUE;
  }
  if ((*env)->ExceptionCheck(env)) {
    (*env)->ExceptionClear(env);
    value = 0;
  }
  (*env)->DeleteLocalRef(env, cls);
  return value;
}

/* A typed NIO view (FloatBuffer, ...) must use the platform's byte order. */
static int skv_java_native_order(JNIEnv* env, jobject buffer) {
  jclass cls = (*env)->GetObjectClass(env, buffer);
  jclass order_cls = (*env)->FindClass(env, "java/nio/ByteOrder");
  jmethodID order = NULL, native_order = NULL;
  jobject mine = NULL, platform = NULL;
  int same = 0;
  if (order_cls != NULL) {
    order = (*env)->GetMethodID(env, cls, "order", "()Ljava/nio/ByteOrder;");
    native_order = (*env)->GetStaticMethodID(env, order_cls, "nativeOrder",
                                             "()Ljava/nio/ByteOrder;");
  }
  if (order != NULL && native_order != NULL) {
    mine = (*env)->CallObjectMethod(env, buffer, order);
    if (!(*env)->ExceptionCheck(env)) {
      platform = (*env)->CallStaticObjectMethod(env, order_cls, native_order);
    }
    if (!(*env)->ExceptionCheck(env)) {
      same = (*env)->IsSameObject(env, mine, platform) == JNI_TRUE;
    }
  }
  if ((*env)->ExceptionCheck(env)) (*env)->ExceptionClear(env);
  (*env)->DeleteLocalRef(env, cls);
  if (order_cls != NULL) (*env)->DeleteLocalRef(env, order_cls);
  if (mine != NULL) (*env)->DeleteLocalRef(env, mine);
  if (platform != NULL) (*env)->DeleteLocalRef(env, platform);
  return same;
}

/* Inspects obj (no pinning yet); 0 with a recorded failure if it is not a usable buffer. */
static int skv_java_inspect(JNIEnv* env, jobject obj, int writable, const char* what,
                            skv_jview* v) {
  char message[256];
  static const struct { const char* cls; int32_t kind; int size; } arrays[] = {
      {"[F", SKV_KIND_F32, 4}, {"[S", SKV_KIND_U16, 2}, {"[B", SKV_KIND_BYTES, 1},
      {"[I", SKV_KIND_I32, 4}};
  static const struct { const char* cls; int32_t kind; int size; } buffers[] = {
      {"java/nio/FloatBuffer", SKV_KIND_F32, 4}, {"java/nio/ShortBuffer", SKV_KIND_U16, 2},
      {"java/nio/ByteBuffer", SKV_KIND_BYTES, 1}, {"java/nio/IntBuffer", SKV_KIND_I32, 4}};
  size_t i;
  v->array = NULL;
  v->address = NULL;
  v->nbytes = 0;
  v->kind = SKV_KIND_NONE;
  v->writable = writable;
  if (obj == NULL) return 1;
  for (i = 0; i < sizeof arrays / sizeof arrays[0]; ++i) {
    if (skv_java_is(env, obj, arrays[i].cls)) {
      v->array = (jarray)obj;
      v->nbytes = (int64_t)(*env)->GetArrayLength(env, (jarray)obj) * arrays[i].size;
      v->kind = arrays[i].kind;
      return 1;
    }
  }
  for (i = 0; i < sizeof buffers / sizeof buffers[0]; ++i) {
    if (skv_java_is(env, obj, buffers[i].cls)) {
      char* base = (char*)(*env)->GetDirectBufferAddress(env, obj);
      jint position, remaining;
      if (base == NULL) {
        snprintf(message, sizeof message,
                 "%s is a heap buffer: pass a direct buffer (allocateDirect) or an array", what);
        skv_error_set(STARKV_ERR_INVALID_ARGUMENT, message);
        return 0;
      }
      if (writable && skv_java_bool_method(env, obj, "isReadOnly")) {
        snprintf(message, sizeof message, "%s is a read-only buffer", what);
        skv_error_set(STARKV_ERR_INVALID_ARGUMENT, message);
        return 0;
      }
      if (buffers[i].size > 1 && !skv_java_native_order(env, obj)) {
        snprintf(message, sizeof message,
                 "%s: the buffer's byte order must be ByteOrder.nativeOrder()", what);
        skv_error_set(STARKV_ERR_DTYPE, message);
        return 0;
      }
      position = skv_java_int_method(env, obj, "position");
      remaining = skv_java_int_method(env, obj, "remaining");
      if ((*env)->ExceptionCheck(env) || position < 0 || remaining < 0) {
        (*env)->ExceptionClear(env);
        snprintf(message, sizeof message, "%s: cannot read the buffer's position", what);
        skv_error_set(STARKV_ERR_INVALID_ARGUMENT, message);
        return 0;
      }
      v->address = base + (size_t)position * buffers[i].size;
      v->nbytes = (int64_t)remaining * buffers[i].size;
      v->kind = buffers[i].kind;
      return 1;
    }
  }
  if (skv_java_is(env, obj, "java/nio/Buffer") || skv_java_is(env, obj, "[D") ||
      skv_java_is(env, obj, "[J") || skv_java_is(env, obj, "[C") || skv_java_is(env, obj, "[Z")) {
    v->kind = SKV_KIND_OTHER; /* double[], long[], DoubleBuffer ...: the call's dtype check says */
    v->nbytes = 0;
    return 1;
  }
  snprintf(message, sizeof message,
           "%s must be a primitive array (float[], short[], byte[], int[]) or a direct NIO "
           "buffer", what);
  skv_error_set(STARKV_ERR_DTYPE, message);
  return 0;
}

/* Pins an inspected array; 0 with a recorded failure if the VM cannot. */
static int skv_java_pin_view(JNIEnv* env, skv_jview* v) {
  skv_java_pin* p;
  if (v->array == NULL) return 1;
  if (skv_java_n_pins == (int)(sizeof skv_java_pins / sizeof skv_java_pins[0])) {
    skv_error_set(STARKV_ERR_INTERNAL, "too many pinned arrays in one call");
    return 0;
  }
  p = &skv_java_pins[skv_java_n_pins];
  p->elements = (*env)->GetPrimitiveArrayCritical(env, v->array, NULL);
  if (p->elements == NULL) {
    skv_error_set(STARKV_ERR_OUT_OF_MEMORY, "the JVM could not pin an array");
    return 0;
  }
  p->array = v->array;
  p->mode = v->writable ? 0 : JNI_ABORT;
  ++skv_java_n_pins;
  v->address = p->elements;
  return 1;
}
%}

/* Applied to the binding layer's calls only (starkv.i expands it before starkv_binding.h). */
%define SKV_EXCEPTION_HANDLER
%exception {
  skv_error_reset();
  $action
  skv_java_unpin_all(jenv);
  if (skv_error_status() != STARKV_OK) skv_java_throw(jenv);
}
%enddef

/* ---- handles as longs ----------------------------------------------------------------------- */

%typemap(jni) skv_handle* "jlong"
%typemap(jtype) skv_handle* "long"
%typemap(jstype) skv_handle* "long"
%typemap(javain) skv_handle* "$javainput"
%typemap(javaout) skv_handle* { return $jnicall; }
%typemap(in) skv_handle* %{ $1 = (skv_handle*)(intptr_t)$input; %}
%typemap(out) skv_handle* %{ $result = (jlong)(intptr_t)$1; %}

/* ---- buffers -------------------------------------------------------------------------------- */

%define SKV_JAVA_BUFFER(TYPE, WRITABLE)
%typemap(jni) (TYPE DATA, int64_t NBYTES, int32_t KIND) "jobject"
%typemap(jtype) (TYPE DATA, int64_t NBYTES, int32_t KIND) "Object"
%typemap(jstype) (TYPE DATA, int64_t NBYTES, int32_t KIND) "Object"
%typemap(javain) (TYPE DATA, int64_t NBYTES, int32_t KIND) "$javainput"
%typemap(in) (TYPE DATA, int64_t NBYTES, int32_t KIND) (skv_jview view) {
  if (!skv_java_inspect(jenv, $input, WRITABLE, "$1_name", &view)) {
    skv_java_throw(jenv);
    return $null;
  }
  $1 = NULL;
  $2 = view.nbytes;
  $3 = view.kind;
}
%typemap(check) (TYPE DATA, int64_t NBYTES, int32_t KIND) {
  if (!skv_java_pin_view(jenv, &view$argnum)) {
    skv_java_unpin_all(jenv);
    skv_java_throw(jenv);
    return $null;
  }
  $1 = (TYPE)view$argnum.address;
}
%enddef
SKV_JAVA_BUFFER(skv_in, 0)
SKV_JAVA_BUFFER(skv_out, 1)
