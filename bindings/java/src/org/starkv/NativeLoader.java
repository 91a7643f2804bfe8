package org.starkv;

/**
 * Loads the JNI library (libstarkv_jni, which links libstarkv). The system property
 * {@code starkv.jni.library} may name the file; otherwise it is looked up on
 * {@code java.library.path}.
 */
final class NativeLoader {
  private static boolean loaded;

  private NativeLoader() {}

  static synchronized void load() {
    if (loaded) {
      return;
    }
    String path = System.getProperty("starkv.jni.library");
    if (path != null && !path.isEmpty()) {
      System.load(path);
    } else {
      System.loadLibrary("starkv_jni");
    }
    loaded = true;
  }
}
