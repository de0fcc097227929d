#!/usr/bin/env bash
# A Docker Swarm of several nodes on this machine: each node is a container running its
# own Docker engine, on one bridge network.
#
#   ./local-swarm.sh up [--nodes N] [--managers M] [--registry]
#                                 start N nodes (3), the first M of them managers (N), and
#                                 with --registry a registry in the swarm; print the ports
#   ./local-swarm.sh env          print the DOCKER_HOST of the first manager that runs
#   ./local-swarm.sh ports        print each node's ports on this machine
#   ./local-swarm.sh load IMAGE…  copy images from this machine's engine into every node
#   ./local-swarm.sh down         remove the nodes, their volumes and their network
#
# Node k publishes its ports on 127.0.0.1: entry point 80 on PORT_BASE+100k, autoscaler
# 8080 on +1, collector 8090 on +2, request counters 9145 on +3, Prometheus 9090 on +4.
# The registry (--registry) answers on 127.0.0.1:REGISTRY_PORT here and on every node.
# Runs as root; acts on this machine's engine whatever DOCKER_HOST says.
set -euo pipefail
shopt -s inherit_errexit

cd "$(dirname "$0")"
LOG_PREFIX=local-swarm
# shellcheck source=scripts/common.sh
. scripts/common.sh

NAME=${LOCAL_SWARM_NAME:-local-swarm}
SUBNET_PREFIX=${LOCAL_SWARM_SUBNET_PREFIX:-10.231.0}
PORT_BASE=${LOCAL_SWARM_PORT_BASE:-21000}
REGISTRY_PORT=${LOCAL_SWARM_REGISTRY_PORT:-5000}
REGISTRY_USER=autoscaler
RUN_DIR=${LOCAL_SWARM_RUN_DIR:-/run/$NAME}
NODE_PORTS=(80 8080 8090 9145 9090)
NODE_LABEL=swarm-autoscaler.local-swarm

node_name() { echo "$NAME-node-$1"; }
node_ip() { echo "$SUBNET_PREFIX.$((10 + $1))"; }
node_socket() { echo "$RUN_DIR/node-$1/docker.sock"; }
in_node() { local node=$1; shift; local_docker exec "$(node_name "$node")" docker "$@"; }

# The nodes that exist, by number, running or not.
nodes() {
    local_docker ps -a --filter "label=$NODE_LABEL=$NAME" --format '{{.Label "swarm-autoscaler.local-swarm.node"}}' | sort -n
}

running_nodes() {
    local_docker ps --filter "label=$NODE_LABEL=$NAME" --format '{{.Label "swarm-autoscaler.local-swarm.node"}}' | sort -n
}

# An image built from a Dockerfile given as text, named after it: a changed one is built again.
image_of() {
    local name=$1 dockerfile=$2 image
    image="$name:$(printf '%s' "$dockerfile" | sha256sum | cut -c1-12)"
    if ! local_docker image inspect "$image" >/dev/null 2>&1; then
        say "building $image"
        printf '%s\n' "$dockerfile" | local_docker build -q -t "$image" - >/dev/null
    fi
    echo "$image"
}

