// Plain Java, no Android: tokenizer.json, guard.json, windows and verdicts. In this repository it compiles and
// its tests run with Debian's JDK and JUnit through test.sh (`make test`); here Gradle does the same.
plugins {
    `java-library`
}

java {
    toolchain { languageVersion.set(JavaLanguageVersion.of(17)) }
    sourceCompatibility = JavaVersion.VERSION_11
    targetCompatibility = JavaVersion.VERSION_11
}

dependencies {
    // Android ships org.json; on a desktop JVM the same classes come from Android's json library.
    compileOnly("com.vaadin.external.google:android-json:0.0.20131108.vaadin1")
    testImplementation("com.vaadin.external.google:android-json:0.0.20131108.vaadin1")
    testImplementation(platform("org.junit:junit-bom:5.13.4"))
    testImplementation("org.junit.jupiter:junit-jupiter")
    testRuntimeOnly("org.junit.platform:junit-platform-launcher")
}

tasks.test {
    useJUnitPlatform()
    // The same inputs test.sh passes: `guard-sdk android vectors` files and a bundle with model.int8.pte
    // (`make android-assets` exports the default guard's).
    systemProperty("guard.vectors", rootProject.file("../build/android-vectors").absolutePath)
    systemProperty("guard.bundle", rootProject.file("../build/bundles/guard-sdk-default-android").absolutePath)
}
