#!/usr/bin/env bash
# Compiles guard-core and runs its JUnit 5 tests with Debian's JDK, JUnit and Android's org.json, which
# `make jvm-setup` installs (Gradle's own `test` task runs the same tests where Gradle can reach Maven).
#   test.sh VECTORS_DIR BUNDLE_DIR
# VECTORS_DIR holds `guard-sdk android vectors` files; BUNDLE_DIR is a bundle with model.int8.pte that the
# bundle tests copy and damage (tests/test_android.py passes a tiny exported BERT).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vectors=${1:?usage: test.sh VECTORS_DIR BUNDLE_DIR}
bundle=${2:?usage: test.sh VECTORS_DIR BUNDLE_DIR}
json=/usr/share/java/com.android.json.jar
junit=/usr/share/java/junit-platform-console-standalone.jar
for jar in "$json" "$junit"; do
  [ -f "$jar" ] || { echo "test.sh: $jar is missing: run make jvm-setup" >&2; exit 2; }
done
command -v javac >/dev/null || { echo "test.sh: no javac: run make jvm-setup" >&2; exit 2; }
out="$here/build"
rm -rf "$out"
mkdir -p "$out/main" "$out/test"
javac --release 11 -Xlint:all -Werror -d "$out/main" -cp "$json" $(find "$here/src/main" -name '*.java')
javac --release 11 -Xlint:all -Werror -d "$out/test" -cp "$out/main:$json:$junit" $(find "$here/src/test" -name '*.java')
exec java -Dguard.vectors="$vectors" -Dguard.bundle="$bundle" -jar "$junit" --disable-banner --disable-ansi-colors --details=tree \
  --fail-if-no-tests --class-path "$out/main:$out/test:$json" --scan-class-path "$out/test"
