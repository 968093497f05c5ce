#!/usr/bin/env bash
# Benchmark a guard bundle on an Android phone through the demo app, in the same report format as
# `guard-sdk bench`. Needs adb, a phone with USB debugging on, and the demo app installed
# (android_demo/README.md: ./gradlew installRelease).
#
#   benchmarks/android_bench.sh [BUNDLE] [--runs N] [--warmup N] [--tokens N] [-o DIR]
#
# BUNDLE (default: the default guard's, which make android-assets exports) must hold model.int8.pte. It pushes
# guard.json, tokenizer.json and the .pte to the phone, starts the app's benchmark screen with adb, waits, pulls
# benchmark_results.json (ExecuTorch benchmark-app fields) and guard_run.json back, and runs
# `guard-sdk android report` on them: results.json and RESULTS.md land in DIR (default benchmarks/android).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
guard_sdk=${GUARD_SDK:-$root/.venv/bin/guard-sdk}
bundle=$root/build/bundles/guard-sdk-default-android runs=50 warmup=5 tokens=128 out="$root/benchmarks/android"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --tokens) tokens=$2; shift 2 ;;
    -o|--output|--out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "android_bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) bundle=$1; shift ;;
  esac
done
command -v adb >/dev/null || { echo "android_bench.sh: adb is not on PATH (Android platform-tools)" >&2; exit 2; }
[ -x "$guard_sdk" ] || { echo "android_bench.sh: no $guard_sdk: run make setup, or set GUARD_SDK" >&2; exit 2; }
[ -f "$bundle/guard.json" ] || { echo "android_bench.sh: no bundle at $bundle: make android-assets makes the default guard's" >&2; exit 2; }
[ "$(adb get-state 2>/dev/null)" = device ] || { echo "android_bench.sh: no phone attached (adb devices)" >&2; exit 2; }
app=dev.guardsdk.demo
adb shell pm path "$app" >/dev/null || { echo "android_bench.sh: $app is not installed on the phone" >&2; exit 2; }

# The same three files the app ships, each checked against guard.json on the way.
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
"$guard_sdk" android assets --bundle "$bundle" --assets "$staging/guard-bundle" >/dev/null
remote=/data/local/tmp/guard-bundle
adb shell rm -rf "$remote"
adb push "$staging/guard-bundle" /data/local/tmp/ >/dev/null

files=/sdcard/Android/data/$app/files
adb shell rm -f "$files/benchmark_results.json" "$files/guard_run.json"
adb shell am start -W -S -n "$app/.BenchmarkActivity" --ei runs "$runs" --ei warmup "$warmup" \
  --ei tokens "$tokens" --es bundle_dir "$remote" --ez autorun true >/dev/null
echo "benchmarking on $(adb shell getprop ro.product.model | tr -d '\r'): $runs runs after $warmup, $tokens tokens" >&2
finished=""
for _ in $(seq 600); do  # at most 10 minutes
  if adb shell "[ -f $files/guard_run.json ]"; then finished=1; break; fi
  sleep 1
done
[ -n "$finished" ] || { echo "android_bench.sh: no result after 10 minutes (adb logcat -s GuardBench)" >&2; exit 1; }
mkdir -p "$staging/pulled"
adb pull "$files/benchmark_results.json" "$staging/pulled/" >/dev/null
adb pull "$files/guard_run.json" "$staging/pulled/" >/dev/null
mkdir -p "$out"
cp "$staging/pulled/"*.json "$out/"
"$guard_sdk" android report "$staging/pulled" -o "$out"
