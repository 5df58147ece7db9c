#!/usr/bin/env bash
# Installs what is missing, builds an optimised tidingsd, and runs it in the foreground.
# Arguments go to tidingsd (default: listen on 0.0.0.0:4700); see `--help`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DTIDINGS_WERROR=ON \
  -DTIDINGS_BUILD_TESTS=OFF -DTIDINGS_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build-release -j "$(nproc)" --target tidingsd
exec build-release/broker/tidingsd "$@"
