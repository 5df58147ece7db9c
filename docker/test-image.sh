#!/usr/bin/env bash
# shellcheck disable=SC2317 # cleanup and the polled checks are called by trap and wait_for
# Builds docker/Dockerfile with a real Docker engine and checks the image as a user would:
#
#   1. `docker run`: it runs as uid 4700, not root; its HEALTHCHECK turns healthy; the
#      host's `tidings` (copied out of the image) does a pub/sub round trip with it;
#      `docker stop` drains it and it exits 0.
#   2. `docker run` with a mounted config and TIDINGS_* variables: both take effect (the
#      settings it logs, the port it listens on, the name it answers with).
#   3. docker/docker-compose.yml with `docker-compose`: the broker turns healthy and the
#      subscriber prints the publisher's messages.
#
#   docker/test-image.sh          # as root; run it under `nice` to build at low priority
#
# Everything runs on the host's network (`--network host`, compose `network_mode: host`)
# and listens on 127.0.0.1 only, on free ports from TIDINGS_TEST_PORT (default 24710) up:
# no traffic leaves loopback, and no registry is needed.
#
# What it needs, and where it comes from:
# - Debian's docker.io, docker-compose (v1) and debootstrap, installed with apt when missing.
# - A running engine. If none answers, it starts `dockerd --bridge=none --iptables=false`
#   (data root TIDINGS_DOCKER_DATA_ROOT, default /var/lib/docker) and stops it at the end.
# - The base images debian:bookworm and debian:bookworm-slim. No registry is reachable, so
#   when debian:bookworm is missing it is imported from `debootstrap --variant=minbase
#   bookworm` (the mirror of apt's sources, or TIDINGS_DEBIAN_MIRROR), and kept in the
#   engine for later runs.
#
# The image is tagged tidings:local (the name README and the compose file use). Its
# layers stay in the engine, so a run whose sources did not change rebuilds nothing;
# `docker image prune` reclaims the build stages of older sources.
#
# Exit status: 0 when every check passed, or after one line `SKIP: <why>` where no engine
# can run (not root, no namespaces, the packages cannot be installed, dockerd does not
# start); 1 when a check failed. Every wait is bounded.

