# Shell helpers shared by ./deploy-autoscaling.sh and ./local-swarm.sh (sourced, not run).
# They act on this machine's Docker engine unless DOCKER_HOST says otherwise.
# LOG_PREFIX names the script in its messages.

BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}
BASE_PACKAGES=python3,python3-venv,nginx-light,libnginx-mod-http-lua,haproxy
# Named after its packages, so that a base built with other packages is not reused.
LOCAL_BASE_IMAGE=${LOCAL_BASE_IMAGE:-swarm-autoscaler-base:bookworm-$(printf %s "$BASE_PACKAGES" | sha256sum | cut -c1-8)}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}

say() { printf '[%s] %s\n' "$LOG_PREFIX" "$*" >&2; }
die() { say "error: $*"; exit 1; }

apt_install() {
    say "installing $*"
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ]; then
        apt-get update -qq
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
}

# This machine's engine, started if none runs.
ensure_local_docker() {
    command -v dockerd >/dev/null || apt_install docker.io
    if env -u DOCKER_HOST docker info >/dev/null 2>&1; then
        return
    fi
    # No init system here: start the engine in the background, as its own session.
    say "starting dockerd (log: $DOCKERD_LOG)"
    setsid dockerd >"$DOCKERD_LOG" 2>&1 < /dev/null &
    for _ in $(seq 60); do
        env -u DOCKER_HOST docker info >/dev/null 2>&1 && return
        sleep 1
    done
    die "dockerd did not start; see $DOCKERD_LOG"
}

# The image the project is built on, in this machine's engine: BASE_IMAGE if it can be
# pulled, else a local Debian image made with debootstrap (built once, then reused).
choose_base_image() {
    if local_docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || local_docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
        echo "$BASE_IMAGE"
        return
    fi
    if ! local_docker image inspect "$LOCAL_BASE_IMAGE" >/dev/null 2>&1; then
        say "cannot pull $BASE_IMAGE; building $LOCAL_BASE_IMAGE with debootstrap (about a minute)"
        command -v debootstrap >/dev/null || apt_install debootstrap
        local rootfs
        rootfs=$(mktemp -d /var/tmp/autoscaler-rootfs.XXXXXX)
        debootstrap --variant=minbase --include="$BASE_PACKAGES" \
            bookworm "$rootfs" "$DEBIAN_MIRROR" >/dev/null
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -c . | local_docker import - "$LOCAL_BASE_IMAGE" >/dev/null
        rm -rf "$rootfs"
    fi
    echo "$LOCAL_BASE_IMAGE"
}

# This machine's engine, whatever DOCKER_HOST points at: images are built here.
local_docker() { env -u DOCKER_HOST docker "$@"; }
