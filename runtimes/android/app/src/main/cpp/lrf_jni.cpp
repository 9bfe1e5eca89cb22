// JNI glue between the Kotlin app (org.lrf.android.LrfNative) and the C++ runtime of
// runtimes/native (lrf::BundleRuntime): the sampler loop, the noise and the self-test that run
// on the phone are the tested C++ ones, nothing is re-implemented in Kotlin.
//
// Contract (mirrored by LrfNative.kt and, for the desktop check, by jni-check/java/):
//   static long     nativeOpen(String bundleDir, boolean verify, int threads)
//   static void     nativeClose(long handle)
//   static String   nativeManifestJson(long handle)
//   static int[]    nativeGenerate(long handle, int classId, int steps, long seed, StepListener l)
//   static String   nativeSelfTestJson(long handle)
//   static long[]   nativeMemoryKib()            {VmRSS, VmHWM, VmPeak} of this process
// Every lrf::Error comes back as org.lrf.android.LrfException with the runtime's one-line
// message (LrfCancelledException / LrfOutOfMemoryException for those two cases); a Java
// exception thrown by the listener stops the loop and propagates unchanged. A handle is used by
// one thread at a time (the app runs all calls on one executor); overlapping calls are refused.
#include <jni.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lrf/bundle_runtime.h"
#include "lrf/memory.h"
#include "lrf/selftest.h"

namespace {

constexpr const char* kError = "org/lrf/android/LrfException";
constexpr const char* kCancelled = "org/lrf/android/LrfCancelledException";
constexpr const char* kOutOfMemory = "org/lrf/android/LrfOutOfMemoryException";

struct Handle {
  explicit Handle(const std::string& root, bool verify, int threads) : rt(root, verify, threads) {}
  lrf::BundleRuntime rt;
  std::atomic<bool> busy{false};
};

// Thrown inside the glue when a Java exception is already pending (nothing more to throw).
struct JavaPending {};

void throw_java(JNIEnv* env, const char* cls, const std::string& message) {
  if (env->ExceptionCheck()) return;  // keep the first (e.g. the listener's own exception)
  jclass c = env->FindClass(cls);
  if (c == nullptr) return;  // FindClass left NoClassDefFoundError pending
  env->ThrowNew(c, message.c_str());
  env->DeleteLocalRef(c);
}

// Runs `body`; every C++ exception becomes the matching Java exception and `fallback` is
// returned (the JVM raises the pending exception as soon as the native method returns).
template <typename T, typename F>
T guarded(JNIEnv* env, T fallback, F&& body) {
  try {
    return body();
  } catch (const JavaPending&) {
  } catch (const lrf::Cancelled& e) {
    throw_java(env, kCancelled, e.what());
  } catch (const lrf::OutOfMemory& e) {
    throw_java(env, kOutOfMemory, e.what());
  } catch (const lrf::Error& e) {
    throw_java(env, kError, e.what());
  } catch (const std::bad_alloc&) {
    throw_java(env, kOutOfMemory, "out of memory in the LRF runtime; free memory or use a smaller (int8) bundle");
  } catch (const std::exception& e) {
    throw_java(env, kError, std::string("internal error in the LRF runtime: ") + e.what());
  } catch (...) {
    throw_java(env, kError, "internal error in the LRF runtime (unknown exception)");
  }
  return fallback;
}

// Marks a handle busy for the duration of one call; refuses a closed (0) or busy handle.
class Use {
 public:
  explicit Use(jlong raw) : h_(reinterpret_cast<Handle*>(raw)) {
    if (h_ == nullptr) throw lrf::Error("the LRF runtime is closed; open the bundle again");
    if (h_->busy.exchange(true)) throw lrf::Error("the LRF runtime is busy with another call; wait for it to finish");
  }
  ~Use() { h_->busy.store(false); }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;
  Handle* operator->() const { return h_; }

 private:
  Handle* h_;
};

std::string to_string(JNIEnv* env, jstring s) {
  if (s == nullptr) throw lrf::Error("no bundle folder given");
  const char* chars = env->GetStringUTFChars(s, nullptr);
  if (chars == nullptr) throw JavaPending{};  // OutOfMemoryError pending
  std::string out(chars);
  env->ReleaseStringUTFChars(s, chars);
  return out;
}

jstring to_jstring(JNIEnv* env, const std::string& s) {
  jstring out = env->NewStringUTF(s.c_str());
  if (out == nullptr) throw JavaPending{};
  return out;
}

// JSON has no inf/nan; write them as the strings Double.parseDouble / float() accept.
nlohmann::json number(double v) {
  if (std::isfinite(v)) return v;
  if (std::isnan(v)) return "NaN";
  return v > 0 ? "Infinity" : "-Infinity";
}

}  // namespace

