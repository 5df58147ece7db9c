#!/usr/bin/env bash
# Installs the build with `cmake --install` into a staging prefix and runs what was
# installed the way an operator would: tidingsd from the installed example config as an
# unprivileged user, then `tidings ping` and a pub/sub round trip with the installed CLI.
#
#   install_test.sh BUILD_DIR SOURCE_DIR
#
# TIDINGS_BINDIR, TIDINGS_SYSCONFDIR and TIDINGS_UNIT_DIR name the build's install
# directories (relative to the prefix); CMAKE_COMMAND the cmake to install with.
set -euo pipefail

if (($# != 2)); then
  echo "usage: $0 BUILD_DIR SOURCE_DIR" >&2
  exit 2
fi
build_dir=$(realpath "$1")
source_dir=$(realpath "$2")
cmake=${CMAKE_COMMAND:-cmake}
bindir=${TIDINGS_BINDIR:-bin}
sysconfdir=${TIDINGS_SYSCONFDIR:-etc}
unitdir=${TIDINGS_UNIT_DIR:-lib/systemd/system}

fail() {
  echo "install_test: FAIL: $*" >&2
  exit 1
}

for dir in "$bindir" "$sysconfdir" "$unitdir"; do
  # --prefix does not move an absolute destination: the test would install into the system.
  [[ $dir != /* ]] ||
    fail "install directory $dir is absolute; configure relative ones to run this test"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/tidings-install-test.XXXXXX")
stage=$work/stage
daemon_pid=""
sub_pid=""

cleanup() {
  local status=$?
  if [[ -n $sub_pid ]]; then kill "$sub_pid" 2>/dev/null || true; fi
  if [[ -n $daemon_pid ]]; then kill -KILL "$daemon_pid" 2>/dev/null || true; fi
  if ((status != 0)); then
    for log in "$work"/*.log; do
      [[ -e $log ]] || continue
      echo "--- $(basename "$log")" >&2
      cat "$log" >&2
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Whether process PID is running; unlike kill -0, a child that exited and was not yet
# waited for (a zombie) counts as gone.
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}
export -f alive

# Waits until FILE has a line containing TEXT, for at most SECONDS, while process PID lives.
wait_for_line() {
  local file=$1 text=$2 seconds=$3 pid=$4
  timeout "$seconds" bash -c '
    until grep -qF -- "$2" "$1" 2>/dev/null; do
      alive "$3" || exit 1
      sleep 0.05
    done' _ "$file" "$text" "$pid"
}

# Waits at most SECONDS for process PID to end.
wait_for_exit() {
  timeout "$2" bash -c 'while alive "$1"; do sleep 0.05; done' _ "$1"
}

# --- Install ---------------------------------------------------------------------------

echo "install_test: cmake --install $build_dir --prefix $stage"
timeout 60 "$cmake" --install "$build_dir" --prefix "$stage" >"$work/install.log" 2>&1 ||
  fail "cmake --install failed"

tidingsd=$stage/$bindir/tidingsd
tidings=$stage/$bindir/tidings
config=$stage/$sysconfdir/tidings/tidingsd.conf
unit=$stage/$unitdir/tidingsd.service
for file in "$tidingsd" "$tidings"; do
  [[ -x $file ]] || fail "$file was not installed (or is not executable)"
done
for file in "$config" "$unit"; do
  [[ -f $file ]] || fail "$file was not installed"
done
cmp -s "$config" "$source_dir/packaging/tidingsd.conf" ||
  fail "$config differs from packaging/tidingsd.conf"
grep -qE "^ExecStart=/.*/tidingsd --config /.*/tidings/tidingsd.conf$" "$unit" ||
  fail "$unit has no ExecStart running tidingsd with the installed config"
grep -qx "User=tidings" "$unit" || fail "$unit does not run as the user tidings"

# A second install is an upgrade: it must keep the operator's edits to the config.
echo "# edited by the operator" >>"$config"
timeout 60 "$cmake" --install "$build_dir" --prefix "$stage" >>"$work/install.log" 2>&1 ||
  fail "the second cmake --install failed"
grep -qx "# edited by the operator" "$config" || fail "reinstalling overwrote $config"

# --- Start the installed daemon as an unprivileged user --------------------------------

as_user=()
if ((EUID == 0)); then
  as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
fi
# mktemp made the directory private to us.
chmod -R a+rX "$work"
"${as_user[@]}" test -x "$tidingsd" ||
  fail "the unprivileged user cannot run $tidingsd (is a parent of $work private?)"

"${as_user[@]}" "$tidingsd" --config "$config" --host 127.0.0.1 --port 0 \
  >"$work/tidingsd.log" 2>&1 &
daemon_pid=$!
wait_for_line "$work/tidingsd.log" "ready: listening on " 10 "$daemon_pid" ||
  fail "tidingsd did not log its ready line within 10s"
port=$(sed -n 's/.*ready: listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/tidingsd.log")
[[ -n $port ]] || fail "no port in the ready line"
server=127.0.0.1:$port
echo "install_test: tidingsd (pid $daemon_pid) is listening on $server"

read -r _ real_uid effective_uid _ < <(grep '^Uid:' "/proc/$daemon_pid/status")
[[ $real_uid != 0 && $effective_uid != 0 ]] ||
  fail "tidingsd runs as root (uid $real_uid, euid $effective_uid)"
echo "install_test: tidingsd runs as uid $effective_uid"

# --- The installed CLI against it ------------------------------------------------------

timeout 15 "$tidings" ping --server "$server" --timeout 5s >"$work/ping.log" 2>&1 ||
  fail "tidings ping --server $server failed"
echo "install_test: tidings ping: ok"

topic=install.check
token="install-$$-$RANDOM"
timeout 30 "$tidings" sub 'install.>' --count 1 --server "$server" \
  >"$work/sub.out" 2>"$work/sub.log" &
sub_pid=$!
wait_for_line "$work/sub.log" "subscribed: install.>" 10 "$sub_pid" ||
  fail "tidings sub did not confirm its subscription within 10s"
# TIDINGS_SERVER rather than --server, so that the variable is covered too.
TIDINGS_SERVER=$server timeout 15 "$tidings" pub "$topic" "{\"token\":\"$token\"}" \
  >"$work/pub.log" 2>&1 || fail "tidings pub failed"

sub_status=0
wait "$sub_pid" || sub_status=$?
sub_pid=""
((sub_status == 0)) || fail "tidings sub --count 1 exited $sub_status"
lines=$(wc -l <"$work/sub.out")
((lines == 1)) || fail "tidings sub printed $lines lines, expected 1"
grep -qF "\"$topic\"" "$work/sub.out" || fail "the received line does not name $topic"
grep -qF "$token" "$work/sub.out" || fail "the received line does not carry the published data"
echo "install_test: pub/sub round trip: $(cat "$work/sub.out")"

# --- Graceful stop ---------------------------------------------------------------------

kill -TERM "$daemon_pid"
wait_for_exit "$daemon_pid" 15 ||
  fail "tidingsd did not exit within 15s of SIGTERM"
daemon_status=0
wait "$daemon_pid" || daemon_status=$?
daemon_pid=""
((daemon_status == 0)) || fail "tidingsd exited $daemon_status after SIGTERM, expected 0"
grep -qF "stopped:" "$work/tidingsd.log" || fail "tidingsd logged no stop line"
echo "install_test: SIGTERM: tidingsd exited 0"
echo "install_test: passed"
