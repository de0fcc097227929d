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
# working directory: --out files land here, and --replay reads files from here.
set -euo pipefail

STACK_NAME=${STACK_NAME:-autoscaling}

say() { printf '[stress-test] %s\n' "$*" >&2; }

case "${1:-}" in
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
esac

command -v docker >/dev/null && docker info >/dev/null 2>&1 \
    || { say "error: no Docker engine is running: deploy the stack first (./deploy-autoscaling.sh)"; exit 1; }
# The autoscaler's image holds the load generator too: the one this stack runs.
image=$(docker service inspect "${STACK_NAME}_autoscaler" \
    --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}' 2>/dev/null) \
    || { say "error: stack $STACK_NAME is not deployed (./deploy-autoscaling.sh)"; exit 1; }

terminal=()
if [ -t 0 ] && [ -t 2 ]; then terminal=(-t); fi
# Given first, so that the caller's own --target and --autoscaler win (the last one counts).
exec docker run --rm "${terminal[@]}" --network host \
    --user "$(id -u):$(id -g)" -e MPLCONFIGDIR=/tmp/matplotlib \
    -v "$PWD:/run/stress" -w /run/stress \
    "$image" python -m loadtest \
    --target "http://127.0.0.1:${PUBLISHED_PORT:-80}" \
    --autoscaler "http://127.0.0.1:${AUTOSCALER_PORT:-8080}" \
    "$@"