# The braces make bash read the whole script before it runs any of it, so that a checkout
# or an edit during a run cannot change the lines still to come.
{
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
image=tidings:local
project=tidings-test-image # container names and the compose project
port_base=${TIDINGS_TEST_PORT:-24710}
data_root=${TIDINGS_DOCKER_DATA_ROOT:-/var/lib/docker}
start=$SECONDS

say() { echo "test-image: $*" >&2; }
skip() {
  echo "SKIP: docker/test-image.sh: $*"
  exit 0
}
fail() {
  echo "FAIL: docker/test-image.sh: $*" >&2
  exit 1
}
# Phase timings for the summary at the end.
timings=()
phase_start=$SECONDS
phase_done() {
  timings+=("$1 $((SECONDS - phase_start))s")
  say "$1 done in $((SECONDS - phase_start))s"
  phase_start=$SECONDS
}

# --- Preconditions that decide between running and skipping ----------------------------

((EUID == 0)) || skip "needs root (it installs packages and starts dockerd)"
command -v unshare >/dev/null || skip "unshare (util-linux) is missing: cannot test for namespaces"
unshare --net --mount --pid --uts --ipc --fork true 2>/dev/null ||
  skip "cannot create namespaces here (unshare --net --mount --pid failed), so no container can start"

# One run at a time: two runs would share the engine, the image tag and the names.
lock=/run/lock/tidings-test-image.lock
[[ -d /run/lock ]] || lock=/tmp/tidings-test-image.lock
exec 9>"$lock"
flock -w 1800 9 || fail "another docker/test-image.sh held the lock for 30 minutes"

# Debian's client, not another `docker` earlier in PATH (/usr/local/bin/docker, say): its
# version matches the engine's, and its `docker build` is the classic builder, which takes
# base images from the engine instead of asking a registry for them as BuildKit does.
docker_bin=/usr/bin/docker
export DOCKER_BUILDKIT=0
# Every call is bounded: 2 minutes, or docker_timeout seconds (docker_timeout=N docker ...).
docker() { timeout "${docker_timeout:-120}" "$docker_bin" "$@"; }

missing=()
[[ -x $docker_bin && -x /usr/sbin/dockerd ]] || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || skip "${missing[*]} missing and no apt-get to install them"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # docker.io's maintainer scripts would start the docker service where an init system
  # runs, with its default bridge network and iptables rules. A policy-rc.d that denies
  # every start (if the machine has none) keeps them from it: this script starts the
  # engine it needs itself.
  policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\n# docker/test-image.sh: no service starts while it installs packages.\nexit 101\n' >"$policy"
    chmod 755 "$policy"
  fi
  installed=1
  { timeout 300 apt-get update -q && timeout 600 apt-get install -y -q \
    --no-install-recommends "${missing[@]}"; } >/tmp/tidings-test-image-apt.log 2>&1 || installed=""
  [[ -z $policy ]] || rm -f "$policy"
  if [[ -z $installed ]]; then
    tail -5 /tmp/tidings-test-image-apt.log >&2
    skip "cannot install ${missing[*]} with apt-get (log: /tmp/tidings-test-image-apt.log)"
  fi
fi
say "docker client $docker_bin ($(docker --version)), $(docker-compose --version)"

work=$(mktemp -d /tmp/tidings-test-image.XXXXXX)
# The container's uid 4700 reads the mounted config through this directory.
chmod 755 "$work"
mkdir "$work/bin"
ln -s "$docker_bin" "$work/bin/docker"

# --- Clean-up ----------------------------------------------------------------------------

dockerd_pid=""   # set when this script started the engine
compose_up=""    # set once docker-compose may have created containers
host_pids=()     # host `tidings sub` processes

# Compose builds with the `docker` CLI (COMPOSE_DOCKER_CLI_BUILD), found first in
# $work/bin: Debian's client again. Its own Python builder sends the context so that the
# build cache misses, and the image would be built twice.
compose() {
  PATH="$work/bin:$PATH" COMPOSE_DOCKER_CLI_BUILD=1 \
    timeout "${compose_timeout:-120}" docker-compose --project-name "$project" \
    --project-directory "$repo/docker" \
    -f "$work/compose/docker-compose.yml" -f "$work/compose/override.yml" "$@"
}

cleanup() {
  local status=$? pid
  set +e
  for pid in "${host_pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  if [[ -n $compose_up ]]; then
    compose_timeout=60 compose down --timeout 5 >/dev/null 2>&1
  fi
  if [[ -n $dockerd_pid ]] || docker info >/dev/null 2>&1; then
    docker rm -f "$project-run" "$project-config" "$project-cli" >/dev/null 2>&1
  fi
  if [[ -n $dockerd_pid ]]; then
    say "stopping the dockerd this script started (pid $dockerd_pid)"
    kill -TERM "$dockerd_pid" 2>/dev/null
    for _ in $(seq 60); do
      kill -0 "$dockerd_pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL "$dockerd_pid" 2>/dev/null
  fi
  if ((status != 0)) && [[ -f $work/dockerd.log ]]; then
    say "dockerd's last lines:"
    tail -5 "$work/dockerd.log" >&2
  fi
  # Nothing is mounted under $work (the debootstrap root is unmounted by debootstrap);
  # --one-file-system guards against deleting through a mount left behind.
  rm -rf --one-file-system "$work"
  say "total $((SECONDS - start))s"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Bounded waits -------------------------------------------------------------------------

# wait_for SECONDS COMMAND...: runs COMMAND every 0.2 s until it succeeds, for at most
# SECONDS.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Free loopback ports from the base up.
ports=()
next_port=$port_base
while ((${#ports[@]} < 3)); do
  ((next_port < port_base + 200)) || fail "no 3 free ports from $port_base to $((port_base + 199))"
  port_free "$next_port" && ports+=("$next_port")
  next_port=$((next_port + 1))
done

# --- The engine ----------------------------------------------------------------------------

if docker info >/dev/null 2>&1; then
  say "using the running engine ($(docker info -f '{{.ServerVersion}}'))"
else
  unset DOCKER_HOST
  say "starting dockerd (data root $data_root, no bridge, no iptables)"
  # No bridge network: every container here uses the host's network, so nothing is
  # routed or NATed off the machine.
  /usr/sbin/dockerd --bridge=none --iptables=false --data-root "$data_root" \
    --host unix:///var/run/docker.sock --pidfile "$work/dockerd.pid" \
    >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    if ! kill -0 "$dockerd_pid" 2>/dev/null; then
      dockerd_pid=""
      tail -5 "$work/dockerd.log" | sed 's/^/  dockerd: /' >&2
      skip "dockerd failed to start (its log above)"
    fi
    if ((SECONDS >= deadline)); then
      tail -5 "$work/dockerd.log" | sed 's/^/  dockerd: /' >&2
      skip "dockerd did not answer within 60 s (its log above)"
    fi
    sleep 0.2
  done
fi
phase_done engine

# --- The base images -----------------------------------------------------------------------

debian_mirror() {
  local m=${TIDINGS_DEBIAN_MIRROR:-}
  if [[ -z $m ]]; then
    # deb822 sources first (bookworm's default), then one-line ones; the archive, not
    # debian-security.
    m=$(awk '/^[[:space:]]*URIs:/ {for (i = 2; i <= NF; i++) print $i}' \
      /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -E '/debian/?$' | head -1 || true)
  fi
  if [[ -z $m ]]; then
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -n 's/\[[^]]*\]//; s/^[[:space:]]*deb[[:space:]]\+\([^[:space:]]\+\).*/\1/p' |
      grep -E '/debian/?$' | head -1 || true)
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

if docker image inspect debian:bookworm >/dev/null 2>&1; then
  say "debian:bookworm is in the engine: not debootstrapping again"
else
  mirror=$(debian_mirror)
  say "debootstrap --variant=minbase bookworm from $mirror (the first run only)"
  if ! timeout 900 debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" \
    >"$work/debootstrap.log" 2>&1; then
    tail -5 "$work/debootstrap.log" >&2
    fail "debootstrap failed"
  fi
  # The root as an image, with the official image's default command.
  tar -C "$work/rootfs" -c . | docker_timeout=300 docker import --change 'CMD ["bash"]' - debian:bookworm
  rm -rf --one-file-system "$work/rootfs"
fi
# The Dockerfile's runtime stage starts from -slim; here it is the same minbase root.
docker image inspect debian:bookworm-slim >/dev/null 2>&1 || docker tag debian:bookworm debian:bookworm-slim
phase_done "base images"

# --- Build ---------------------------------------------------------------------------------

old_image=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
say "docker build --network host -f docker/Dockerfile -t $image (log: build.log)"
if ! docker_timeout=3600 docker build --network host -f "$repo/docker/Dockerfile" -t "$image" "$repo" \
  >"$work/build.log" 2>&1; then
  tail -30 "$work/build.log" >&2
  fail "docker build failed"
fi
new_image=$(docker image inspect -f '{{.Id}}' "$image")
# The image this build replaced, so that runs do not pile images up (its build cache,
# where still shared, stays).
if [[ -n $old_image && $old_image != "$new_image" ]]; then
  docker rmi "$old_image" >/dev/null 2>&1 || true
fi
phase_done build

# --- The host's `tidings` --------------------------------------------------------------------

# The image's own client, run on the host: it links the same bookworm libraries that
# scripts/setup.sh installs.
docker create --name "$project-cli" "$image" >/dev/null
docker cp "$project-cli:/usr/local/bin/tidings" "$work/tidings"
docker rm "$project-cli" >/dev/null
cli=$work/tidings
"$cli" --version >/dev/null 2>"$work/cli.err" ||
  fail "the image's tidings does not run on this host: $(head -1 "$work/cli.err") (scripts/setup.sh installs its libraries)"

# sub_start NAME PORT PATTERN [ARGS...]: a host subscriber, confirmed before it returns;
# its pid in sub_pid.
sub_pid=""
sub_start() {
  local name=$1 port=$2 pattern=$3
  shift 3
  "$cli" sub --server "127.0.0.1:$port" "$@" "$pattern" >"$work/$name.out" 2>"$work/$name.err" &
  sub_pid=$!
  host_pids+=("$sub_pid")
  wait_for 10 grep -qsx "subscribed: $pattern" "$work/$name.err" ||
    fail "$name: no 'subscribed: $pattern' within 10 s: $(cat "$work/$name.err")"
}

# wait_exit PID SECONDS: the status of a host process that must end within SECONDS.
wait_exit() {
  local pid=$1
  wait_for "$2" eval '! kill -0 '"$pid"' 2>/dev/null' || return 124
  local status=0
  wait "$pid" || status=$?
  return "$status"
}

health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1"; }
# wait_healthy CONTAINER: bounded, failing at once on `unhealthy` or an exited container.
wait_healthy() {
  local c=$1 deadline=$((SECONDS + 60)) h
  while :; do
    h=$(health "$c")
    [[ $h == healthy ]] && return 0
    if [[ $h == unhealthy || $(docker inspect -f '{{.State.Running}}' "$c") != true ]]; then
      docker logs "$c" 2>&1 | tail -5 >&2
      fail "$c: $h, not healthy: $(docker inspect -f '{{json .State.Health}}' "$c" | tail -c 400)"
    fi
    ((SECONDS < deadline)) || fail "$c: not healthy within 60 s (health: $h)"
    sleep 0.2
  done
}

# stop_drained CONTAINER: `docker stop` must end it by its own drain (exit 0), well
# inside the grace period (the engine's SIGKILL would give 137).
stop_drained() {
  local c=$1 t0=$SECONDS status
  docker stop --time 20 "$c" >/dev/null || fail "$c: docker stop failed"
  status=$(docker inspect -f '{{.State.ExitCode}}' "$c")
  [[ $status == 0 ]] || fail "$c: exit status $status after docker stop, not 0"
  ((SECONDS - t0 < 15)) || fail "$c: docker stop took $((SECONDS - t0)) s: the drain did not end it"
}

# --- 1. docker run: user, health, round trip, stop ---------------------------------------------

c=$project-run
p=${ports[0]}
say "1. docker run on 127.0.0.1:$p"
# A 1 s interval instead of the image's 10 s, only to keep the test short; the check's
# command is the image's.
docker run -d --name "$c" --network host --health-interval 1s \
  -e TIDINGS_HOST=127.0.0.1 -e TIDINGS_PORT="$p" "$image" >/dev/null
wait_healthy "$c"

user=$(docker inspect -f '{{.Config.User}}' "$c")
[[ $user == 4700:4700 ]] || fail "$c: the image's USER is '$user', not 4700:4700"
pid1=$(docker inspect -f '{{.State.Pid}}' "$c")
comm=$(cat "/proc/$pid1/comm")
read -r _ ruid euid _ < <(grep '^Uid:' "/proc/$pid1/status")
[[ $comm == tidingsd ]] || fail "$c: PID 1 is '$comm', not tidingsd"
[[ $ruid == 4700 && $euid == 4700 ]] || fail "$c: tidingsd runs as uid $ruid/$euid, not 4700"
say "  tidingsd is PID 1 as uid 4700, healthy"

sub_start sub1 "$p" 'test.>' --count 3
sub1_pid=$sub_pid
"$cli" pub --server "127.0.0.1:$p" --count 3 test.roundtrip '{"from":"host"}' ||
  fail "tidings pub to the container failed"
wait_exit "$sub1_pid" 10 || fail "the host's tidings sub did not get 3 messages within 10 s"
n=$(grep -cx '{"topic":"test.roundtrip","data":{"from":"host"}}' "$work/sub1.out" || true)
((n == 3)) || fail "the host's subscriber got $n of 3 messages: $(cat "$work/sub1.out")"
say "  pub/sub round trip through the container: 3 of 3"

# A connected subscriber during the stop: the drain must end it with shutting_down.
sub_start sub2 "$p" 'test.>'
sub2_pid=$sub_pid
stop_drained "$c"
docker logs "$c" >"$work/run.log" 2>&1
grep -qE 'draining [1-9][0-9]* connections' "$work/run.log" || fail "$c: no drain in its log"
wait_for 5 grep -qs shutting_down "$work/sub2.err" ||
  fail "the connected subscriber was not told shutting_down: $(cat "$work/sub2.err")"
kill -TERM "$sub2_pid"
wait_exit "$sub2_pid" 10 || true
say "  docker stop: drained, told the subscriber shutting_down, exit 0"
docker rm "$c" >/dev/null
phase_done "docker run"

# --- 2. A mounted config and TIDINGS_* variables ----------------------------------------------

c=$project-config
p=${ports[1]}
say "2. docker run with a mounted config and TIDINGS_* on 127.0.0.1:$p"
mkdir -m 755 "$work/conf"
# Port 1 would need root: the start proves that TIDINGS_PORT overrides the file.
cat >"$work/conf/tidingsd.conf" <<'EOF'
host = "127.0.0.1"
port = 1
server-name = "from-mounted-file"
drain-timeout = "3s"
EOF
chmod 644 "$work/conf/tidingsd.conf"
docker run -d --name "$c" --network host --health-interval 1s \
  -v "$work/conf/tidingsd.conf:/etc/tidings/tidingsd.conf:ro" \
  -e TIDINGS_PORT="$p" -e TIDINGS_LOG_FORMAT=json "$image" >/dev/null
wait_healthy "$c"
docker logs "$c" >"$work/config.log" 2>&1
first=$(head -1 "$work/config.log")
for want in '{"time":' "host=127.0.0.1 port=$p " "server-name=from-mounted-file " \
  "drain-timeout=3s " "log-format=json"; do
  [[ $first == *"$want"* ]] || fail "$c: its settings line lacks '$want': $first"
done
pong=$("$cli" ping --server "127.0.0.1:$p") || fail "$c: tidings ping failed"
[[ $pong == "pong from from-mounted-file "* ]] || fail "$c: ping answered '$pong'"
say "  the file's host, name and drain-timeout, TIDINGS_PORT and TIDINGS_LOG_FORMAT over it"
stop_drained "$c"
docker rm "$c" >/dev/null
phase_done "config and variables"

# --- 3. docker-compose -----------------------------------------------------------------------

p=${ports[2]}
say "3. docker-compose up on 127.0.0.1:$p"
mkdir "$work/compose"
# The compose file as it is, less the broker's `ports`: the engine refuses port bindings
# on the host's network, and compose v1 merges lists, so an override cannot remove them.
# --project-directory keeps its relative paths (the build context, the mounted config)
# resolving from docker/.
python3 - "$repo/docker/docker-compose.yml" "$work/compose/docker-compose.yml" <<'EOF'
import sys, yaml
with open(sys.argv[1]) as f:
    spec = yaml.safe_load(f)
spec["services"]["broker"].pop("ports", None)
with open(sys.argv[2], "w") as f:
    yaml.safe_dump(spec, f, sort_keys=False)
EOF
# The build runs its steps on the host's network too (the engine has no bridge).
# The descriptor limit: the file's 131072 where this host allows it, else the host's hard
# limit (raising it needs CAP_SYS_RESOURCE, which some sandboxes lack).
nofile=131072
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < nofile)); then
  say "  this host's hard descriptor limit is $hard: the test runs the broker with that, not 131072"
  nofile=$hard
fi
cat >"$work/compose/override.yml" <<EOF
services:
  broker:
    network_mode: host
    build:
      network: host
    environment:
      TIDINGS_HOST: 127.0.0.1
      TIDINGS_PORT: "$p"
    healthcheck:
      interval: 1s
    ulimits:
      nofile:
        soft: $nofile
        hard: $nofile
  subscriber:
    network_mode: host
    environment:
      TIDINGS_SERVER: 127.0.0.1:$p
  publisher:
    network_mode: host
    environment:
      TIDINGS_SERVER: 127.0.0.1:$p
EOF
compose_up=1
# --build: compose builds the broker from the file's build section (cached: same layers).
compose_timeout=600 compose up --build -d >"$work/compose-up.log" 2>&1 || {
  tail -20 "$work/compose-up.log" >&2
  fail "docker-compose up failed"
}
broker=$(compose ps -q broker)
[[ -n $broker && $(health "$broker") == healthy ]] ||
  fail "compose's broker is not healthy after up: $(health "$broker")"
ticks() { compose logs --no-color subscriber 2>/dev/null | grep -c '"topic":"demo.tick"' || true; }
enough_ticks() { (($(ticks) >= 2)); }
wait_for 30 enough_ticks ||
  fail "compose's subscriber printed $(ticks) demo.tick messages in 30 s, not 2: $(compose logs --no-color 2>&1 | tail -10)"
compose logs --no-color subscriber >"$work/subscriber.log" 2>&1 || true
say "  the subscriber printed the publisher's messages: $(grep -m1 demo.tick "$work/subscriber.log" | sed 's/.*| //')"
compose stop --timeout 20 >/dev/null 2>&1 || fail "docker-compose stop failed"
status=$(docker inspect -f '{{.State.ExitCode}}' "$broker")
[[ $status == 0 ]] || fail "compose's broker exited $status on stop, not 0"
compose down --timeout 5 >/dev/null 2>&1 || fail "docker-compose down failed"
compose_up=""
phase_done compose

summary=$(IFS=,; echo "${timings[*]}")
say "PASS: ${summary//,/, }"
exit 0
}
