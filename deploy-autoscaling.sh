#!/usr/bin/env bash
# Deploy the autoscaling stack, or update it in place: on this machine's swarm, or on the
# swarm whose manager DOCKER_HOST points at (then REGISTRY=host:port, or a local swarm of
# ./local-swarm.sh, gets the images to every node).
#
#   ./deploy-autoscaling.sh                    install Docker if needed, build, deploy, wait, print endpoints
#   ./deploy-autoscaling.sh --with-monitoring  the same, with a Prometheus server and its alert rules
#   ./deploy-autoscaling.sh --down             remove the stack
#   ./deploy-autoscaling.sh --backup FILE      save PostgreSQL (pg_dump) and Redis (its RDB) to FILE (.tar.gz)
#   ./deploy-autoscaling.sh --restore FILE     bring them back from FILE into the running stack
#
# Runs as root on a Debian machine. Every variable documented in README.md that is
# set in the environment reaches the services.
set -euo pipefail
# A failure inside $(...) stops the script too, not only the function it happened in.
shopt -s inherit_errexit

# POLICY_FILE is a path on this machine, from where the script was started.
if [ -n "${POLICY_FILE:-}" ]; then
    given=$POLICY_FILE
    POLICY_FILE=$(realpath -e -- "$given" 2>/dev/null) && [ -f "$POLICY_FILE" ] && [ -r "$POLICY_FILE" ] || {
        echo "[deploy] error: POLICY_FILE=$given is not a readable file" >&2
        exit 2
    }
fi
cd "$(dirname "$0")"
LOG_PREFIX=deploy
# shellcheck source=scripts/common.sh
. scripts/common.sh
STACK_NAME=${STACK_NAME:-autoscaling}
CONVERGE_TIMEOUT=${CONVERGE_TIMEOUT:-300}
STABLE_SECONDS=${STABLE_SECONDS:-10}
REGISTRY=${REGISTRY:-}
PYTHON_VERSION=3.11

# Images are built by this machine's engine; the stack goes to the swarm DOCKER_HOST
# points at (this machine's when unset).
ensure_docker() {
    ensure_local_docker
    if [ -n "${DOCKER_HOST:-}" ] && ! docker info >/dev/null 2>&1; then
        die "no Docker engine answers at DOCKER_HOST=$DOCKER_HOST"
    fi
}

