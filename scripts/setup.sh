#!/usr/bin/env bash
# Installs, from Debian bookworm's packages, whatever the build and the tests need and
# this machine lacks. Idempotent and non-interactive: run it as often as you like.
#
#   scripts/setup.sh               # everything: build, tests, benchmarks, fuzzing
#   scripts/setup.sh --build-only  # only what building tidingsd, tidings and the client
#                                  # library needs (the Docker image's build stage)
set -euo pipefail

# Building tidingsd, the tidings tool and the client library.
build_packages=(
  build-essential cmake ninja-build pkg-config
  libboost-dev libboost-system-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
)
# The tests, benchmarks, sanitizers and the fuzz target (clang), and the tools the e2e
# tests call.
test_packages=(
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-dev
  procps iproute2
)

case "${1:-}" in
  "") packages=("${build_packages[@]}" "${test_packages[@]}") ;;
  --build-only) packages=("${build_packages[@]}") ;;
  *) echo "usage: $0 [--build-only]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
