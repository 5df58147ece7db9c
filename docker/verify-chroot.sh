#!/usr/bin/env bash
# Proves docker/Dockerfile where no Docker engine runs: carries out its instructions in
# debootstrapped Debian bookworm roots with chroot, as `docker build` would, then starts
# the final root as `docker run` would (own network and PID namespaces, the image's
# USER, ENTRYPOINT and CMD, tidingsd as PID 1) and checks it with the image's HEALTHCHECK,
# a pub/sub round trip with the image's `tidings`, and its STOPSIGNAL.
#
#   docker/verify-chroot.sh [--source DIR] [--work DIR]
#
#   --source DIR  the build context (default: this repository), filtered by its .dockerignore
#   --work DIR    roots and logs (default /tmp/tidings-chroot); the debootstrapped minbase
#                 is kept there as a tarball and reused by later runs
#
# Needs root, debootstrap (installed when missing) and a Debian mirror. The build runs
# under nice -n 19 with the parallelism of scripts/test.sh (nproc). The instructions
# are read from the Dockerfile itself, so they cannot drift from it; an instruction this
# script cannot carry out stops it.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
source_dir=$repo
work=/tmp/tidings-chroot
while (($#)); do
  case "$1" in
    --source) source_dir=$(realpath "$2"); shift 2 ;;
    --work) work=$2; shift 2 ;;
    *) echo "usage: $0 [--source DIR] [--work DIR]" >&2; exit 2 ;;
  esac
done
dockerfile=$source_dir/docker/Dockerfile
mirror=http://deb.debian.org/debian
path_env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

if ((EUID != 0)); then
  echo "verify-chroot: needs root (debootstrap, chroot, mounts, namespaces)" >&2
  exit 2
fi
mkdir -p "$work"
work=$(realpath "$work")
log=$work/verify.log
: >"$log"
say() { echo "verify-chroot: $*" | tee -a "$log" >&2; }
fail() {
  say "FAIL: $*"
  exit 1
}

# --- Mounts and clean-up ---------------------------------------------------------------

container_pid=""  # the unshare process of the emulated `docker run`