# A swarm that exists is kept as it is; otherwise this engine starts a single-node one.
ensure_swarm() {
    local state
    state=$(docker info --format '{{.Swarm.LocalNodeState}}')
    if [ "$state" != active ]; then
        say "initialising a swarm advertising ${SWARM_ADVERTISE_ADDR:-127.0.0.1}"
        docker swarm init --advertise-addr "${SWARM_ADVERTISE_ADDR:-127.0.0.1}" >/dev/null
    elif [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" != true ]; then
        die "DOCKER_HOST${DOCKER_HOST:+=$DOCKER_HOST} is a worker: point it at a manager of the swarm"
    fi
}

source_digest() {
    {
        cat pyproject.toml Dockerfile metrics_collector/docker-api.cfg
        find common autoscaler metrics_collector nginx demo_api loadtest data_tier -type f \
            \( -name '*.py' -o -name '*.lua' \) -print0 | sort -z | xargs -0 cat
    } | sha256sum | cut -c1-12
}

# Wheels for the image, built here because containers cannot reach a package index.
build_wheels() {
    command -v python3 >/dev/null || apt_install python3
    if [ ! -x build/venv/bin/pip ]; then
        python3 -m venv build/venv 2>/dev/null || { apt_install python3-venv && python3 -m venv build/venv; }
    fi
    rm -f build/wheels/swarm_autoscaler-*.whl
    build/venv/bin/pip wheel -q --no-deps -w build/wheels .
    build/venv/bin/pip download -q -d build/wheels --only-binary=:all: \
        --python-version "$PYTHON_VERSION" --implementation cp \
        --platform "manylinux2014_$(uname -m)" --platform "manylinux_2_28_$(uname -m)" \
        "$(ls build/wheels/swarm_autoscaler-*.whl)[plot]" \
        async-timeout  # redis needs it on Python before 3.11.3 (bookworm has 3.11.2), a marker pip download skips
}

build_image() {
    local image="swarm-autoscaler:$(source_digest)"
    if local_docker image inspect "$image" >/dev/null 2>&1; then
        say "image $image is up to date"
    else
        local base
        base=$(choose_base_image)
        say "building $image on $base"
        build_wheels
        local_docker build -q --build-arg "BASE_IMAGE=$base" -t "$image" . >/dev/null
    fi
    echo "$image"
}

# The data tier's image: PostgreSQL, Redis, HAProxy and their exporters from Debian, on the
# project's image (built once per project image and data tier files).
build_data_image() {
    local app="$1" image
    image="swarm-autoscaler-data:$({ echo "$app"; cat data_tier/Dockerfile data_tier/haproxy.cfg; } | sha256sum | cut -c1-12)"
    if local_docker image inspect "$image" >/dev/null 2>&1; then
        say "image $image is up to date"
    else
        say "building $image (PostgreSQL, Redis, HAProxy) on $app"
        local_docker build -q --build-arg "APP_IMAGE=$app" -t "$image" data_tier >/dev/null
    fi
    echo "$image"
}

# The PostgreSQL and Redis primaries keep their data on this node's volumes: they are pinned
# to the node labelled autoscaler.data=primary, this one unless a node already has the label.
ensure_data_node() {
    if [ -z "$(docker node ls -q --filter node.label=autoscaler.data=primary)" ]; then
        say "labelling this node autoscaler.data=primary: the data tier's primaries run here"
        docker node update --label-add autoscaler.data=primary "$(docker info --format '{{.Swarm.NodeID}}')" >/dev/null
    fi
}

# Prometheus from Debian's package, unpacked here: no registry has an image for us.
build_prometheus_image() {
    local base="$1" version image
    version=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ { print $2 }')
    if [ -z "$version" ] || [ "$version" = "(none)" ]; then
        apt-get update -qq
        version=$(apt-cache policy prometheus | awk '/Candidate:/ { print $2 }')
    fi
    image="swarm-autoscaler-prometheus:$({ echo "$version $base"; cat monitoring/Dockerfile monitoring/prometheus.yml monitoring/alerts.yml; } | sha256sum | cut -c1-12)"
    if local_docker image inspect "$image" >/dev/null 2>&1; then
        say "image $image is up to date"
    else
        say "building $image (Prometheus $version) on $base"
        # A context of its own: the app image's context stays small.
        rm -rf build/prometheus && mkdir -p build/prometheus/package
        (cd build/prometheus && apt-get download -q -o APT::Sandbox::User=root "prometheus=$version" >/dev/null)
        dpkg-deb -x build/prometheus/prometheus_*.deb build/prometheus/package
        cp monitoring/prometheus.yml monitoring/alerts.yml build/prometheus/
        local_docker build -q --build-arg "BASE_IMAGE=$base" -f monitoring/Dockerfile -t "$image" build/prometheus >/dev/null
    fi
    echo "$image"
}

# Task ids of the stack now running, one per line, sorted.
running_tasks() {
    docker stack ps "$STACK_NAME" --filter desired-state=running --format '{{.ID}} {{.CurrentState}}' \
        | awk '$2 == "Running" { print $1 }' | sort
}

converged() {
    local pending
    # A replicated service may run 0 tasks (a data tier replica at its minimum); a global one must run some.
    pending=$(docker stack services "$STACK_NAME" --format '{{.Name}} {{.Mode}} {{.Replicas}}' \
        | awk '{ split($3, r, "/"); if (r[1] != r[2] || ($2 == "global" && r[2] == 0)) print $1 " " $3 }')
    [ -z "$pending" ] || { echo "$pending"; return 1; }
}

# The stack's task ids from before this deploy, one per line; none gives no line (an empty
# line would be a pattern that excludes everything).
tasks_before() {
    if [ ${#TASKS_BEFORE[@]} -gt 0 ]; then printf '%s\n' "${TASKS_BEFORE[@]}"; fi
}

# A daemon that exits on a bad configuration exits with status 2 and logs one line saying
# why: print that line for the first service of this deploy that did.
configuration_failure() {
    local service line
    for service in $(docker stack services "$STACK_NAME" --format '{{.Name}}'); do
        if docker service ps "$service" --no-trunc --format '{{.ID}} {{.Error}}' \
            | grep -vF -f <(tasks_before) | grep -q 'non-zero exit (2)'; then
            line=$(docker service logs --raw "$service" 2>/dev/null | grep '"invalid configuration"' | tail -n 1)
            echo "$service: ${line:-exited with status 2 (a configuration error)}"
            return 0
        fi
    done
    return 1
}

# Each URL answers /health with any HTTP status: the daemon runs and serves; what it says
# is its own. On this machine's swarm the URLs are its published ports; on another, they
# are asked from a container on the stack's network, on the manager DOCKER_HOST points at.
all_answer() {
    local probe=(python3 -)
    if [ -n "$REMOTE_SWARM" ]; then
        probe=(docker run --rm -i --network "${STACK_NAME}_backend" "$APP_IMAGE" python -)
    fi
    "${probe[@]}" "$@" <<'PY' >/dev/null 2>&1
import sys, urllib.error, urllib.request
for url in sys.argv[1:]:
    try:
        urllib.request.urlopen(url, timeout=3)
    except urllib.error.HTTPError:
        pass
PY
}

# Every service has run all its tasks, the same tasks, for STABLE_SECONDS, and the
# autoscaler and collector answer on /health (and Prometheus on /-/ready, if deployed). A crash-looping daemon never passes: its
# task keeps being replaced.
wait_stable() {
    say "waiting for every service to run its tasks stably for ${STABLE_SECONDS}s"
    local deadline=$((SECONDS + CONVERGE_TIMEOUT)) failure pending before after
    local health=("http://127.0.0.1:${AUTOSCALER_PORT:-8080}/health" "http://127.0.0.1:${COLLECTOR_PORT:-8090}/health")
    if [ -n "$REMOTE_SWARM" ]; then
        health=(http://tasks.autoscaler:8080/health http://tasks.metrics-collector:8090/health)
    fi
    if [ -n "$WITH_MONITORING" ]; then
        if [ -n "$REMOTE_SWARM" ]; then
            health+=(http://tasks.prometheus:9090/-/ready)
        else
            health+=("http://127.0.0.1:${PROMETHEUS_PORT:-9090}/-/ready")
        fi
    fi
    while :; do
        if failure=$(configuration_failure); then
            say "error: a daemon exited on its configuration:"
            echo "$failure" >&2
            exit 2
        fi
        if pending=$(converged); then
            before=$(running_tasks)
            sleep "$STABLE_SECONDS"
            after=$(running_tasks)
            if [ "$before" = "$after" ] && converged >/dev/null && all_answer "${health[@]}"; then
                return
            fi
            pending="tasks restarted or /health not answering"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            docker stack ps "$STACK_NAME" --no-trunc >&2 || true
            die "not stable after ${CONVERGE_TIMEOUT}s: $pending"
        fi
        sleep 2
    done
}

# Set when the swarm is not this machine's engine: its ports are not this machine's.
REMOTE_SWARM=
find_target() {
    if [ -n "${DOCKER_HOST:-}" ] && [ "$(docker info --format '{{.ID}}')" != "$(local_docker info --format '{{.ID}}')" ]; then
        REMOTE_SWARM=1
    fi
}

# The node of ./local-swarm.sh that DOCKER_HOST points at, if it is one.
in_local_swarm() {
    local name
    name=$(docker info --format '{{.Name}}')
    local_docker ps --filter label=swarm-autoscaler.local-swarm --format '{{.Names}}' | grep -qx ".*-$name"
}

# Get the images to every node that may run them, and print the names to deploy:
# pushed to REGISTRY (the nodes pull them with this machine's credentials for it); loaded
# into each node of a local swarm; or, on this machine's engine, used as they are.
deliver() {
    local image pushed=()
    if [ -n "$REGISTRY" ]; then
        for image in "$@"; do
            local_docker tag "$image" "$REGISTRY/$image"
            say "pushing $REGISTRY/$image"
            local_docker push -q "$REGISTRY/$image" >/dev/null
            pushed+=("$REGISTRY/$image")
        done
        printf '%s\n' "${pushed[@]}"
        return
    fi
    if [ -n "$REMOTE_SWARM" ]; then
        if in_local_swarm; then
            ./local-swarm.sh load "$@"
        elif [ "$(docker node ls -q | wc -l)" -eq 1 ]; then
            say "copying $* to the engine at $DOCKER_HOST"
            local_docker save "$@" | docker load -q >/dev/null
        else
            say "error: REGISTRY is not set: this swarm has $(docker node ls -q | wc -l) nodes, and each must pull the images from a registry"
            exit 2
        fi
    fi
    printf '%s\n' "$@"
}

# The autoscaler ran as one replica before it ran on every manager, and Swarm cannot change
# a service's mode in place: that one is removed first. Its decision state is kept (configs).
replace_single_autoscaler() {
    local service="${STACK_NAME}_autoscaler"
    if [ "$(docker service inspect -f '{{if .Spec.Mode.Replicated}}replicated{{end}}' "$service" 2>/dev/null)" = replicated ]; then
        say "replacing $service (one replica) by one instance per manager"
        docker service rm "$service" >/dev/null
    fi
}

# Checked before anything is built or touched: exit 2 with one line naming the value.
check_settings() {
    if [ -n "$REGISTRY" ] && ! [[ $REGISTRY =~ ^[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[a-z0-9._/-]+)?$ ]]; then
        say "error: REGISTRY=$REGISTRY is not host[:port][/path]"
        exit 2
    fi
}

deploy() {
    check_settings
    ensure_docker
    find_target
    ensure_swarm
    local images delivered files=(-c stack.yml) built=()
    built+=("$(build_image)")
    built+=("$(build_data_image "${built[0]}")")
    if [ -n "$WITH_MONITORING" ]; then
        built+=("$(build_prometheus_image "$(choose_base_image)")")
        files+=(-c stack.monitoring.yml)
    fi
    if [ -n "${POLICY_FILE:-}" ]; then
        POLICY_FILE_DIGEST=$(sha256sum <"$POLICY_FILE" | cut -c1-12)
        export POLICY_FILE POLICY_FILE_DIGEST STACK_NAME
        say "the autoscaler reads $POLICY_FILE (config ${STACK_NAME}_policies-$POLICY_FILE_DIGEST)"
        files+=(-c stack.policy.yml)
    fi
    # Not in a process substitution: a refusal in deliver must stop the deploy.
    delivered=$(deliver "${built[@]}")
    mapfile -t images <<<"$delivered"
    APP_IMAGE=${images[0]} DATA_IMAGE=${images[1]} PROMETHEUS_IMAGE=${images[2]:-}
    export APP_IMAGE DATA_IMAGE PROMETHEUS_IMAGE
    ensure_data_node
    # This autoscaler acts on this stack's services only, unless AUTOSCALER_SCOPE says
    # otherwise (set it empty to act on every labelled service in the swarm).
    export AUTOSCALER_SCOPE=${AUTOSCALER_SCOPE-$STACK_NAME}
    say "deploying stack $STACK_NAME with $APP_IMAGE"
    mapfile -t TASKS_BEFORE < <(docker stack ps -q "$STACK_NAME" 2>/dev/null || true)
    replace_single_autoscaler
    if [ -n "$REGISTRY" ]; then
        # Every node pulls the image by the digest pushed, with this machine's credentials.
        docker stack deploy --prune --with-registry-auth --resolve-image always "${files[@]}" "$STACK_NAME" >/dev/null
    else
        # The images are on the nodes already: asking a registry for them only prints warnings.
        docker stack deploy --prune --resolve-image never "${files[@]}" "$STACK_NAME" >/dev/null
    fi
    wait_stable
    if [ -n "$REMOTE_SWARM" ]; then
        say "stack $STACK_NAME is up; each node that runs a service publishes its ports (for a local swarm: ./local-swarm.sh ports)"
        return
    fi
    cat <<ENDPOINTS
Stack $STACK_NAME is up.
  demo API (through nginx)  http://127.0.0.1:${PUBLISHED_PORT:-80}/api/health
  request counters (nginx)  http://127.0.0.1:${ENTRYPOINT_METRICS_PORT:-9145}/metrics
  autoscaler                http://127.0.0.1:${AUTOSCALER_PORT:-8080}/status  /health  /metrics
  metrics collector         http://127.0.0.1:${COLLECTOR_PORT:-8090}/v1/services  /health  /metrics
ENDPOINTS
    if [ -n "$WITH_MONITORING" ]; then
        echo "  Prometheus                http://127.0.0.1:${PROMETHEUS_PORT:-9090}/alerts  /targets  /api/v1/"
    fi
}

down() {
    docker info >/dev/null 2>&1 || { say "no Docker engine is running: nothing to remove"; return; }
    docker stack rm "$STACK_NAME" >/dev/null 2>&1 || true
    # The autoscaler's saved decision state is not part of the stack: remove it too.
    docker config ls -q --filter "label=autoscaler.state.scope=$STACK_NAME" | xargs -r docker config rm >/dev/null 2>&1 || true
    # stack rm returns before the tasks and the network are gone.
    for _ in $(seq 60); do
        if [ -z "$(docker ps -q --filter "label=com.docker.stack.namespace=$STACK_NAME")" ] \
            && [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK_NAME")" ]; then
            say "stack $STACK_NAME removed"
            return
        fi
        sleep 1
    done
    die "stack $STACK_NAME still has containers or networks after 60s"
}

# The running container of one of the stack's services on this node.
container_of() {
    local id
    id=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK_NAME}_$1" | head -n 1)
    [ -n "$id" ] || die "no running container of ${STACK_NAME}_$1 on this node (the data tier's primaries run on the node labelled autoscaler.data=primary)"
    echo "$id"
}

# A consistent dump of the app database (pg_dump takes one snapshot) and an RDB of Redis
# (redis-cli --rdb asks the server for one, as a replica would), in one archive.
backup() {
    local file="$1" work postgres redis
    [ -n "$file" ] || die "--backup needs a file name"
    postgres=$(container_of postgres)
    redis=$(container_of redis)
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN
    docker exec -u postgres "$postgres" pg_dump -Fc -d app >"$work/postgres.dump"
    docker exec "$redis" redis-cli --rdb /tmp/backup.rdb >/dev/null
    docker cp "$redis:/tmp/backup.rdb" "$work/redis.rdb" >/dev/null
    docker exec "$redis" rm -f /tmp/backup.rdb
    tar -C "$work" -czf "$file" postgres.dump redis.rdb
    say "saved $(docker exec -u postgres "$postgres" psql -Atc 'SELECT count(*) FROM items' app 2>/dev/null || echo 0) items and Redis' RDB to $file"
}

# PostgreSQL: the dump replaces the app database's tables. Redis: the primary stops, its
# volume gets the RDB in place of its files, and it starts again from it.
restore() {
    local file="$1" work postgres redis volume image
    [ -f "$file" ] || die "--restore needs a backup file made by --backup"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN
    tar -C "$work" -xzf "$file" postgres.dump redis.rdb
    postgres=$(container_of postgres)
    docker exec -i -u postgres "$postgres" pg_restore --clean --if-exists --no-owner --role=app -d app <"$work/postgres.dump"
    say "restored PostgreSQL: $(docker exec -u postgres "$postgres" psql -Atc 'SELECT count(*) FROM items' app) items"
    redis=$(container_of redis)
    image=$(docker inspect -f '{{.Config.Image}}' "$redis")
    volume="${STACK_NAME}_redis-data"
    docker service scale -d "${STACK_NAME}_redis=0" >/dev/null
    for _ in $(seq 60); do
        [ -z "$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK_NAME}_redis")" ] && break
        sleep 1
    done
    docker run --rm -v "$volume:/data" -v "$work:/backup:ro" "$image" \
        bash -c 'rm -rf /data/appendonlydir /data/dump.rdb && cp /backup/redis.rdb /data/dump.rdb && chown redis:redis /data/dump.rdb'
    docker service scale -d "${STACK_NAME}_redis=1" >/dev/null
    for _ in $(seq 60); do
        redis=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK_NAME}_redis" --filter health=healthy)
        if [ -n "$redis" ]; then
            say "restored Redis: $(docker exec "$redis" redis-cli dbsize) keys"
            return
        fi
        sleep 1
    done
    die "Redis did not come back after the restore; see docker service logs ${STACK_NAME}_redis"
}

WITH_MONITORING=
case "${1:-}" in
    "") deploy ;;
    --with-monitoring) WITH_MONITORING=1; deploy ;;
    --down) down ;;
    --backup) backup "${2:-}" ;;
    --restore) restore "${2:-}" ;;
    -h|--help) sed -n '2,13p' "$0" ;;
    *) die "unknown argument $1 (use --with-monitoring, --down, --backup FILE, --restore FILE or nothing)" ;;
esac