extern "C" {

JNIEXPORT jlong JNICALL Java_org_lrf_android_LrfNative_nativeOpen(JNIEnv* env, jclass, jstring dir, jboolean verify,
                                                                  jint threads) {
  return guarded<jlong>(env, 0, [&] {
    const std::string root = to_string(env, dir);
    return reinterpret_cast<jlong>(new Handle(root, verify == JNI_TRUE, threads));
  });
}

JNIEXPORT void JNICALL Java_org_lrf_android_LrfNative_nativeClose(JNIEnv* env, jclass, jlong raw) {
  guarded<int>(env, 0, [&] {
    auto* h = reinterpret_cast<Handle*>(raw);
    if (h == nullptr) return 0;
    if (h->busy.load()) throw lrf::Error("the LRF runtime is busy; cancel the generation before closing it");
    delete h;
    return 0;
  });
}

JNIEXPORT jstring JNICALL Java_org_lrf_android_LrfNative_nativeManifestJson(JNIEnv* env, jclass, jlong raw) {
  return guarded<jstring>(env, nullptr, [&] {
    Use h(raw);
    const lrf::Manifest& m = h->rt.manifest();
    std::vector<int> offered;
    for (const auto& [n, _] : m.schedules) offered.push_back(n);
    const nlohmann::json doc = {
        {"model", m.model_name},
        {"target", m.target},
        {"precision", m.precision},
        {"graph", m.plan.loop_graph},
        {"class_names", m.class_names},
        {"steps", m.steps},
        {"offered_steps", offered},
        {"image_shape", m.image_shape},
        {"artifact_bytes", m.artifact_bytes()},
        {"root", m.root.string()},
    };
    return to_jstring(env, doc.dump());
  });
}

JNIEXPORT jintArray JNICALL Java_org_lrf_android_LrfNative_nativeGenerate(JNIEnv* env, jclass, jlong raw, jint class_id,
                                                                          jint steps, jlong seed, jobject listener) {
  return guarded<jintArray>(env, nullptr, [&] {
    Use h(raw);
    lrf::BundleRuntime& rt = h->rt;
    const lrf::Manifest& m = rt.manifest();
    if (steps < 0) throw lrf::Error("steps " + std::to_string(steps) + " is invalid; use 0 (the bundle's) or an offered count");
    if (seed < 0) throw lrf::Error("seed " + std::to_string(seed) + " is invalid; use a non-negative integer");
    lrf::Request request;  // inputs() range-checks the class and the steps, naming the valid ones
    request.class_name = std::to_string(class_id);
    request.seed = static_cast<uint64_t>(seed);
    request.steps = steps;
    const lrf::Values values = rt.inputs(request);
    const int total = m.plan.repeat_schedule.empty()
                          ? m.plan.repeat_count
                          : static_cast<int>(m.schedule(static_cast<int>(values.at(m.plan.repeat_schedule))).size()) - 1;

    jmethodID on_step = nullptr;
    if (listener != nullptr) {
      jclass lc = env->GetObjectClass(listener);
      on_step = env->GetMethodID(lc, "onStep", "(IID)Z");
      env->DeleteLocalRef(lc);
      if (on_step == nullptr) throw JavaPending{};  // NoSuchMethodError pending
    }
    const lrf::StepCallback callback = [&](int step, const lrf::State&, double ms) {
      if (on_step == nullptr) return true;
      const jboolean go = env->CallBooleanMethod(listener, on_step, static_cast<jint>(step), static_cast<jint>(total),
                                                 static_cast<jdouble>(ms));
      // A listener that threw stops the loop; its exception stays pending and propagates.
      return !env->ExceptionCheck() && go == JNI_TRUE;
    };
    const lrf::State state = rt.iterate(values, callback);
    if (env->ExceptionCheck()) throw JavaPending{};
    const int height = static_cast<int>(m.image_shape.at(1)), width = static_cast<int>(m.image_shape.at(2));
    const std::vector<uint8_t> rgb = lrf::rgb_bytes(rt.finish(state, values));

    // ARGB_8888 as android.graphics.Bitmap.createBitmap(int[], w, h, ARGB_8888) takes it.
    const size_t pixels = static_cast<size_t>(height) * width;
    std::vector<jint> argb(pixels);
    for (size_t p = 0; p < pixels; ++p)
      argb[p] = static_cast<jint>(0xFF000000u | (uint32_t(rgb[3 * p]) << 16) | (uint32_t(rgb[3 * p + 1]) << 8) |
                                  uint32_t(rgb[3 * p + 2]));
    jintArray out = env->NewIntArray(static_cast<jsize>(pixels));
    if (out == nullptr) throw JavaPending{};
    env->SetIntArrayRegion(out, 0, static_cast<jsize>(pixels), argb.data());
    return out;
  });
}

JNIEXPORT jstring JNICALL Java_org_lrf_android_LrfNative_nativeSelfTestJson(JNIEnv* env, jclass, jlong raw) {
  return guarded<jstring>(env, nullptr, [&] {
    Use h(raw);
    const lrf::SelfTestReport report = lrf::run_selftest(h->rt);
    nlohmann::json checks = nlohmann::json::array();
    for (const auto& c : report.checks)
      checks.push_back({{"name", c.name}, {"metric", c.metric}, {"value", number(c.value)}, {"limit", number(c.limit)},
                        {"passed", c.passed}});
    return to_jstring(env, nlohmann::json{{"passed", report.passed()}, {"checks", checks}}.dump());
  });
}

JNIEXPORT jlongArray JNICALL Java_org_lrf_android_LrfNative_nativeMemoryKib(JNIEnv* env, jclass) {
  return guarded<jlongArray>(env, nullptr, [&] {
    const lrf::MemoryReading r = lrf::read_memory();
    const jlong values[3] = {r.rss_kib, r.peak_rss_kib, r.peak_vm_kib};
    jlongArray out = env->NewLongArray(3);
    if (out == nullptr) throw JavaPending{};
    env->SetLongArrayRegion(out, 0, 3, values);
    return out;
  });
}

}  // extern "C"
