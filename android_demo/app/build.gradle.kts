plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.guardsdk.demo"
    compileSdk = 36

    defaultConfig {
        applicationId = "dev.guardsdk.demo"
        minSdk = 26 // guard-core reads files with java.nio.file (API 26)
        targetSdk = 36
        versionCode = 1
        versionName = "0.1.0"
        ndk { abiFilters += listOf("arm64-v8a", "x86_64") } // the ABIs ExecuTorch's AAR ships
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            signingConfig = signingConfigs.getByName("debug") // a demo: installable without a release key
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    // Stored, not compressed: the app copies the bundle out of the APK once, byte for byte, then checks sha256.
    androidResources { noCompress += listOf("pte", "json") }
}

kotlin { jvmToolchain(17) }

dependencies {
    implementation(project(":guard-core"))
    implementation("org.pytorch:executorch-android:${property("executorchVersion")}")
}

// `guard-sdk android assets` puts guard.json, tokenizer.json and model.int8.pte here; say so before a build
// that would ship an app with no guard in it.
val checkGuardAssets by tasks.registering {
    val manifest = file("src/main/assets/guard/guard.json")
    doLast {
        if (!manifest.isFile) {
            throw GradleException(
                "no guard bundle in app/src/main/assets/guard: run `guard-sdk android assets` " +
                    "(the embedded default guard) or `guard-sdk android assets -b YOUR_BUNDLE` first",
            )
        }
    }
}
tasks.named("preBuild") { dependsOn(checkGuardAssets) }