unmount_under() {
  local dir=$1 target
  # Deepest first.
  while read -r target; do
    umount -l "$target" 2>/dev/null || true
  done < <(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
}

cleanup() {
  if [[ -n $container_pid ]]; then kill -KILL "$container_pid" 2>/dev/null || true; fi
  local root
  for root in "$work"/root-*; do
    [[ -d $root ]] && unmount_under "$root"
  done
}
trap cleanup EXIT

mount_system() {
  local root=$1
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --make-rslave "$root/dev"
  mount --rbind /sys "$root/sys"
  mount --make-rslave "$root/sys"
}

# A fresh root from the minbase tarball. Nothing may be mounted in the old one: with
# /dev bound into it, rm would delete the host's devices (--one-file-system is the
# second guard).
fresh_root() {
  local root=$1
  unmount_under "$root"
  if awk -v d="$root/" 'index($2, d) == 1 {found = 1} END {exit !found}' /proc/self/mounts; then
    fail "something is still mounted under $root"
  fi
  rm -rf --one-file-system "$root"
  mkdir -p "$root"
  tar -C "$root" -xf "$work/bookworm-minbase.tar"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
}

# --- The base images -------------------------------------------------------------------

# debian:bookworm is a debootstrap --variant=minbase root with apt sources for
# bookworm, bookworm-updates and bookworm-security, and a policy-rc.d that keeps
# services from starting; -slim also leaves out documentation, manuals and locales.
make_minbase() {
  [[ -f $work/bookworm-minbase.tar ]] && return
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >>"$log" 2>&1
  fi
  local base=$work/minbase start=$SECONDS
  rm -rf --one-file-system "$base"
  say "debootstrap --variant=minbase bookworm ($mirror)"
  nice -n 19 debootstrap --variant=minbase bookworm "$base" "$mirror" >>"$log" 2>&1 ||
    fail "debootstrap failed (see $log)"
  rm -f "$base/etc/apt/sources.list"
  cat >"$base/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror}-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  printf '#!/bin/sh\nexit 101\n' >"$base/usr/sbin/policy-rc.d"
  chmod +x "$base/usr/sbin/policy-rc.d"
  rm -rf "$base/var/lib/apt/lists/"* "$base/var/cache/apt/archives/"*.deb
  tar -C "$base" -cf "$work/bookworm-minbase.tar" .
  rm -rf --one-file-system "$base"
  say "minbase ready in $((SECONDS - start))s"
}

slimify() {
  local root=$1
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
}

# --- The build context -----------------------------------------------------------------

# The source as `docker build` sends it: .dockerignore's patterns hold from the root.
make_context() {
  local context=$work/context pattern excludes=()
  while IFS= read -r pattern || [[ -n $pattern ]]; do
    pattern=${pattern%%#*}
    pattern=${pattern//[[:space:]]/}
    [[ -z $pattern ]] && continue
    [[ $pattern == !* ]] && fail ".dockerignore exceptions (!) are not emulated: $pattern"
    excludes+=("--exclude=./${pattern%/}")
  done <"$source_dir/.dockerignore"
  rm -rf --one-file-system "$context"
  mkdir -p "$context"
  tar -C "$source_dir" --anchored "${excludes[@]}" -cf - . | tar -C "$context" -xf -
  say "context: $(du -sh "$context" | cut -f1) from $source_dir" \
    "(excluded: ${excludes[*]#--exclude=./})"
}

# --- The Dockerfile --------------------------------------------------------------------

# One entry per instruction: continuation lines joined, comments dropped.
instructions=()
read_dockerfile() {
  local line joined=""
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line =~ ^[[:space:]]*# || $line =~ ^[[:space:]]*$ ]]; then
      continue
    fi
    if [[ $line =~ \\[[:space:]]*$ ]]; then
      joined+="${line%\\*} "
      continue
    fi
    instructions+=("$joined$line")
    joined=""
  done <"$dockerfile"
  [[ -z $joined ]] || fail "the Dockerfile ends inside a continuation"
}

# Exec form (a JSON array of plain strings) into the array named by $2.
exec_form() {
  local json=$1
  [[ $json =~ ^\[.*\]$ ]] || fail "not an exec-form array: $json"
  [[ $json =~ ^[][A-Za-z0-9_./:=@,\"\ -]*$ ]] ||
    fail "exec form with characters not emulated: $json"
  local inner=${json#[}
  inner=${inner%]}
  eval "$2=(${inner//,/ })"
}

declare -A stage_root
stage_index=0
root=""
workdir=/
user=""
env_vars=()
stop_signal=SIGTERM
exposed=""
entrypoint=()
cmd=()
healthcheck=()

run_in_root() {
  local spec=()
  [[ -n $user ]] && spec=(--userspec="$user")
  nice -n 19 chroot "${spec[@]}" "$root" /usr/bin/env -i -C "$workdir" \
    "$path_env" HOME=/root "${env_vars[@]}" /bin/sh -c "$1"
}

copy_into_root() {
  local args from="" sources=() dest
  read -ra args <<<"$1"
  if [[ ${args[0]} == --from=* ]]; then
    from=${args[0]#--from=}
    args=("${args[@]:1}")
  fi
  [[ ${args[0]} != --* ]] || fail "COPY option not emulated: ${args[0]}"
  dest=${args[-1]}
  sources=("${args[@]:0:${#args[@]}-1}")
  [[ $dest == /* ]] || dest=$workdir/$dest
  local base=$work/context
  if [[ -n $from ]]; then
    [[ -n ${stage_root[$from]:-} ]] || fail "COPY --from=$from: no such stage"
    base=${stage_root[$from]}
  fi
  local src
  for src in "${sources[@]}"; do
    local path=$base/${src#/}
    [[ -e $path ]] || fail "COPY: $src does not exist${from:+ in stage $from}"
    if [[ -d $path ]]; then
      mkdir -p "$root$dest"
      cp -R --preserve=mode,timestamps "$path/." "$root$dest/"
    elif [[ $dest == */ || ${#sources[@]} -gt 1 ]]; then
      mkdir -p "$root$dest"
      cp --preserve=mode,timestamps "$path" "$root$dest/"
    else
      mkdir -p "$(dirname "$root$dest")"
      cp --preserve=mode,timestamps "$path" "$root$dest"
    fi
  done
}

build_stages() {
  local instruction keyword args step=0 start
  for instruction in "${instructions[@]}"; do
    keyword=${instruction%%[[:space:]]*}
    keyword=${keyword^^}
    args=${instruction#*[[:space:]]}
    args=${args#"${args%%[![:space:]]*}"}
    step=$((step + 1))
    start=$SECONDS
    case $keyword in
      FROM | COPY | RUN) ;;
      *) say "[$step] $instruction" ;;
    esac
    case $keyword in
      FROM)
        local image=${args%%[[:space:]]*} name=""
        [[ $args =~ [[:space:]][Aa][Ss][[:space:]]+([^[:space:]]+) ]] && name=${BASH_REMATCH[1]}
        stage_index=$((stage_index + 1))
        root=$work/root-$stage_index
        workdir=/
        user=""
        env_vars=()
        say "[$step] FROM $image${name:+ AS $name}: fresh minbase in $root"
        fresh_root "$root"
        case $image in
          debian:bookworm) ;;
          debian:bookworm-slim) slimify "$root" ;;
          *) fail "base image $image is not emulated" ;;
        esac
        mount_system "$root"
        stage_root[$stage_index]=$root
        [[ -n $name ]] && stage_root[$name]=$root
        ;;
      WORKDIR)
        [[ $args == /* ]] || args=$workdir/$args
        workdir=$args
        mkdir -p "$root$workdir"
        ;;
      ENV)
        [[ $args =~ ^[A-Za-z_][A-Za-z0-9_]*=[^[:space:]]*$ ]] || fail "ENV form not emulated: $args"
        env_vars+=("$args")
        ;;
      COPY)
        say "[$step] COPY $args"
        copy_into_root "$args"
        ;;
      RUN)
        [[ $args != \[* ]] || fail "exec-form RUN is not emulated"
        say "[$step] RUN $args"
        local step_log=$work/step-$step.log
        if ! run_in_root "$args" >"$step_log" 2>&1; then
          tail -n 40 "$step_log" >&2
          fail "RUN failed after $((SECONDS - start))s (log: $step_log)"
        fi
        say "[$step] done in $((SECONDS - start))s (log: $step_log)"
        ;;
      USER) user=$args ;;
      STOPSIGNAL) stop_signal=$args ;;
      EXPOSE) exposed=$args ;;
      HEALTHCHECK)
        [[ $args =~ CMD[[:space:]]+(\[.*\])$ ]] || fail "HEALTHCHECK form not emulated: $args"
        exec_form "${BASH_REMATCH[1]}" healthcheck
        ;;
      ENTRYPOINT) exec_form "$args" entrypoint ;;
      CMD) exec_form "$args" cmd ;;
      *) fail "instruction $keyword is not emulated" ;;
    esac
  done
}

# --- docker run ------------------------------------------------------------------------

# Whether process PID is running; a child that exited but was not waited for counts as gone.
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}
export -f alive

wait_for_line() {
  local file=$1 text=$2 seconds=$3
  timeout "$seconds" bash -c 'until grep -qF -- "$2" "$1" 2>/dev/null; do sleep 0.1; done' \
    _ "$file" "$text"
}

run_container() {
  local start=$SECONDS spec=() in_container=()
  [[ -n $user ]] || fail "the image has no USER: it would run as root"
  [[ ${user%%:*} =~ ^[0-9]+$ && ${user%%:*} != 0 ]] ||
    fail "USER $user is not a numeric non-root uid"
  [[ $stop_signal == SIGTERM ]] || fail "STOPSIGNAL is $stop_signal, expected SIGTERM"
  ((${#healthcheck[@]} > 0)) || fail "the image has no HEALTHCHECK"
  [[ -n $exposed ]] || fail "the image EXPOSEs no port"
  ((${#entrypoint[@]} > 0)) || fail "the image has no ENTRYPOINT"
  spec=(--userspec="$user")

  local version
  version=$(chroot "${spec[@]}" "$root" /usr/bin/env -i "$path_env" tidingsd --version) ||
    fail "tidingsd --version failed in the runtime root"
  say "tidingsd --version: $version"
  if chroot "$root" /usr/bin/env -i "$path_env" sh -c \
    'ldd /usr/local/bin/tidingsd /usr/local/bin/tidings' | grep 'not found'; then
    fail "a shared library is missing from the runtime root"
  fi

  # The container: own network (only loopback) and PID namespaces, so that port 4700 is
  # its own and the ENTRYPOINT is PID 1, as under Docker.
  local container_log=$work/container.log
  say "docker run: ${entrypoint[*]} ${cmd[*]} as $user, PID 1 of new network and PID namespaces"
  unshare --mount --net --pid --fork --mount-proc="$root/proc" /bin/sh -c \
    'ip link set lo up && exec "$@"' _ \
    chroot "${spec[@]}" "$root" /usr/bin/env -i -C "$workdir" "$path_env" "${env_vars[@]}" \
    "${entrypoint[@]}" "${cmd[@]}" >"$container_log" 2>&1 &
  container_pid=$!
  pid1=""
  timeout 10 bash -c 'until pgrep -P "$1" >/dev/null; do sleep 0.05; done' _ "$container_pid" ||
    fail "the container's process did not start"
  pid1=$(pgrep -P "$container_pid")
  # `docker exec`: the container's namespaces, root, user and environment.
  in_container=(nsenter --target "$pid1" --net --pid --mount
    chroot "${spec[@]}" "$root" /usr/bin/env -i -C "$workdir" "$path_env" "${env_vars[@]}")
  wait_for_line "$container_log" "ready: listening on " 15 || {
    cat "$container_log" >&2
    fail "tidingsd logged no ready line within 15s"
  }
  say "ready: $(grep -F 'ready: listening on' "$container_log")"
  [[ $("${in_container[@]}" cat /proc/1/comm) == tidingsd ]] ||
    fail "PID 1 in the container is not tidingsd"
  local uid
  uid=$(awk '/^Uid:/ {print $3}' "/proc/$pid1/status")
  [[ $uid != 0 ]] || fail "tidingsd runs as root"
  say "PID 1 in the container is tidingsd, uid $uid"

  timeout 30 "${in_container[@]}" "${healthcheck[@]}" >"$work/healthcheck.log" 2>&1 || {
    cat "$work/healthcheck.log" >&2
    fail "HEALTHCHECK ${healthcheck[*]} failed"
  }
  say "HEALTHCHECK ${healthcheck[*]}: exit 0"

  # What the compose file's subscriber and publisher do, by TIDINGS_SERVER.
  local server=127.0.0.1:${exposed%%/*} token="chroot-$$-$RANDOM"
  timeout 30 "${in_container[@]}" TIDINGS_SERVER="$server" tidings sub 'demo.>' --count 1 \
    >"$work/sub.out" 2>"$work/sub.log" &
  local sub=$!
  wait_for_line "$work/sub.log" "subscribed: demo.>" 15 || fail "tidings sub did not subscribe"
  timeout 15 "${in_container[@]}" TIDINGS_SERVER="$server" \
    tidings pub demo.tick "{\"token\": \"$token\"}" >"$work/pub.log" 2>&1 ||
    fail "tidings pub failed"
  wait "$sub" || fail "tidings sub --count 1 failed"
  grep -qF "$token" "$work/sub.out" || fail "the subscriber did not receive the message"
  say "pub/sub in the container: $(cat "$work/sub.out")"

  kill -s "${stop_signal#SIG}" "$pid1"
  local status=0
  timeout 20 bash -c 'while alive "$1"; do sleep 0.1; done' _ "$container_pid" ||
    fail "the container did not stop within 20s of $stop_signal"
  wait "$container_pid" || status=$?
  container_pid=""
  ((status == 0)) || fail "tidingsd exited $status after $stop_signal, expected 0"
  say "$stop_signal: tidingsd exited 0:" \
    "$(grep -F 'stopped:' "$container_log" | sed 's/.*stopped:/stopped:/')"
  say "container checks done in $((SECONDS - start))s"
}

total_start=$SECONDS
say "Dockerfile: $dockerfile"
make_minbase
make_context
read_dockerfile
build_stages
run_container
say "PASSED in $((SECONDS - total_start))s (log: $log)"
