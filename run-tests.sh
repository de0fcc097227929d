#!/usr/bin/env bash
# Run every check and test: lint, types, unit tests, and the end-to-end tests, which
# deploy the stack through deploy-autoscaling.sh on a real single-node Docker Swarm
# (installing and starting the Docker engine first if this machine has none), and then on
# a local swarm of four nodes (./local-swarm.sh). Runs as root.
#
#   ./run-tests.sh                 everything
#   ./run-tests.sh tests/unit      only the unit tests (any pytest arguments work)
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '[tests] %s\n' "$*" >&2; }

missing=()
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
# Unit tests check rendered configs with nginx -t and measure requests through a real nginx.
command -v nginx >/dev/null || missing+=(nginx-light)
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || missing+=(libnginx-mod-http-lua)
# Unit tests check monitoring/ with promtool, which comes with Prometheus.
command -v promtool >/dev/null || missing+=(prometheus)
# The end-to-end tests render the status page in a real headless browser.
command -v chromium >/dev/null || missing+=(chromium fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    # An install that was interrupted leaves a package that dpkg lists but whose command is
    # gone; apt-get install then calls it "already the newest version". Finish what dpkg
    # left, and reinstall what is missing.
    dpkg --configure -a
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/pytest ]; then
    say "creating .venv"
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

say "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
say "mypy --strict"
.venv/bin/mypy
say "import contracts"
.venv/bin/lint-imports --no-cache
say "pytest"
# Written by the end-to-end tests of this run only.
reports=(build/e2e-report.json build/e2e-operations.json build/e2e-request-metrics.json build/e2e-zero-drop.json
    build/e2e-monitoring.json build/e2e-surge.json build/e2e-status-page.json build/e2e-data-tier.json
    build/e2e-multinode.json)
rm -f "${reports[@]}"
status=0
.venv/bin/pytest "$@" || status=$?
for report in "${reports[@]}"; do
    if [ -f "$report" ]; then
        say "$report (end-to-end timings in seconds, latencies in milliseconds):"
        cat "$report" >&2
    fi
done
exit $status
