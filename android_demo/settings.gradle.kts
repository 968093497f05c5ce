// The guard-sdk Android demo: the app, and the plain JVM module it shares with this repository's tests.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "guard-sdk-android-demo"
include(":app", ":guard-core")
