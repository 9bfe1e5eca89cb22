plugins {
    alias(libs.plugins.android.application)
}

// ExecuTorch for Android, built and installed per ABI by scripts/build_executorch_android.sh.
val executorchDir: String? = providers.gradleProperty("lrf.executorchDir")
    .orElse(providers.environmentVariable("EXECUTORCH_DIR"))
    .orNull
val appAbis: List<String> = providers.gradleProperty("lrf.abis").orElse("arm64-v8a").get()
    .split(",").map { it.trim() }.filter { it.isNotEmpty() }

android {
    namespace = "org.lrf.android"
    compileSdk = 36
    // The NDK ExecuTorch was built with (scripts/build_executorch_android.sh): r28+ also gives
    // the 16 KB page alignment Android 15+ devices need, by default.
    ndkVersion = "28.2.13676358"

    defaultConfig {
        applicationId = "org.lrf.android"
        minSdk = 26
        targetSdk = 36
        versionCode = 1
        versionName = "0.1"

        ndk {
            abiFilters += appAbis
        }
        externalNativeBuild {
            cmake {
                // c++_static: one native library in the app, and the libc++ ExecuTorch was built with.
                arguments += listOf("-DANDROID_STL=c++_static")
                if (executorchDir != null) arguments += "-DEXECUTORCH_DIR=$executorchDir"
            }
        }
    }

    externalNativeBuild {
        cmake {
            path = file("src/main/cpp/CMakeLists.txt")
            version = "3.31.6"
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
            // A demo: sign release builds with the debug key so `installRelease` works out of the box.
            signingConfig = signingConfigs.getByName("debug")
        }
    }

    compileOptions {
        // Built-in Kotlin takes its jvmTarget from here.
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    buildFeatures {
        // Native packages from AARs (the openssl module: libcrypto for the bundle's sha256 check).
        prefab = true
    }

    androidResources {
        // The bundle is copied out of the APK once; keep .pte/.npy uncompressed so that copy is cheap.
        noCompress += listOf("pte", "npy")
    }
}

dependencies {
    implementation(libs.kotlinx.coroutines.android)
    implementation(libs.ndk.openssl)
}
