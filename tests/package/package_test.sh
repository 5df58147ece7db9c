#!/usr/bin/env bash
# Installs the build into a staging prefix, builds tests/package/consumer against it with
# find_package(tidings), and runs it against the staged tidingsd.
#   package_test.sh BUILD_DIR SOURCE_DIR [EXTRA_CXX_FLAGS]
set -euo pipefail
build_dir=$1
source_dir=$2
extra_flags=${3:-}

work=$(mktemp -d)
daemon_pid=""
cleanup() {
  [[ -n $daemon_pid ]] && kill -KILL "$daemon_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cmake --install "$build_dir" --prefix "$work/stage" >/dev/null
test -f "$work/stage/include/tidings/client.hpp"
test -f "$work/stage/include/tidings/protocol/encoder.hpp"
ls "$work"/stage/lib*/cmake/tidings/tidingsConfig.cmake >/dev/null

# Sanitizer builds install instrumented libraries: the consumer must link the runtime too.
cmake -S "$source_dir/tests/package/consumer" -B "$work/consumer" -G Ninja \
  -DCMAKE_PREFIX_PATH="$work/stage" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS="$extra_flags" -DCMAKE_EXE_LINKER_FLAGS="$extra_flags" >/dev/null
cmake --build "$work/consumer" >/dev/null

"$work/stage/bin/tidingsd" --host 127.0.0.1 --port 0 --threads 1 2>"$work/daemon.log" &
daemon_pid=$!
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.*ready: listening on [^ ]*:\([0-9]*\).*/\1/p' "$work/daemon.log")
  [[ -n $port ]] && break
  kill -0 "$daemon_pid" || { cat "$work/daemon.log"; exit 1; }
  # The ready line is the daemon's own signal; this only paces the check of its log.
  sleep 0.1
done
[[ -n $port ]] || { echo "no ready line"; cat "$work/daemon.log"; exit 1; }

output=$(timeout 30 "$work/consumer/consumer" "127.0.0.1:$port")
echo "$output"
[[ $output == 'reply: {"hello":"package"}' ]]
kill -TERM "$daemon_pid"
wait "$daemon_pid"
daemon_pid=""
