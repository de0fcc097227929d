#!/usr/bin/env bash
# Put load on the deployed stack with the load generator of the stack's own image.
#
#   ./stress-test.sh --profile heavy --out runs/heavy
#   ./stress-test.sh --users 8 --duration 120 --path '/api/work?ms=50'
#
# Every option of `python -m loadtest` works (see README.md). The generator runs in a
# container on the host network, so it needs no Python setup here; it reaches the entry
# point and the autoscaler on 127.0.0.1 (PUBLISHED_PORT, AUTOSCALER_PORT, unless
# --target or --autoscaler say otherwise). The current directory is mounted as its
# working directory: --out files land here, and --replay reads files from here. A
# replay with --start and --end runs the service's schedules on the trace's clock.
set -euo pipefail

STACK_NAME=${STACK_NAME:-autoscaling}

say() { printf '[stress-test] %s\n' "$*" >&2; }

case "${1:-}" in
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
esac

command -v docker >/dev/null && docker info >/dev/null 2>&1 \
    || { say "error: no Docker engine is running: deploy the stack first (./deploy-autoscaling.sh)"; exit 1; }
# The autoscaler's image holds the load generator too: the one this stack runs.
image=$(docker service inspect "${STACK_NAME}_autoscaler" \
    --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}' 2>/dev/null) \
    || { say "error: stack $STACK_NAME is not deployed (./deploy-autoscaling.sh)"; exit 1; }

# A replay of a window (--start and --end) runs the service's schedules on the trace's
# clock: the service is labelled with the window, when the replay begins and its speedup
# (autoscaler.replay_clock), and the label is removed when the replay ends.
replay='' start='' end='' speedup=1 service=demo-api
previous=''
for argument in "$@"; do
    case "$previous" in
        --replay) replay=$argument ;;
        --start) start=$argument ;;
        --end) end=$argument ;;
        --speedup) speedup=$argument ;;
        --service) service=$argument ;;
    esac
    case "$argument" in
        --replay=*) replay=${argument#*=} ;;
        --start=*) start=${argument#*=} ;;
        --end=*) end=${argument#*=} ;;
        --speedup=*) speedup=${argument#*=} ;;
        --service=*) service=${argument#*=} ;;
    esac
    previous=$argument
done
clock=()
if [ -n "$replay" ]; then
    labelled="${STACK_NAME}_${service#"${STACK_NAME}"_}"
    if [ -z "$start" ] || [ -z "$end" ]; then
        say "schedules follow the wall clock: give --start and --end to run them on the trace's"
    elif docker service inspect "$labelled" >/dev/null 2>&1; then
        begin=$(( $(date +%s) + 5 ))
        docker service update --quiet --detach \
            --label-add "autoscaler.replay_clock=$start,$end,$begin,$speedup" "$labelled" >/dev/null
        trap 'docker service update --quiet --detach --label-rm autoscaler.replay_clock "$labelled" >/dev/null' EXIT
        clock=(--begin-at "$begin")
        say "schedules of $labelled run on the trace's clock from $start"
    fi
fi

terminal=()
if [ -t 0 ] && [ -t 2 ]; then terminal=(-t); fi
# Given first, so that the caller's own --target and --autoscaler win (the last one counts).
docker run --rm "${terminal[@]}" --network host \
    --user "$(id -u):$(id -g)" -e MPLCONFIGDIR=/tmp/matplotlib \
    -v "$PWD:/run/stress" -w /run/stress \
    "$image" python -m loadtest \
    --target "http://127.0.0.1:${PUBLISHED_PORT:-80}" \
    --autoscaler "http://127.0.0.1:${AUTOSCALER_PORT:-8080}" \
    "${clock[@]}" "$@"
