#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, integration, e2e).
#
#   scripts/test.sh                              # the normal build, in build/
#   scripts/test.sh --sanitize address,undefined # in build-asan/
#   scripts/test.sh --sanitize thread            # in build-tsan/
#   scripts/test.sh -L unit                      # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."

sanitize=""
ctest_args=()
while (($#)); do
  case "$1" in
    --sanitize) sanitize=$2; shift 2 ;;
    --sanitize=*) sanitize=${1#*=}; shift ;;
    *) ctest_args+=("$1"); shift ;;
  esac
done

case "$sanitize" in
  "") build_dir=build ;;
  thread) build_dir=build-tsan ;;
  *address*) build_dir=build-asan ;;
  *) build_dir=build-${sanitize//,/-} ;;
esac
build_dir=${TIDINGS_BUILD_DIR:-$build_dir}

# The micro-benchmarks measure nothing under a sanitizer and no test runs them: a
# sanitizer build leaves them out.
benchmarks=ON
if [[ -n $sanitize ]]; then benchmarks=OFF; fi

scripts/setup.sh
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTIDINGS_SANITIZE="$sanitize" -DTIDINGS_WERROR=ON -DTIDINGS_BUILD_BENCHMARKS="$benchmarks"
cmake --build "$build_dir" -j "$(nproc)"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
ctest --test-dir "$build_dir" --output-on-failure --timeout 300 -j "$(nproc)" "${ctest_args[@]}"