# A Debian node with Docker's engine and iptables, on the project's base image.
build_node_image() {
    image_of swarm-autoscaler-node "FROM $(choose_base_image)
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io iptables \\
    && rm -rf /var/lib/apt/lists/*
# A node killed and started again finds its engine's pid files from before: they go first.
CMD [\"sh\", \"-c\", \"rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid /run/local-swarm/docker.sock; exec dockerd --host unix:///var/run/docker.sock --host unix:///run/local-swarm/docker.sock\"]"
}

start_node() {
    local node=$1 image=$2 role=$3 publish=() index=0 port
    for port in "${NODE_PORTS[@]}"; do
        publish+=(-p "127.0.0.1:$((PORT_BASE + 100 * node + index)):$port")
        index=$((index + 1))
    done
    if [ "$node" = 1 ] && [ -n "$WITH_REGISTRY" ]; then
        publish+=(-p "127.0.0.1:$REGISTRY_PORT:$REGISTRY_PORT")
    fi
    mkdir -p "$RUN_DIR/node-$node"
    # What a Docker engine in a container needs here, short of --privileged (which this
    # machine refuses): every capability it is granted, no seccomp or AppArmor filter,
    # and the host's cgroups to make its containers' groups in.
    local_docker run -d --name "$(node_name "$node")" --hostname "node-$node" \
        --label "$NODE_LABEL=$NAME" --label "$NODE_LABEL.node=$node" --label "$NODE_LABEL.role=$role" \
        --network "$NAME" --ip "$(node_ip "$node")" --init \
        --cap-add ALL --cap-drop SYS_RESOURCE \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
        -v "$(node_name "$node"):/var/lib/docker" -v "$NAME-shared:/srv/shared" \
        -v "$RUN_DIR/node-$node:/run/local-swarm" \
        "${publish[@]}" "$image" >/dev/null
}

wait_engine() {
    local node=$1
    for _ in $(seq 60); do
        in_node "$node" info >/dev/null 2>&1 && return
        sleep 1
    done
    die "the engine of node $node did not start; see: docker logs $(node_name "$node")"
}

up() {
    local count=3 managers="" node image token
    while [ $# -gt 0 ]; do
        case "$1" in
            --nodes) count=${2:?--nodes needs a number}; shift 2 ;;
            --managers) managers=${2:?--managers needs a number}; shift 2 ;;
            --registry) WITH_REGISTRY=1; shift ;;
            *) die "unknown argument $1 (use --nodes N, --managers M, --registry)" ;;
        esac
    done
    managers=${managers:-$count}
    [[ $count =~ ^[1-9][0-9]?$ ]] || die "--nodes must be a number from 1 to 99, not $count"
    [[ $managers =~ ^[1-9][0-9]?$ ]] && [ "$managers" -le "$count" ] \
        || die "--managers must be a number from 1 to --nodes ($count), not $managers"
    [ -z "$(nodes)" ] || die "a local swarm already exists (./local-swarm.sh down removes it)"
    ensure_local_docker
    image=$(build_node_image)
    say "starting $count nodes ($managers managers) on network $NAME ($SUBNET_PREFIX.0/24)"
    local_docker network create --subnet "$SUBNET_PREFIX.0/24" --label "$NODE_LABEL=$NAME" "$NAME" >/dev/null
    for node in $(seq "$count"); do
        start_node "$node" "$image" "$([ "$node" -le "$managers" ] && echo manager || echo worker)"
    done
    for node in $(seq "$count"); do wait_engine "$node"; done
    in_node 1 swarm init --advertise-addr "$(node_ip 1)" >/dev/null
    for node in $(seq 2 "$count"); do
        token=$(in_node 1 swarm join-token -q "$([ "$node" -le "$managers" ] && echo manager || echo worker)")
        in_node "$node" swarm join --advertise-addr "$(node_ip "$node")" --token "$token" "$(node_ip 1):2377" >/dev/null
    done
    if [ -n "$WITH_REGISTRY" ]; then
        start_registry
    fi
    say "swarm of $count nodes is up"
    ports
    echo "Use it:  eval \"\$(./local-swarm.sh env)\""
}

# Debian's docker-registry as a global service: every node serves the same storage (a
# volume all nodes share) on its own 127.0.0.1:REGISTRY_PORT, so the one image name
# 127.0.0.1:REGISTRY_PORT/… is pulled by every node; a push from this machine goes to
# node 1's, published here on the same port. It asks for a password (htpasswd), and this
# machine's docker logs in to it.
start_registry() {
    local image password
    image=$(image_of swarm-autoscaler-registry "FROM $(choose_base_image)
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-registry \\
    && rm -rf /var/lib/apt/lists/*
CMD [\"docker-registry\", \"serve\", \"/etc/docker/registry/config.yml\"]")
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    printf '%s\n' "$password" >"$RUN_DIR/registry-password"
    chmod 600 "$RUN_DIR/registry-password"
    # The registry takes bcrypt hashes only: Python's crypt makes one ($2b$).
    local_docker run --rm -e "PASSWORD=$password" -v "$NAME-shared:/srv/shared" "$image" python3 -W ignore -c \
        "import crypt, os; open('/srv/shared/htpasswd', 'w').write('$REGISTRY_USER:' + crypt.crypt(os.environ['PASSWORD'], crypt.mksalt(crypt.METHOD_BLOWFISH)) + '\\n')"
    load "$image"
    in_node 1 service create -d --no-resolve-image --name registry --mode global \
        --publish "mode=host,target=5000,published=$REGISTRY_PORT" \
        --mount type=bind,source=/srv/shared,target=/srv/shared \
        --env REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/srv/shared/registry \
        --env REGISTRY_AUTH_HTPASSWD_PATH=/srv/shared/htpasswd \
        "$image" >/dev/null
    for _ in $(seq 60); do
        if local_docker login -u "$REGISTRY_USER" --password-stdin "127.0.0.1:$REGISTRY_PORT" \
            <"$RUN_DIR/registry-password" >/dev/null 2>&1; then
            say "registry: REGISTRY=127.0.0.1:$REGISTRY_PORT (user $REGISTRY_USER; this machine's docker is logged in)"
            return
        fi
        sleep 1
    done
    die "cannot log in to the registry on 127.0.0.1:$REGISTRY_PORT; see: $(in_node 1 service ps registry --no-trunc 2>&1 | tail -n 3)"
}

ports() {
    local node index port
    for node in $(nodes); do
        printf 'node %s (%s, %s):' "$node" "$(local_docker inspect -f '{{index .Config.Labels "swarm-autoscaler.local-swarm.role"}}' "$(node_name "$node")")" "$(node_ip "$node")"
        index=0
        for port in "${NODE_PORTS[@]}"; do
            printf ' %s→127.0.0.1:%s' "$port" "$((PORT_BASE + 100 * node + index))"
            index=$((index + 1))
        done
        echo
    done
}

# The first manager whose engine answers.
env_of_manager() {
    local node
    for node in $(running_nodes); do
        if [ "$(local_docker inspect -f '{{index .Config.Labels "swarm-autoscaler.local-swarm.role"}}' "$(node_name "$node")")" = manager ] \
            && in_node "$node" node ls >/dev/null 2>&1; then
            echo "export DOCKER_HOST=unix://$(node_socket "$node")"
            return
        fi
    done
    die "no manager of the local swarm answers"
}

# docker save into each running node's engine that lacks one of the images, in parallel.
load() {
    [ $# -gt 0 ] || die "load needs image names"
    local node pids=() archive missing=()
    for node in $(running_nodes); do
        in_node "$node" image inspect "$@" >/dev/null 2>&1 || missing+=("$node")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "every node has $*"
        return
    fi
    archive=$(mktemp /var/tmp/local-swarm-images.XXXXXX)
    local_docker save "$@" >"$archive"
    for node in "${missing[@]}"; do
        local_docker exec -i "$(node_name "$node")" docker load -q <"$archive" >/dev/null &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || { rm -f "$archive"; die "loading $* into a node failed"; }; done
    rm -f "$archive"
    say "loaded $* into node(s) $(IFS=,; echo "${missing[*]}")"
}

down() {
    local node names=() name
    env -u DOCKER_HOST docker info >/dev/null 2>&1 || { say "no Docker engine is running: nothing to remove"; return; }
    for node in $(nodes); do names+=("$(node_name "$node")"); done
    if [ ${#names[@]} -gt 0 ]; then
        # Stopped, not killed, all at once: each engine stops its containers and removes their cgroups.
        local_docker stop -t 40 "${names[@]}" >/dev/null 2>&1 || true
        local_docker rm -f -v "${names[@]}" >/dev/null
        for name in "${names[@]}"; do local_docker volume rm "$name" >/dev/null 2>&1 || true; done
    fi
    local_docker volume rm "$NAME-shared" >/dev/null 2>&1 || true
    local_docker network rm "$NAME" >/dev/null 2>&1 || true
    if [ -f "$RUN_DIR/registry-password" ]; then
        local_docker logout "127.0.0.1:$REGISTRY_PORT" >/dev/null 2>&1 || true
    fi
    rm -rf "$RUN_DIR"
    say "local swarm removed"
}

WITH_REGISTRY=
case "${1:-}" in
    up) shift; up "$@" ;;
    env) env_of_manager ;;
    ports) ports ;;
    load) shift; load "$@" ;;
    down) down ;;
    -h|--help|"") sed -n '2,17p' "$0" ;;
    *) die "unknown command $1 (use up, env, ports, load, down)" ;;
esac
